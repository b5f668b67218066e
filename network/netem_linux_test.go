package network

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/foldup/foldup/internal/nstest"
	"github.com/foldup/foldup/internal/systest"
	"github.com/foldup/foldup/internal/vmtest"
)

// TestNetemInVM runs TestNetemKernel in a VM whose kernel has netem: this
// project's machines do not build sch_netem, and a user's Debian kernel
// has it as a module. The test binary is this package's, built static,
// appended to the netem guest's initramfs (scripts/images.sh), which
// loads the modules, runs it and powers off; its output is the console.
func TestNetemInVM(t *testing.T) {
	kernel, _ := vmtest.Images(t)
	initrd := filepath.Join(vmtest.Dir(), "initrd-netem.img")
	_, err := os.Stat(initrd)
	systest.Need(t, err == nil, "needs "+initrd+": run scripts/images.sh "+vmtest.Dir())
	systest.Command(t, "cpio")
	dir := t.TempDir()
	bin := filepath.Join(dir, "nettest")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "test", "-c", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test binary: %v\n%s", err, out)
	}
	// The binary as a third archive after the guest's two.
	var archive bytes.Buffer
	c := exec.Command("cpio", "-o", "-H", "newc", "--quiet")
	c.Dir, c.Stdin, c.Stdout = dir, strings.NewReader("nettest\n"), &archive
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(initrd)
	if err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(dir, "initrd")
	// Compressed, as the others are: an uncompressed archive would have
	// to start at a multiple of 4 bytes.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(archive.Bytes())
	zw.Close()
	if err := os.WriteFile(full, append(base, gz.Bytes()...), 0o644); err != nil {
		t.Fatal(err)
	}
	console := filepath.Join(dir, "console.log")
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	q := exec.CommandContext(ctx, "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "2",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", kernel, "-initrd", full, "-append", "console=ttyS0 quiet panic=-1 rdinit=/netem-init foldup.run=^TestNetemKernel$",
		"-serial", "file:"+console)
	out, err := q.CombinedOutput()
	log, _ := os.ReadFile(console)
	t.Logf("the guest's console:\n%s", log)
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, out)
	}
	if !bytes.Contains(log, []byte("FOLDUP-NETTEST-EXIT 0")) || !bytes.Contains(log, []byte("--- PASS: TestNetemKernel")) {
		t.Errorf("TestNetemKernel did not pass in the guest")
	}
}

// TestNetemUnsupported: on a kernel without netem (this project's
// machines), SetNetem says so in words, and leaves no ifb behind.
func TestNetemUnsupported(t *testing.T) {
	systest.Root(t)
	ns := nstest.New(t)
	host, err := Open(ns.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	ns.MustRun(t, "ip", "link", "add", "port0", "type", "veth", "peer", "name", "peer0")
	err = host.SetNetem("port0", &Netem{Delay: time.Millisecond}, nil, "")
	if err == nil {
		t.Skip("this kernel has netem: TestNetemInVM's measurements apply here as well")
	}
	if !errors.Is(err, ErrNoNetem) {
		t.Fatalf("SetNetem = %v, want ErrNoNetem", err)
	}
	if !strings.Contains(err.Error(), "sch_netem") {
		t.Errorf("the error does not say what the kernel needs: %v", err)
	}
	err = host.SetNetem("port0", nil, &Netem{Delay: time.Millisecond}, "fuitest0")
	if !errors.Is(err, ErrNoNetem) {
		t.Errorf("SetNetem from = %v, want ErrNoNetem", err)
	}
	// The ifb made before the kernel refused goes with clearing.
	if err := host.SetNetem("port0", nil, nil, "fuitest0"); err != nil {
		t.Fatal(err)
	}
	if host.HasLink("fuitest0") {
		t.Errorf("ifb fuitest0 left after clearing")
	}
}

// TestNetemKernel measures SetNetem on a kernel with netem (it runs in
// the guest of TestNetemInVM, where FOLDUP_NETEM_GUEST is set): a member
// namespace behind a veth, the port's end in this one. The RTT of a UDP
// echo rises by the delay (±20 %), twice with direction both (through an
// ifb); loss 100 % lets nothing through; rate caps a TCP stream to within
// 10 %; clearing brings the RTT back and removes the ifb; NetemOn reads
// back what applies.
func TestNetemKernel(t *testing.T) {
	if os.Getenv("FOLDUP_NETEM_GUEST") != "1" {
		t.Skip("runs in TestNetemInVM's guest, whose kernel has netem")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rootNS, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	host, err := Open(rootNS)
	if err != nil {
		t.Fatal(err)
	}
	memberNS, err := netns.New() // and now in it
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Set(rootNS); err != nil {
		t.Fatal(err)
	}
	member, err := Open(memberNS)
	if err != nil {
		t.Fatal(err)
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "port0"}, PeerName: "eth0"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	peer, _ := netlink.LinkByName("eth0")
	if err := netlink.LinkSetNsFd(peer, int(memberNS)); err != nil {
		t.Fatal(err)
	}
	port, _ := netlink.LinkByName("port0")
	addr, _ := netlink.ParseAddr("10.9.0.1/24")
	netlink.AddrAdd(port, addr)
	netlink.LinkSetUp(port)
	if err := member.Do(func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		a, _ := netlink.ParseAddr("10.9.0.2/24")
		if err := netlink.AddrAdd(l, a); err != nil {
			return err
		}
		lo, _ := netlink.LinkByName("lo")
		netlink.LinkSetUp(lo)
		return netlink.LinkSetUp(l)
	}); err != nil {
		t.Fatal(err)
	}
	// A UDP echo and a TCP sink in the member.
	var echo net.PacketConn
	var sink net.Listener
	if err := member.Do(func() (err error) {
		if echo, err = net.ListenPacket("udp", "10.9.0.2:7"); err != nil {
			return err
		}
		sink, err = net.Listen("tcp", "10.9.0.2:9")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	defer sink.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(buf[:n], from)
		}
	}()
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	conn, err := net.Dial("udp", "10.9.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// rtt is the median of 15 echoes; a lost one counts as 1 s.
	rtt := func() (time.Duration, int) {
		var ds []time.Duration
		lost := 0
		buf := make([]byte, 64)
		for i := range 15 {
			start := time.Now()
			fmt.Fprintf(conn, "echo %d", i)
			conn.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := conn.Read(buf); err != nil {
				lost++
				ds = append(ds, time.Second)
				continue
			}
			ds = append(ds, time.Since(start))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2], lost
	}
	within := func(what string, got, want time.Duration) {
		t.Helper()
		t.Logf("%s: %v (want %v ± 20 %%)", what, got, want)
		if got < want*8/10 || got > want*12/10 {
			t.Errorf("%s: %v, want %v ± 20 %%", what, got, want)
		}
	}
	base, _ := rtt()
	t.Logf("RTT without netem: %v", base)

	if err := host.SetNetem("port0", &Netem{Delay: 100 * time.Millisecond}, nil, "fuitest0"); err != nil {
		t.Fatal(err)
	}
	d, _ := rtt()
	within("the RTT's rise with delay 100ms to the member", d-base, 100*time.Millisecond)
	to, from, err := host.NetemOn("port0", "fuitest0")
	if err != nil || to == nil || to.Delay.Round(time.Millisecond) != 100*time.Millisecond || from != nil {
		t.Errorf("NetemOn = %+v, %+v, %v; want delay 100ms to, nothing from", to, from, err)
	}

	if err := host.SetNetem("port0", &Netem{Delay: 50 * time.Millisecond}, &Netem{Delay: 50 * time.Millisecond}, "fuitest0"); err != nil {
		t.Fatal(err)
	}
	d, _ = rtt()
	within("the RTT's rise with delay 50ms both ways (the ifb)", d-base, 100*time.Millisecond)
	if _, err := netlink.LinkByName("fuitest0"); err != nil {
		t.Errorf("no ifb fuitest0 with direction both: %v", err)
	}

	if err := host.SetNetem("port0", &Netem{Loss: 100}, nil, "fuitest0"); err != nil {
		t.Fatal(err)
	}
	if _, lost := rtt(); lost != 15 {
		t.Errorf("loss 100%%: %d of 15 echoes lost", lost)
	}
	if _, err := netlink.LinkByName("fuitest0"); err == nil {
		t.Errorf("the ifb is left once nothing from the member is impaired")
	}

	// rate: 16mbit (2 MB/s) on what the member receives; 4 MB of TCP.
	if err := host.SetNetem("port0", &Netem{Rate: 2_000_000}, nil, "fuitest0"); err != nil {
		t.Fatal(err)
	}
	tc, err := net.Dial("tcp", "10.9.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	start := time.Now()
	for range 64 { // 4 MiB
		if _, err := tc.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	tc.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, tc) // the sink closes once it has read it all
	took := time.Since(start)
	tc.Close()
	rate := float64(64*len(chunk)) / took.Seconds()
	t.Logf("4 MiB at rate 16mbit in %v: %.0f bytes/s", took, rate)
	if rate < 0.9*2_000_000 || rate > 1.1*2_000_000 {
		t.Errorf("rate 16mbit: %.0f bytes/s, want 2000000 ± 10 %%", rate)
	}

	if err := host.SetNetem("port0", nil, nil, "fuitest0"); err != nil {
		t.Fatal(err)
	}
	if d, _ := rtt(); d > base+20*time.Millisecond {
		t.Errorf("cleared, the RTT is %v; it was %v", d, base)
	}
	if to, from, _ := host.NetemOn("port0", "fuitest0"); to != nil || from != nil {
		t.Errorf("cleared, NetemOn = %+v, %+v", to, from)
	}
	out, _ := exec.Command("tc", "qdisc", "show", "dev", "port0").CombinedOutput()
	if regexp.MustCompile(`netem|ingress`).Match(out) {
		t.Errorf("qdiscs left on the port: %s", out)
	}
}
