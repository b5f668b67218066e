//go:build linux

package executor

import (
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/vm"
)

// The default network with IPv6 on and nothing else said: an automatic
// ULA /64 in the default mode, SLAAC.

// TestVMIPv6 boots a VM on a network with IPv6 in SLAAC mode: the guest
// kernel forms its address from foldup's router advertisement, and that
// must be the address the plan gave it (EUI-64 of its MAC), the one
// foldup's DNS serves as its AAAA record, and the one the firewall lets
// it send from. A container finds the VM by name over IPv6 and the VM
// the container.
func TestVMIPv6(t *testing.T) {
	e := newTestEnv(t)
	p, res := e.upInProcess(t, "six", stageProject(t, "six", "enable_ipv6: true", "vm6", false).String())
	pl := res.Plan
	vm6, peer := planMember(t, pl, "vm6").NICs[0], planMember(t, pl, "peer").NICs[0]
	n := pl.Network(vm6.Network)
	if !n.Subnet6.IsValid() || n.IPv6Mode != "slaac" || !vm6.IPv6.IsValid() || !n.Subnet6.Contains(vm6.IPv6) {
		t.Fatalf("plan: network %s has %v in mode %q, vm6 has %v", n.Name, n.Subnet6, n.IPv6Mode, vm6.IPv6)
	}
	const peerCtr = "six-peer-1"
	g := dialGuest(t, vm.For(e.o.withDefaults().dirs(p.Name), "vm6"), "vm6")

	// The guest's SLAAC address: formed by its kernel from foldup's RA
	// (dynamic: it has a valid lifetime), once DAD is done.
	var addrs string
	for deadline := time.Now().Add(30 * time.Second); ; {
		addrs = g.must(t, "ip -6 addr show dev eth0")
		if strings.Contains(addrs, vm6.IPv6.String()+"/64") && !strings.Contains(addrs, "tentative") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vm6 has no %s/64 from SLAAC in 30 s:\n%s", vm6.IPv6, addrs)
		}
		time.Sleep(time.Second)
	}
	for _, l := range strings.Split(addrs, "\n") {
		if strings.Contains(l, "scope global") && !strings.Contains(l, vm6.IPv6.String()+"/64") {
			t.Errorf("vm6 has another global address: %q", l)
		}
		if strings.Contains(l, vm6.IPv6.String()+"/64") && !strings.Contains(l, "dynamic") {
			t.Errorf("vm6's address was not formed from a router advertisement: %q", l)
		}
	}
	// Its default route is the router that advertised: a link-local
	// address of the bridge.
	routes := g.must(t, "ip -6 route show")
	m := regexp.MustCompile(`default via (\S+) dev eth0`).FindStringSubmatch(routes)
	var routerLL netip.Addr
	if m != nil {
		routerLL, _ = netip.ParseAddr(m[1])
	}
	if !slices.Contains(linkLocals(t, e, n.Bridge), routerLL) {
		t.Fatalf("vm6's IPv6 default route is not via a link-local address of the bridge %v:\n%s", linkLocals(t, e, n.Bridge), routes)
	}

	// The advertisements reach the VM only: Docker configures the
	// container (its route is Docker's, via the gateway), and an
	// advertisement arriving while it does fails the container's start.
	if c := e.netCounters(t, peerCtr); c["Icmp6InRouterAdvertisements"] != 0 {
		t.Errorf("peer got %d router advertisements, want none", c["Icmp6InRouterAdvertisements"])
	}
	if out, _ := e.exec(t, peerCtr, "ip", "-6", "route", "show", "default"); !strings.Contains(out, "default via "+n.Gateway6.String()+" dev eth0") || strings.Contains(out, "proto ra") {
		t.Errorf("peer's IPv6 default route is not Docker's via %s:\n%s", n.Gateway6, out)
	}

	// A container resolves the VM's AAAA record (through Docker's
	// resolver, which asks foldup's) and reaches it by address and by
	// name.
	out, code := e.exec(t, peerCtr, "nslookup", "-type=aaaa", "vm6")
	if code != 0 || !strings.Contains(out, "Address: "+vm6.IPv6.String()) {
		t.Errorf("nslookup -type=aaaa vm6 in peer (exit %d):\n%s\nwant %s", code, out, vm6.IPv6)
	}
	out, code = e.exec(t, peerCtr, "wget", "-q", "-O", "-", "http://["+vm6.IPv6.String()+"]/")
	if code != 0 || strings.TrimSpace(out) != "hello from vm6" {
		t.Errorf("peer fetching http://[%s]/: %q (exit %d)", vm6.IPv6, out, code)
	}
	out, code = e.exec(t, peerCtr, "ping", "-6", "-c", "2", "-W", "3", "vm6")
	if code != 0 || !strings.Contains(out, "("+vm6.IPv6.String()+")") {
		t.Errorf("ping -6 vm6 in peer (exit %d):\n%s", code, out)
	}

	// And the VM finds the container: its AAAA record from foldup's
	// server, its page over IPv6.
	if out, code := g.run(t, 30*time.Second, "ping -6 -c 2 -W 3 peer"); code != 0 || !strings.Contains(out, "("+peer.IPv6.String()+")") {
		t.Errorf("ping -6 peer in vm6 (exit %d):\n%s", code, out)
	}
	if out, code := g.run(t, 30*time.Second, "timeout 5 wget -q -O - http://["+peer.IPv6.String()+"]/"); code != 0 || out != "hello from peer" {
		t.Errorf("vm6 fetching http://[%s]/: %q (exit %d)", peer.IPv6, out, code)
	}

	// Other IPv6 sources: an unassigned address of the prefix, and the
	// gateway's (foldup's DNS server). Only the planned one gets through.
	t.Run("ipv6-source", func(t *testing.T) {
		free := netip.MustParseAddr(strings.TrimSuffix(n.Subnet6.Addr().String(), "::") + "::bad:1")
		ping := func(src netip.Addr) (bool, int64) {
			var code int
			d := e.counted(t, peerCtr, func() {
				_, code = g.run(t, 30*time.Second, "ping -6 -c 1 -W 2 -I "+src.String()+" "+peer.IPv6.String())
			}, "Icmp6InEchos")
			return code == 0, d[0]
		}
		if ok, got := ping(vm6.IPv6); !ok || got == 0 {
			t.Fatalf("control: vm6 cannot ping peer from its own address (reply %v, peer got %d echo requests)", ok, got)
		}
		// No duplicate address detection: the gateway's address would
		// fail it.
		g.must(t, "echo 0 >/proc/sys/net/ipv6/conf/eth0/accept_dad")
		t.Cleanup(func() { g.run(t, 30*time.Second, "echo 1 >/proc/sys/net/ipv6/conf/eth0/accept_dad") })
		for _, a := range []netip.Addr{free, n.Gateway6} {
			g.must(t, "ip -6 addr add "+a.String()+"/128 dev eth0")
			if ok, got := ping(a); ok || got != 0 {
				t.Errorf("ping from vm6 with source %s reached peer: reply %v, peer got %d echo requests", a, ok, got)
			}
			g.must(t, "ip -6 addr del "+a.String()+"/128 dev eth0")
		}
	})

	// The router's link-layer address, as foldup's RA gives it (vm6's
	// neighbour entry for its default router comes from the RA's source
	// link-layer option: vm6 has sent nothing through that router), must
	// be the bridge's, and vm6 must reach its router at it.
	t.Run("router-mac", func(t *testing.T) {
		brMAC := bridgeMAC(t, e, n.Bridge)
		neigh := g.must(t, "ip -6 neigh show dev eth0")
		var got string
		for _, l := range strings.Split(neigh, "\n") {
			if f := strings.Fields(l); len(f) > 2 && f[0] == routerLL.String() && f[1] == "lladdr" {
				got = f[2]
			}
		}
		if got != brMAC {
			t.Errorf("vm6 learned its router %s at %q, but the bridge's MAC is %s:\n%s", routerLL, got, brMAC, neigh)
		}
		if out, code := g.run(t, 30*time.Second, "ping -6 -c 2 -W 2 "+routerLL.String()+"%eth0"); code != 0 {
			t.Errorf("vm6 cannot ping its default router %s (exit %d):\n%s", routerLL, code, out)
		}
	})

	// The router's link-local address: vm6's own default route points at
	// it, and so does the one each container takes from foldup's RA. A
	// member that claims it takes the traffic of every member that
	// routes through it. vm6 claims it twice, as the guest kernel does
	// once it has the address (no DAD): a neighbour solicitation from it
	// (its source link-layer option updates the receiver's entry for the
	// source), then an unsolicited neighbour advertisement with the
	// override flag (sent for a new address with ndisc_notify on). peer,
	// which knows the router, must believe neither. (The network
	// package's TestGuardRouterLinkLocal tries each from a true entry.)
	t.Run("router-link-local", func(t *testing.T) {
		peerRouter := func() string {
			out, _ := e.exec(t, peerCtr, "ip", "-6", "neigh", "show", "dev", "eth0")
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); len(f) > 2 && f[0] == routerLL.String() && f[1] == "lladdr" {
					return f[2]
				}
			}
			return ""
		}
		out, code := e.exec(t, peerCtr, "ping", "-6", "-c", "1", "-W", "2", routerLL.String()+"%eth0")
		before := peerRouter()
		if brMAC := bridgeMAC(t, e, n.Bridge); code != 0 || before != brMAC {
			t.Fatalf("control: peer does not reach its router %s at the bridge's MAC %s (its entry: %q; ping exit %d):\n%s", routerLL, brMAC, before, code, out)
		}
		// hijacked waits a while for peer's entry to move to vm6's MAC
		// (a solicitation is sent again after a second), and reports
		// what then reaches vm6.
		hijacked := func(how string) bool {
			t.Helper()
			after := peerRouter()
			for deadline := time.Now().Add(2 * time.Second); after != vm6.MAC && time.Now().Before(deadline); after = peerRouter() {
				time.Sleep(200 * time.Millisecond)
			}
			if after != vm6.MAC {
				return false
			}
			// Where peer's packets for its router now go: vm6 counts them.
			echos := func() int64 {
				n, _ := strconv.ParseInt(g.must(t, "grep -w Icmp6InEchos /proc/net/snmp6 | tr -s ' ' | cut -d' ' -f2"), 10, 64)
				return n
			}
			n0 := echos()
			e.exec(t, peerCtr, "ping", "-6", "-c", "2", "-W", "2", routerLL.String()+"%eth0")
			t.Errorf("vm6 took over the router's link-local address %s by %s: peer's neighbour entry for it went from %s to %s (vm6's MAC), and %d of peer's 2 echo requests to its router reached vm6", routerLL, how, before, after, echos()-n0)
			return true
		}
		addr := routerLL.String() + "/64 dev eth0"
		t.Cleanup(func() {
			g.run(t, 30*time.Second, "ip -6 addr del "+addr+"; echo 0 >/proc/sys/net/ipv6/conf/eth0/ndisc_notify; echo 1 >/proc/sys/net/ipv6/conf/eth0/accept_dad")
		})
		// The solicitation first: with ndisc_notify off, taking the
		// address advertises nothing. vm6's own link-local address goes
		// for the while, so that the router's is the source of what it
		// sends to peer's (busybox ping cannot bind a link-local source).
		own := vm6.IPv6.As16()
		copy(own[:8], []byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0})
		ownLL := netip.AddrFrom16(own).String() + "/64 dev eth0"
		t.Cleanup(func() { g.run(t, 30*time.Second, "ip -6 addr add "+ownLL) })
		peerLL := linkLocalOf(t, e, peerCtr)
		g.must(t, "echo 0 >/proc/sys/net/ipv6/conf/eth0/accept_dad; ip -6 addr add "+addr+"; ip -6 addr del "+ownLL+"; ip -6 neigh flush dev eth0")
		g.run(t, 30*time.Second, "ping -6 -c 1 -W 2 "+peerLL.String()+"%eth0")
		g.must(t, "ip -6 addr add "+ownLL)
		if hijacked("a neighbour solicitation from it") {
			return
		}
		g.must(t, "ip -6 addr del "+addr+"; echo 1 >/proc/sys/net/ipv6/conf/eth0/ndisc_notify; ip -6 addr add "+addr)
		hijacked("an unsolicited neighbour advertisement")
	})
}

// linkLocalOf returns the link-local address of container ctr's eth0.
func linkLocalOf(t *testing.T, e *testEnv, ctr string) netip.Addr {
	t.Helper()
	out, _ := e.exec(t, ctr, "ip", "-6", "addr", "show", "dev", "eth0")
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr().IsLinkLocalUnicast() {
			return p.Addr()
		}
	}
	t.Fatalf("%s's eth0 has no link-local address:\n%s", ctr, out)
	return netip.Addr{}
}

// bridgeMAC returns the MAC of interface dev in the test's namespace.
func bridgeMAC(t *testing.T, e *testEnv, dev string) string {
	t.Helper()
	f := strings.Fields(e.ns.MustRun(t, "ip", "-o", "link", "show", "dev", dev))
	for i := range f {
		if f[i] == "link/ether" && i+1 < len(f) {
			return f[i+1]
		}
	}
	t.Fatalf("no MAC for %s", dev)
	return ""
}

// linkLocals returns the link-local addresses of interface dev in the
// test's namespace.
func linkLocals(t *testing.T, e *testEnv, dev string) []netip.Addr {
	t.Helper()
	out := e.ns.MustRun(t, "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "link")
	var as []netip.Addr
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr().IsLinkLocalUnicast() {
			as = append(as, p.Addr())
		}
	}
	return as
}

// TestVMStablePrivacy boots a VM on a stable-privacy network: foldup
// gives the guest each interface's RFC 7217 secret on its kernel command
// line, the guest's init sets it before the link comes up, and the
// address its kernel forms is the one the plan computed, the only one
// DNS serves and the firewall lets it send from: a container fetches the
// VM's page by name over IPv6, and the VM the container's.
func TestVMStablePrivacy(t *testing.T) {
	e := newTestEnv(t)
	p, res := e.upInProcess(t, "priv", stageProject(t, "priv", "enable_ipv6: true\nx-foldup: {ipv6: stable-privacy}", "vm6", false).String())
	pl := res.Plan
	vm6, peer := planMember(t, pl, "vm6").NICs[0], planMember(t, pl, "peer").NICs[0]
	if n := pl.Network(vm6.Network); n.IPv6Mode != "stable-privacy" || !n.Subnet6.Contains(vm6.IPv6) {
		t.Fatalf("plan: network %s in mode %q, vm6 has %v", n.Name, n.IPv6Mode, vm6.IPv6)
	}
	g := dialGuest(t, vm.For(e.o.withDefaults().dirs(p.Name), "vm6"), "vm6")
	var addrs string
	for deadline := time.Now().Add(30 * time.Second); ; {
		addrs = g.must(t, "ip -6 addr show dev eth0 scope global")
		if strings.Contains(addrs, vm6.IPv6.String()+"/64") && !strings.Contains(addrs, "tentative") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vm6 did not form the planned %s/64 in 30 s:\n%s\n(EUI-64 would be another address: the secret did not reach the guest)", vm6.IPv6, addrs)
		}
		time.Sleep(time.Second)
	}
	if n := strings.Count(addrs, "scope global"); n != 1 {
		t.Errorf("vm6 has %d global addresses, want the planned one:\n%s", n, addrs)
	}
	out, code := e.exec(t, "priv-peer-1", "wget", "-q", "-O", "-", "http://vm6/")
	if code != 0 || strings.TrimSpace(out) != "hello from vm6" {
		t.Errorf("peer fetching http://vm6/: %q (exit %d)", out, code)
	}
	if out, code := g.run(t, 30*time.Second, "timeout 5 wget -q -O - http://["+peer.IPv6.String()+"]/"); code != 0 || out != "hello from peer" {
		t.Errorf("vm6 fetching http://[%s]/ from its address: %q (exit %d)", peer.IPv6, out, code)
	}
}
