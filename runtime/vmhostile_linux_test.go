package runtime

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/foldup/foldup/internal/vmtest"
)

const hostileProject = `
name: hostile
networks:
  default:
    enable_ipv6: true
services:
  peer:
    image: foldup-test/busybox:1
    init: true
    command: ["sh", "-c", "mkdir -p /www && echo hello from peer > /www/index.html && exec httpd -f -p 80 -h /www"]
  client:
    image: foldup-test/busybox:1
    init: true
    command: ["sleep", "3600"]
vms:
  vm1:
    kernel: %s
    initrd: %s
    cmdline: "console=ttyS0 quiet panic=-1"
    memory: 256m
    stop_grace_period: 1s
`

// otherProject is another project on the same host: what vm1 must not
// reach.
const otherProject = `
name: other
services:
  target:
    image: foldup-test/busybox:1
    init: true
    command: ["sh", "-c", "mkdir -p /www && echo hello from target > /www/index.html && exec httpd -f -p 80 -h /www"]
`

// TestVMHostile attacks from inside a real VM what TestVMGuard does not:
// root in the guest runs a program (testdata/hostile, fetched from a
// container of the project) that writes forged frames straight to its
// NIC, and tries to reach what is not its project's. What arrives is read
// off a packet socket in the client container's own namespace, so a
// forged frame that got through would be seen whatever the receiving
// kernel then did with it; each forgery is preceded by its honest
// counterpart, which must arrive.
//
//   - ARP: vm1 claims peer's IPv4 address; vm1 claims its own address
//     for another MAC.
//   - NDP: vm1 advertises peer's IPv6 address as its own.
//   - A rogue router advertisement (default router, prefix
//     2001:db8:bad::/64).
//   - Another project's container and gateway, and a service the host
//     runs on the gateway's address: nothing answers, and the other
//     container's counters show nothing arrived.
func TestVMHostile(t *testing.T) {
	kernel, initrd := vmtest.Images(t)
	e := newTestEnv(t)
	bin := filepath.Join(e.dir, "hostile.bin")
	build := exec.Command("go", "build", "-o", bin, "-ldflags=-s -w", "./testdata/hostile")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static: the guest has no libc
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building testdata/hostile: %v\n%s", err, out)
	}
	_, other := e.upInProcess(t, "other", otherProject)
	p, res := e.upInProcess(t, "hostile", fmt.Sprintf(hostileProject, kernel, initrd))
	pl := res.Plan
	vm1, peer, client := planMember(t, pl, "vm1").NICs[0], planMember(t, pl, "peer").NICs[0], planMember(t, pl, "client").NICs[0]
	n := pl.Network(vm1.Network)
	target := planMember(t, other.Plan, "target").NICs[0]
	otherGW := other.Plan.Network(target.Network).Gateway4
	vmMAC, _ := net.ParseMAC(vm1.MAC)
	clientPID := e.containerPID(t, "hostile-client-1")

	// The program reaches the guest through peer's web server.
	if out, err := exec.Command("docker", "-H", e.eng.Host, "cp", bin, "hostile-peer-1:/www/hostile").CombinedOutput(); err != nil {
		t.Fatalf("docker cp: %v\n%s", err, out)
	}
	g := dialGuest(t, e.o.withDefaults().dirs(p.Name).vm("vm1"), "vm1")
	g.must(t, "wget -q -O /tmp/hostile http://"+peer.IPv4.String()+"/hostile && chmod +x /tmp/hostile")
	// vm1 has its IPv6 address (SLAAC) before the NDP checks.
	waitFor(t, 30*time.Second, func() bool {
		out, _ := g.run(t, 10*time.Second, "ip -6 addr show dev eth0")
		return strings.Contains(out, vm1.IPv6.String()+"/64") && !strings.Contains(out, "tentative")
	})

	// seen runs cmd in the guest and returns how many frames matching
	// match reached client meanwhile (and a moment after).
	seen := func(t *testing.T, cmd string, match func(frame []byte) bool) int {
		t.Helper()
		stop := sniff(t, clientPID, match)
		out := g.must(t, cmd)
		if !strings.Contains(out, "sent ") {
			t.Fatalf("%q printed %q", cmd, out)
		}
		time.Sleep(500 * time.Millisecond)
		return stop()
	}
	arpFrom := func(sha net.HardwareAddr, spa netip.Addr) func([]byte) bool {
		return func(f []byte) bool {
			return len(f) >= 42 && binary.BigEndian.Uint16(f[12:]) == 0x0806 &&
				bytes.Equal(f[22:28], sha) && bytes.Equal(f[28:32], spa.AsSlice())
		}
	}
	icmp6From := func(typ byte, mac net.HardwareAddr, target netip.Addr) func([]byte) bool {
		return func(f []byte) bool {
			if len(f) < 62 || binary.BigEndian.Uint16(f[12:]) != 0x86dd || f[20] != 58 || f[54] != typ || !bytes.Equal(f[6:12], mac) {
				return false
			}
			return !target.IsValid() || len(f) >= 78 && bytes.Equal(f[62:78], target.AsSlice())
		}
	}

	t.Run("arp", func(t *testing.T) {
		if got := seen(t, "/tmp/hostile eth0 arp "+vm1.MAC+" "+vm1.IPv4.String(), arpFrom(vmMAC, vm1.IPv4)); got == 0 {
			t.Fatal("control: vm1's ARP for its own address did not reach client")
		}
		if got := seen(t, "/tmp/hostile eth0 arp "+vm1.MAC+" "+peer.IPv4.String(), arpFrom(vmMAC, peer.IPv4)); got != 0 {
			t.Errorf("vm1's ARP claiming peer's %s reached client %d times", peer.IPv4, got)
		}
		clientMAC, _ := net.ParseMAC(client.MAC)
		if got := seen(t, "/tmp/hostile eth0 arp "+client.MAC+" "+vm1.IPv4.String(), arpFrom(clientMAC, vm1.IPv4)); got != 0 {
			t.Errorf("vm1's ARP giving its address client's MAC reached client %d times", got)
		}
	})
	t.Run("ndp", func(t *testing.T) {
		if got := seen(t, "/tmp/hostile eth0 na "+vm1.IPv6.String(), icmp6From(136, vmMAC, vm1.IPv6)); got == 0 {
			t.Fatal("control: vm1's advertisement of its own address did not reach client")
		}
		if got := seen(t, "/tmp/hostile eth0 na "+peer.IPv6.String(), icmp6From(136, vmMAC, peer.IPv6)); got != 0 {
			t.Errorf("vm1's advertisement of peer's %s reached client %d times", peer.IPv6, got)
		}
		for _, ll := range linkLocals(t, e, n.Bridge) {
			if got := seen(t, "/tmp/hostile eth0 na "+ll.String(), icmp6From(136, vmMAC, ll)); got != 0 {
				t.Errorf("vm1's advertisement of the bridge's %s reached client %d times", ll, got)
			}
		}
	})
	t.Run("rogue-ra", func(t *testing.T) {
		if got := seen(t, "/tmp/hostile eth0 ra", icmp6From(134, vmMAC, netip.Addr{})); got != 0 {
			t.Errorf("vm1's router advertisement reached client %d times", got)
		}
	})

	t.Run("other-project", func(t *testing.T) {
		if out, code := g.run(t, 30*time.Second, "ping -c 1 -W 2 "+peer.IPv4.String()); code != 0 {
			t.Fatalf("control: vm1 cannot ping peer:\n%s", out)
		}
		d := e.counted(t, "other-target-1", func() {
			if out, code := g.run(t, 30*time.Second, "ping -c 2 -W 1 "+target.IPv4.String()); code == 0 {
				t.Errorf("vm1 pinged the other project's target at %s:\n%s", target.IPv4, out)
			}
			if out, code := g.run(t, 30*time.Second, "timeout 3 wget -q -O - http://"+target.IPv4.String()+"/"); code == 0 {
				t.Errorf("vm1 fetched the other project's target: %q", out)
			}
		}, "Icmp.InEchos", "Tcp.InSegs")
		if d[0] != 0 || d[1] != 0 {
			t.Errorf("the other project's target got %d echo requests and %d TCP segments from vm1", d[0], d[1])
		}
	})

	t.Run("host", func(t *testing.T) {
		// A service of the host's, on all its addresses; the host itself
		// reaches it.
		www := filepath.Join(e.dir, "hostwww")
		os.MkdirAll(www, 0o755)
		os.WriteFile(filepath.Join(www, "index.html"), []byte("the host's own\n"), 0o644)
		ctx, cancel := context.WithCancel(context.Background())
		httpd := exec.CommandContext(ctx, "ip", "netns", "exec", e.ns.Name, "busybox", "httpd", "-f", "-p", "2222", "-h", www)
		if err := httpd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); httpd.Wait() })
		url := "http://" + n.Gateway4.String() + ":2222/"
		waitFor(t, 10*time.Second, func() bool {
			out, _ := e.ns.Run(t, "timeout", "3", "busybox", "wget", "-q", "-O", "-", url)
			return strings.TrimSpace(out) == "the host's own"
		})
		// DNS at the gateway: served.
		if out, code := g.run(t, 30*time.Second, "nslookup peer."+pl.Domain+" "+n.Gateway4.String()); code != 0 || !strings.Contains(out, peer.IPv4.String()) {
			t.Errorf("control: vm1's DNS at its gateway (exit %d):\n%s", code, out)
		}
		for _, addr := range []string{n.Gateway4.String(), otherGW.String()} {
			if out, code := g.run(t, 30*time.Second, "timeout 3 wget -q -O - http://"+addr+":2222/"); code == 0 {
				t.Errorf("vm1 reached the host's own service at %s:2222: %q", addr, out)
			}
		}
		if out, code := g.run(t, 30*time.Second, "timeout 5 nslookup peer."+pl.Domain+" "+otherGW.String()); code == 0 && strings.Contains(out, peer.IPv4.String()) {
			t.Errorf("vm1 used the other project's DNS server at %s:\n%s", otherGW, out)
		}
	})
}

// containerPID returns the PID of container name's first process.
func (e *testEnv) containerPID(t *testing.T, name string) int {
	t.Helper()
	c, err := e.eng.Client.ContainerInspect(t.Context(), name)
	if err != nil || c.State == nil || c.State.Pid == 0 {
		t.Fatalf("container %s: %v", name, err)
	}
	return c.State.Pid
}

// sniff opens a packet socket on eth0 in the network namespace of
// process pid and counts the frames coming in that match, until the
// returned function is called; it returns the count.
func sniff(t *testing.T, pid int, match func(frame []byte) bool) func() int {
	t.Helper()
	fd, err := func() (int, error) {
		goruntime.LockOSThread()
		defer goruntime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			return -1, err
		}
		defer orig.Close()
		ns, err := netns.GetFromPid(pid)
		if err != nil {
			return -1, err
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			return -1, err
		}
		defer netns.Set(orig)
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return -1, err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return -1, err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return -1, err
		}
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		return fd, nil
	}()
	if err != nil {
		t.Fatalf("packet socket in process %d's namespace: %v", pid, err)
	}
	var count atomic.Int64
	var stopped atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 65536)
		for !stopped.Load() {
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			if match(buf[:n]) {
				count.Add(1)
			}
		}
	})
	var once sync.Once
	stop := func() int {
		once.Do(func() {
			stopped.Store(true)
			wg.Wait()
			unix.Close(fd)
		})
		return int(count.Load())
	}
	t.Cleanup(func() { stop() })
	return stop
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
