package network

import (
	"bufio"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/foldup/foldup/internal/nstest"
	"github.com/foldup/foldup/internal/systest"
)

var mustAddr = netip.MustParseAddr

// serve runs pkt.py serve in ns until the test ends: each connection (or
// datagram) gets the peer's address back.
func serve(t *testing.T, ns *nstest.NS, proto, port string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "ip", "netns", "exec", ns.Name, "python3", pkt, "serve", proto, port, "60")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "listening\n" {
		t.Fatalf("server in %s did not start: %q", ns.Name, line)
	}
}

// connect reports whether a connection from ns to host:port was answered,
// and with which peer address the server saw.
func connect(t *testing.T, ns *nstest.NS, proto, host, port string) (string, bool) {
	t.Helper()
	out, err := ns.Run(t, "python3", pkt, "connect", proto, host, port)
	return strings.TrimSpace(out), err == nil
}

// TestCrossNetwork: members of two networks of a project do not reach
// each other through the host's routing; a member on both reaches both.
func TestCrossNetwork(t *testing.T) {
	l := newLab(t)
	l.net(0, Net{})
	l.net(1, Net{})
	a, b := l.member(10, 0), l.member(10, 1)
	both := l.member(20, 0, 1)
	serve(t, b, "tcp", "80")
	// The host's own interfaces that took router advertisements keep
	// taking them once it forwards IPv6.
	l.host.MustRun(t, "ip", "link", "add", "fuslaac0", "type", "veth", "peer", "name", "fuslaac1")
	l.host.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.fuslaac0.accept_ra=1")
	if err := l.h.EnableForwarding(true); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(l.host.MustRun(t, "sysctl", "-n", "net.ipv6.conf.fuslaac0.accept_ra")); got != "2" {
		t.Errorf("accept_ra of a host interface is %s after EnableForwarding, want 2", got)
	}
	if !ping(t, a, "10.78.0.10") || !ping(t, a, "-6", "fd00:78::a") {
		t.Fatal("no routing between the networks before the firewall: the test shows nothing")
	}
	if _, ok := connect(t, a, "tcp", "10.78.0.10", "80"); !ok {
		t.Fatal("no TCP between the networks before the firewall: the test shows nothing")
	}
	l.apply()
	// TCP between members skips conntrack in the bridge table; across
	// networks it must still be dropped.
	if _, ok := connect(t, a, "tcp", "10.78.0.10", "80"); ok {
		t.Error("TCP crossed between networks")
	}
	if ping(t, a, "10.78.0.10") || ping(t, b, "10.77.0.10") {
		t.Error("IPv4 crossed between networks")
	}
	if ping(t, a, "-6", "fd00:78::a") {
		t.Error("IPv6 crossed between networks")
	}
	if !ping(t, both, "10.77.0.10") || !ping(t, both, "10.78.0.10") {
		t.Error("a member on both networks does not reach both")
	}
	if !ping(t, a, "10.77.0.20") {
		t.Error("members of one network do not reach each other")
	}
}

// TestOutbound: a NAT network reaches the outside, masqueraded; an
// isolated one, a drop one and one whose chain is empty do not; the
// user's chain decides once it has rules.
func TestOutbound(t *testing.T) {
	systest.Command(t, "nft")
	l := newLab(t)
	o := l.outside()
	l.net(0, Net{Outbound: OutboundNAT})
	l.net(1, Net{Isolated: true, Outbound: OutboundDrop})
	l.net(2, Net{Outbound: OutboundDrop})
	l.net(3, Net{Outbound: "audit"})
	nat, iso, dropped, audited := l.member(10, 0), l.member(10, 1), l.member(10, 2), l.member(10, 3)
	serve(t, o, "tcp", "7000")

	for _, m := range []*nstest.NS{nat, iso, dropped, audited} {
		if !ping(t, m, "192.0.2.2") {
			t.Fatalf("%s cannot reach the outside before the firewall: the test shows nothing", m.Name)
		}
	}
	if peer, _ := connect(t, nat, "tcp", "192.0.2.2", "7000"); peer != "10.77.0.10" {
		t.Fatalf("before the firewall the outside sees %q, want the member's own address", peer)
	}

	l.apply()
	if peer, ok := connect(t, nat, "tcp", "192.0.2.2", "7000"); !ok || peer != "192.0.2.1" {
		t.Errorf("NAT network: connected %v, outside saw %q; want masqueraded to 192.0.2.1", ok, peer)
	}
	if !ping(t, nat, "192.0.2.2") {
		t.Error("NAT network: ping to the outside failed")
	}
	for name, m := range map[string]*nstest.NS{"isolated": iso, "drop": dropped, "chain (empty)": audited} {
		if ping(t, m, "192.0.2.2") {
			t.Errorf("%s network reached the outside", name)
		}
	}
	l.host.MustRun(t, "nft", "add", "rule", "inet", "foldup-test", "audit", "ip", "daddr", "192.0.2.2", "tcp", "dport", "7000", "accept")
	if peer, ok := connect(t, audited, "tcp", "192.0.2.2", "7000"); !ok || peer != "192.0.2.1" {
		t.Errorf("chain network after the user's accept: connected %v, outside saw %q", ok, peer)
	}
	if ping(t, audited, "192.0.2.2") {
		t.Error("chain network: ping passed, which the user's chain does not accept")
	}
}

// TestMemberInput: the members of any network, isolated or NAT, reach
// the host itself only for DNS at their gateway, DHCP, NDP and a ping of
// their gateway: not another port of the gateway, not another address of
// the host's, not another network's gateway.
func TestMemberInput(t *testing.T) {
	l := newLab(t)
	l.outside() // 192.0.2.1: another address of the host's
	l.net(0, Net{Isolated: true, Outbound: OutboundDrop})
	l.net(1, Net{})
	iso, open := l.member(10, 0), l.member(10, 1)
	for _, p := range []string{"53", "5353"} {
		serve(t, l.host, "udp", p)
		serve(t, l.host, "tcp", p)
	}
	for _, m := range []*nstest.NS{iso, open} {
		if _, ok := connect(t, m, "tcp", "192.0.2.1", "5353"); !ok {
			t.Fatal("the host's server is not reachable before the firewall: the test shows nothing")
		}
	}
	l.apply()
	for _, c := range []struct {
		name    string
		m       *nstest.NS
		gw, gw6 string
		otherGW string
	}{{"isolated", iso, "10.77.0.1", "fd00:77::1", "10.78.0.1"}, {"NAT", open, "10.78.0.1", "fd00:78::1", "10.77.0.1"}} {
		for _, proto := range []string{"udp", "tcp"} {
			if _, ok := connect(t, c.m, proto, c.gw, "53"); !ok {
				t.Errorf("%s: DNS over %s to the gateway blocked", c.name, proto)
			}
			if _, ok := connect(t, c.m, proto, c.gw6, "53"); !ok {
				t.Errorf("%s: DNS over %s to the IPv6 gateway blocked", c.name, proto)
			}
			if _, ok := connect(t, c.m, proto, c.gw, "5353"); ok {
				t.Errorf("%s: %s to another port of the gateway passed", c.name, proto)
			}
			if _, ok := connect(t, c.m, proto, "192.0.2.1", "53"); ok {
				t.Errorf("%s: %s port 53 of another host address passed", c.name, proto)
			}
			if _, ok := connect(t, c.m, proto, c.otherGW, "53"); ok {
				t.Errorf("%s: %s port 53 of the other network's gateway passed", c.name, proto)
			}
		}
		if !ping(t, c.m, c.gw) {
			t.Errorf("%s: ping to the gateway blocked", c.name)
		}
		if ping(t, c.m, "192.0.2.1") {
			t.Errorf("%s: ping to another host address passed", c.name)
		}
	}
	// NDP still works: the gateway's IPv6 address was resolved above; a
	// fresh neighbour entry is resolved again.
	iso.MustRun(t, "ip", "-6", "neigh", "flush", "all")
	if _, ok := connect(t, iso, "udp", "fd00:77::1", "53"); !ok {
		t.Error("isolated: neighbour discovery of the gateway blocked")
	}
}

// TestInbound: nothing reaches a member from outside unless a port is
// forwarded to it; an undeclared port leads nowhere.
func TestInbound(t *testing.T) {
	l := newLab(t)
	o := l.outside()
	l.net(0, Net{})
	m := l.member(10, 0)
	serve(t, m, "tcp", "80")
	serve(t, m, "tcp", "9090")
	if _, ok := connect(t, o, "tcp", "10.77.0.10", "80"); !ok {
		t.Fatal("the member is not reachable from outside before the firewall: the test shows nothing")
	}
	l.cfg.Forwards = []Forward{{Protocol: "tcp", HostPort: 8080, To: mustAddr("10.77.0.10"), Port: 80}}
	l.apply()
	if _, ok := connect(t, o, "tcp", "10.77.0.10", "80"); ok {
		t.Error("unsolicited connection from outside reached the member")
	}
	if _, ok := connect(t, o, "tcp", "192.0.2.1", "9090"); ok {
		t.Error("an undeclared host port reached the member")
	}
	if peer, ok := connect(t, o, "tcp", "192.0.2.1", "8080"); !ok || peer != "192.0.2.2" {
		t.Errorf("forwarded port from outside: connected %v, member saw %q", ok, peer)
	}
}

// TestForwardPort: a forwarded port reaches the member from the host
// (localhost, the gateway, another address), from another member
// (hairpin) and, on IPv6, at the gateway; a port bound to one host
// address answers only there.
func TestForwardPort(t *testing.T) {
	l := newLab(t)
	l.outside()
	l.net(0, Net{Isolated: true, Outbound: OutboundDrop})
	m, other := l.member(10, 0), l.member(11, 0)
	serve(t, m, "tcp", "80")
	serve(t, m, "udp", "53")
	l.cfg.Forwards = []Forward{
		{Protocol: "tcp", HostPort: 8080, To: mustAddr("10.77.0.10"), Port: 80},
		{Protocol: "tcp", HostPort: 8080, To: mustAddr("fd00:77::a"), Port: 80},
		{Protocol: "udp", HostPort: 5300, To: mustAddr("10.77.0.10"), Port: 53},
		{Protocol: "tcp", HostIP: mustAddr("192.0.2.1"), HostPort: 8081, To: mustAddr("10.77.0.10"), Port: 80},
	}
	l.apply()
	for _, host := range []string{"127.0.0.1", "10.77.0.1", "192.0.2.1", "fd00:77::1"} {
		if _, ok := connect(t, l.host, "tcp", host, "8080"); !ok {
			t.Errorf("host -> %s:8080 not forwarded", host)
		}
	}
	if peer, ok := connect(t, other, "tcp", "10.77.0.1", "8080"); !ok || peer != "10.77.0.1" {
		t.Errorf("hairpin from another member: connected %v, member saw %q (want the gateway, masqueraded)", ok, peer)
	}
	if _, ok := connect(t, l.host, "udp", "10.77.0.1", "5300"); !ok {
		t.Error("udp port not forwarded")
	}
	if _, ok := connect(t, l.host, "tcp", "192.0.2.1", "8081"); !ok {
		t.Error("port bound to 192.0.2.1 not forwarded there")
	}
	if _, ok := connect(t, l.host, "tcp", "127.0.0.1", "8081"); ok {
		t.Error("port bound to 192.0.2.1 answered on 127.0.0.1")
	}
	// A member may not use the host's loopback through route_localnet.
	if _, ok := connect(t, m, "tcp", "127.0.0.1", "8080"); ok {
		t.Error("a member reached 127.0.0.1 through the bridge")
	}
}

// TestForwardPortIsolated: a forwarded port does not carry a member of an
// isolated network into another network, whichever of the host's
// addresses it tries, over IPv4 and IPv6: isolation wins. The same port
// works from the host, from outside and from a member of a network that
// is not isolated (the controls), and the isolated member still reaches
// its own network's forwarded port (hairpin, no network crossed).
func TestForwardPortIsolated(t *testing.T) {
	l := newLab(t)
	o := l.outside()
	l.net(0, Net{Isolated: true, Outbound: OutboundDrop})
	l.net(1, Net{})
	l.net(2, Net{})
	iso, isoWeb, web, open := l.member(10, 0), l.member(11, 0), l.member(10, 1), l.member(10, 2)
	serve(t, web, "tcp", "80")
	serve(t, web, "udp", "53")
	serve(t, isoWeb, "tcp", "80")
	l.cfg.Forwards = []Forward{
		{Protocol: "tcp", HostPort: 18080, To: mustAddr("10.78.0.10"), Port: 80},
		{Protocol: "tcp", HostPort: 18080, To: mustAddr("fd00:78::a"), Port: 80},
		{Protocol: "udp", HostPort: 15353, To: mustAddr("10.78.0.10"), Port: 53},
		{Protocol: "tcp", HostPort: 18081, To: mustAddr("10.77.0.11"), Port: 80},
	}
	l.apply()
	if _, ok := connect(t, l.host, "tcp", "127.0.0.1", "18080"); !ok {
		t.Fatal("control: the host does not reach the forwarded port")
	}
	if _, ok := connect(t, o, "tcp", "192.0.2.1", "18080"); !ok {
		t.Fatal("control: outside does not reach the forwarded port")
	}
	if _, ok := connect(t, open, "tcp", "10.79.0.1", "18080"); !ok {
		t.Fatal("control: a member of a network that is not isolated does not reach the forwarded port")
	}
	if _, ok := connect(t, iso, "tcp", "10.77.0.1", "18081"); !ok {
		t.Fatal("control: the isolated member does not reach its own network's forwarded port")
	}
	for _, host := range []string{"10.77.0.1", "10.78.0.1", "10.79.0.1", "192.0.2.1", "fd00:77::1", "fd00:78::1", "fd00:79::1"} {
		if peer, ok := connect(t, iso, "tcp", host, "18080"); ok {
			t.Errorf("the isolated member reached the other network's member through %s:18080 (it saw %s)", host, peer)
		}
	}
	if _, ok := connect(t, iso, "udp", "10.77.0.1", "15353"); ok {
		t.Error("the isolated member reached the other network's member through udp 10.77.0.1:15353")
	}
}

// TestMulticast: a member receives a group its network lists, not one it
// does not, though it joined both; listing the group lets it through.
func TestMulticast(t *testing.T) {
	l := newLab(t)
	l.net(0, Net{Multicast: []netip.Addr{mustAddr("239.1.2.3"), mustAddr("ff15::1234")}})
	recv, send := l.member(10, 0), l.member(11, 0)
	l.apply()
	out := l.host.MustRun(t, "ip", "-d", "link", "show", "fubtest0")
	if !strings.Contains(out, "mcast_snooping 1") || !strings.Contains(out, "mcast_querier 1") {
		t.Errorf("bridge is not snooping and querying:\n%s", out)
	}
	got := func(group string) bool {
		return seen(t, recv, []string{"sniff-mcast", "eth0", group, "5000", "2"}, send, []string{"mcast", "eth0", group, "5000"})
	}
	if !got("239.1.2.3") {
		t.Error("listed IPv4 group not received")
	}
	if !got("ff15::1234") {
		t.Error("listed IPv6 group not received")
	}
	if got("239.9.9.9") {
		t.Error("unlisted IPv4 group received")
	}
	if got("ff15::9999") {
		t.Error("unlisted IPv6 group received")
	}
	l.cfg.Networks[0].Multicast = append(l.cfg.Networks[0].Multicast, mustAddr("239.9.9.9"))
	l.apply()
	if !got("239.9.9.9") {
		t.Error("group not received after it was listed")
	}
	// IPv6 itself still works: neighbour discovery uses multicast.
	recv.MustRun(t, "ip", "-6", "neigh", "flush", "all")
	if !ping(t, recv, "-6", "fd00:77::b") {
		t.Error("IPv6 between members broken by the multicast filter")
	}
}
