//go:build linux && foldup_netemguest

package network

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestNetemKernel measures SetNetem on a kernel with netem. It is built
// only with -tags foldup_netemguest, into the binary TestNetemInVM boots
// in a guest whose kernel has netem: a member
// namespace behind a veth, the port's end in this one. The RTT of a UDP
// echo rises by the delay (±20 %), twice with direction both (through an
// ifb); loss 100 % lets nothing through; rate caps a TCP stream to within
// 10 %; clearing brings the RTT back and removes the ifb; NetemOn reads
// back what applies.
func TestNetemKernel(t *testing.T) {
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
	// Applied again (every up, every container start): one redirect.
	for range 2 {
		if err := host.SetNetem("port0", &Netem{Delay: 50 * time.Millisecond}, &Netem{Delay: 50 * time.Millisecond}, "fuitest0"); err != nil {
			t.Fatalf("applying the same netem again: %v", err)
		}
	}
	if fs, err := netlink.FilterList(port, netlink.MakeHandle(0xffff, 0)); err != nil || len(fs) != 1 {
		t.Errorf("after three applies, the port's ingress filters: %d (%v), want 1", len(fs), err)
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
