//go:build linux

package executor

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/foldup/foldup/internal/vmtest"
	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/vm"
)

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
	vmtest.Images(t)
	e := newTestEnv(t)
	bin := filepath.Join(e.dir, "hostile.bin")
	build := exec.Command("go", "build", "-o", bin, "-ldflags=-s -w", "./testdata/hostile")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static: the guest has no libc
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building testdata/hostile: %v\n%s", err, out)
	}
	_, other := e.upInProcess(t, "other", otherProject)
	p, res := e.upInProcess(t, "hostile", stageProject(t, "hostile", "enable_ipv6: true", "vm1", true).String())
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
	g := dialGuest(t, vm.For(e.o.withDefaults().dirs(p.Name), "vm1"), "vm1")
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

	t.Run("ndp-link-local", func(t *testing.T) {
		// vm1 claims peer's link-local address (the EUI-64 one of its
		// MAC, as Docker's kernel forms it).
		peerMAC, _ := net.ParseMAC(peer.MAC)
		vmLL, _ := network.EUI64LinkLocal(vmMAC)
		peerLL, _ := network.EUI64LinkLocal(peerMAC)
		if got := seen(t, "/tmp/hostile eth0 na "+vmLL.String(), icmp6From(136, vmMAC, vmLL)); got == 0 {
			t.Fatal("control: vm1's advertisement of its own link-local address did not reach client")
		}
		if got := seen(t, "/tmp/hostile eth0 na "+peerLL.String(), icmp6From(136, vmMAC, peerLL)); got != 0 {
			t.Errorf("vm1's advertisement of peer's link-local %s reached client %d times", peerLL, got)
		}
		// The other way: peer, a container, claims vm1's link-local
		// address to client.
		stop := sniff(t, clientPID, icmp6From(136, peerMAC, vmLL))
		if out, code := e.exec(t, "hostile-peer-1", "/www/hostile", "eth0", "na", vmLL.String()); code != 0 {
			t.Fatalf("hostile in peer: %s", out)
		}
		time.Sleep(500 * time.Millisecond)
		if got := stop(); got != 0 {
			t.Errorf("peer's advertisement of vm1's link-local %s reached client %d times", vmLL, got)
		}
	})

	t.Run("dhcp-to-vm", func(t *testing.T) {
		// client, a container, answers DHCP from port 6767. What the
		// bridge sends down vm1's tap is what its client receives.
		if out, err := exec.Command("docker", "-H", e.eng.Host, "cp", bin, "hostile-client-1:/hostile").CombinedOutput(); err != nil {
			t.Fatalf("docker cp: %v\n%s", err, out)
		}
		clientMAC, _ := net.ParseMAC(client.MAC)
		toVM := func(dport uint16) func([]byte) bool {
			return func(f []byte) bool {
				if len(f) < 14 || !bytes.Equal(f[6:12], clientMAC) {
					return false
				}
				switch binary.BigEndian.Uint16(f[12:]) {
				case 0x0800:
					ihl := int(f[14]&0xf) * 4
					return len(f) >= 14+ihl+4 && f[23] == 17 && binary.BigEndian.Uint16(f[14+ihl+2:]) == dport
				case 0x86dd:
					return len(f) >= 58 && f[20] == 17 && binary.BigEndian.Uint16(f[56:]) == dport
				}
				return false
			}
		}
		fromClient := func(dport uint16, args ...string) int {
			t.Helper()
			stop := sniffLink(t, e.ns.Handle, vm1.Tap, true, toVM(dport))
			if out, code := e.exec(t, "hostile-client-1", append([]string{"/hostile", "eth0"}, args...)...); code != 0 {
				t.Fatalf("hostile in client: %s", out)
			}
			time.Sleep(500 * time.Millisecond)
			return stop()
		}
		if got := fromClient(6868, "udp", "6767", "6868"); got == 0 {
			t.Fatal("control: client's broadcast to an ordinary port did not reach vm1's tap")
		}
		if got := fromClient(68, "udp", "6767", "68"); got != 0 {
			t.Errorf("client's datagram from port 6767 to a DHCP client's port reached vm1's tap %d times", got)
		}
		if got := fromClient(546, "udp", "5470", "546"); got != 0 {
			t.Errorf("client's datagram from port 5470 to a DHCPv6 client's port reached vm1's tap %d times", got)
		}

		// A rogue server runs in client while vm1's DHCP client asks
		// again, three times: vm1 keeps foldup's lease, and nothing of
		// the rogue's reaches it, though it answered.
		rogue := netip.AddrFrom4([4]byte{vm1.IPv4.As4()[0], vm1.IPv4.As4()[1], vm1.IPv4.As4()[2], 77})
		stop := sniffLink(t, e.ns.Handle, vm1.Tap, true, toVM(68))
		var rogueOut string
		var wg sync.WaitGroup
		wg.Go(func() {
			// Not e.exec: no t.Fatal off the test's goroutine.
			out, _ := exec.Command("docker", "-H", e.eng.Host, "exec", "hostile-client-1", "/hostile", "eth0", "dhcpd", "6767", rogue.String(), "25").CombinedOutput()
			rogueOut = string(out)
		})
		time.Sleep(time.Second) // the rogue's socket is open
		for i := range 3 {
			g.must(t, "udhcpc -i eth0 -s /etc/udhcpc.sh -n -q -t 3 -T 1 -A 1 >/dev/null 2>&1; echo sent renew")
			addrs, _ := g.run(t, 10*time.Second, "ip -4 -o addr show dev eth0; ip -4 route show default")
			if !strings.Contains(addrs, " "+vm1.IPv4.String()+"/") || strings.Contains(addrs, rogue.String()) || !strings.Contains(addrs, "default via "+n.Gateway4.String()) {
				t.Errorf("renewal %d: vm1's address and route after the rogue answered:\n%s", i, addrs)
			}
		}
		wg.Wait()
		if got := stop(); got != 0 {
			t.Errorf("%d of the rogue's answers reached vm1's tap", got)
		}
		if !strings.Contains(rogueOut, "answered 1 with 2") {
			t.Errorf("the rogue server answered no DISCOVER, so the attack did not run:\n%s", rogueOut)
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
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		t.Fatalf("process %d's namespace: %v", pid, err)
	}
	defer ns.Close()
	return sniffLink(t, ns, "eth0", false, match)
}

// sniffLink counts the frames matching match that come in on ifname in
// namespace ns (out of it with outgoing: what a tap carries to its VM is
// the host's outgoing), until the returned function is called.
func sniffLink(t *testing.T, ns netns.NsHandle, ifname string, outgoing bool, match func(frame []byte) bool) func() int {
	t.Helper()
	fd, err := func() (int, error) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			return -1, err
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			return -1, err
		}
		defer netns.Set(orig)
		ifi, err := net.InterfaceByName(ifname)
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
		t.Fatalf("packet socket on %s: %v", ifname, err)
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
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && (ll.Pkttype == unix.PACKET_OUTGOING) != outgoing {
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
