package network

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/foldup/foldup/internal/nstest"
	"github.com/foldup/foldup/internal/systest"
)

// lab is a host namespace with foldup networks in it and member
// namespaces on them, each behind a veth on the host side, and
// optionally an "outside" namespace reached through an uplink.
type lab struct {
	t       *testing.T
	host    *nstest.NS
	h       *Host
	cfg     Config
	members []*nstest.NS // in the order they were made
	ports   []Port
}

// newLab also marks the test parallel: each lab lives in namespaces of
// its own, and most of a firewall test's time is spent waiting for
// packets that must not arrive.
func newLab(t *testing.T) *lab {
	t.Helper()
	t.Parallel()
	systest.Command(t, "python3")
	l := &lab{t: t, host: nstest.New(t), cfg: Config{Project: "test"}}
	l.h = open(t, l.host)
	return l
}

// net makes bridge fubtest<i> with 10.(77+i).0.1/24 and fd00:(77+i)::1/64;
// n says how the firewall treats it (Bridge and gateways filled in).
func (l *lab) net(i int, n Net) {
	l.t.Helper()
	n.Bridge = fmt.Sprintf("fubtest%d", i)
	n.Gateway4 = netip.AddrFrom4([4]byte{10, byte(77 + i), 0, 1})
	n.Gateway6 = netip.MustParseAddr(fmt.Sprintf("fd00:%d::1", 77+i))
	if n.Outbound == "" {
		n.Outbound = OutboundNAT
	}
	addrs := []netip.Prefix{netip.PrefixFrom(n.Gateway4, 24), netip.PrefixFrom(n.Gateway6, 64)}
	if err := l.h.BridgeAdd(BridgeOptions{Name: n.Bridge, Addrs: addrs, MulticastSnooping: true}); err != nil {
		l.t.Fatal(err)
	}
	l.cfg.Networks = append(l.cfg.Networks, n)
}

// member puts a new member namespace on network i with host number k:
// veth fuv<i>_<k>, MAC 02:00:00:00:<i>:<k>, 10.(77+i).0.k/24 and
// fd00:(77+i)::k/64, default routes through the gateway. More networks
// give the member more interfaces (eth0, eth1, ...), without routes.
func (l *lab) member(k int, nets ...int) *nstest.NS {
	l.t.Helper()
	m := nstest.New(l.t)
	for j, i := range nets {
		host, dev := fmt.Sprintf("fuv%d_%d", i, k), fmt.Sprintf("eth%d", j)
		if err := l.h.VethAdd(host, dev, m.Handle); err != nil {
			l.t.Fatal(err)
		}
		if err := l.h.LinkAttach(host, fmt.Sprintf("fubtest%d", i)); err != nil {
			l.t.Fatal(err)
		}
		mac := net.HardwareAddr{0x02, 0, 0, 0, byte(i), byte(k)}
		v4 := netip.AddrFrom4([4]byte{10, byte(77 + i), 0, byte(k)})
		v6 := netip.MustParseAddr(fmt.Sprintf("fd00:%d::%x", 77+i, k))
		m.MustRun(l.t, "ip", "link", "set", dev, "address", mac.String())
		m.MustRun(l.t, "ip", "addr", "add", v4.String()+"/24", "dev", dev)
		m.MustRun(l.t, "ip", "addr", "add", v6.String()+"/64", "dev", dev, "nodad")
		m.MustRun(l.t, "ip", "link", "set", dev, "up")
		if j == 0 {
			m.MustRun(l.t, "ip", "route", "add", "default", "via", netip.AddrFrom4([4]byte{10, byte(77 + i), 0, 1}).String())
			m.MustRun(l.t, "ip", "-6", "route", "add", "default", "via", fmt.Sprintf("fd00:%d::1", 77+i))
		}
		l.ports = append(l.ports, Port{Name: host, Bridge: fmt.Sprintf("fubtest%d", i), MAC: mac, IPv4: []netip.Addr{v4}, IPv6: []netip.Addr{v6}})
	}
	l.members = append(l.members, m)
	return m
}

// outside makes a namespace standing for the world beyond the host:
// uplink fuup0 with 192.0.2.1/24 on the host, 192.0.2.2 outside, which
// routes 10.0.0.0/8 back to the host (so that unsolicited inbound
// traffic can be tried).
func (l *lab) outside() *nstest.NS {
	l.t.Helper()
	o := nstest.New(l.t)
	if err := l.h.VethAdd("fuup0", "eth0", o.Handle); err != nil {
		l.t.Fatal(err)
	}
	l.host.MustRun(l.t, "ip", "addr", "add", "192.0.2.1/24", "dev", "fuup0")
	l.host.MustRun(l.t, "ip", "link", "set", "fuup0", "up")
	o.MustRun(l.t, "ip", "addr", "add", "192.0.2.2/24", "dev", "eth0")
	o.MustRun(l.t, "ip", "link", "set", "eth0", "up")
	o.MustRun(l.t, "ip", "route", "add", "10.0.0.0/8", "via", "192.0.2.1")
	if err := l.h.EnableForwarding(false); err != nil {
		l.t.Fatal(err)
	}
	return o
}

func (l *lab) apply() {
	l.t.Helper()
	l.cfg.Ports = l.ports
	if err := l.h.FirewallApply(l.cfg); err != nil {
		l.t.Fatal(err)
	}
}

// newSegment is a lab with one NAT network and n members (host numbers
// 10, 11, ...), firewall applied.
func newSegment(t *testing.T, n int) *lab {
	t.Helper()
	l := newLab(t)
	l.net(0, Net{})
	for i := range n {
		l.member(10+i, 0)
	}
	l.apply()
	return l
}

func ping(t *testing.T, ns *nstest.NS, args ...string) bool {
	t.Helper()
	_, err := ns.Run(t, append([]string{"ping", "-c1", "-W1"}, args...)...)
	return err == nil
}

var pkt, _ = filepath.Abs("testdata/pkt.py")

// concurrently runs a sniffer in one namespace while a sender runs in
// another, and reports whether the sniffer saw the packet.
func seen(t *testing.T, sniffNS *nstest.NS, sniff []string, sendNS *nstest.NS, send []string) bool {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "ip", append([]string{"netns", "exec", sniffNS.Name, "python3", pkt}, sniff...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Send only once the sniffer's socket is bound, and start its time
	// only once the sender is done: under CI's load either python's
	// start could take longer than the sniffer's whole wait, and a frame
	// that went by unseen, or was not yet sent, looked dropped.
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "listening\n" {
		in.Close()
		cmd.Wait()
		t.Fatalf("sniffer in %s did not start: %q", sniffNS.Name, line)
	}
	sendNS.MustRun(t, append([]string{"python3", pkt}, send...)...)
	in.Close() // end of file: the sender is done
	return cmd.Wait() == nil
}

func TestGuardSpoofedMAC(t *testing.T) {
	s := newSegment(t, 2)
	m := s.members[0]
	if !ping(t, m, "10.77.0.11") {
		t.Fatal("member 0 cannot reach member 1 with its own MAC")
	}
	m.MustRun(t, "ip", "link", "set", "eth0", "address", "02:00:00:00:00:99")
	m.MustRun(t, "ip", "neigh", "flush", "all")
	if ping(t, m, "10.77.0.11") {
		t.Error("a spoofed source MAC got through")
	}
	if ping(t, m, "10.77.0.1") {
		t.Error("a spoofed source MAC reached the gateway")
	}
}

func TestGuardSpoofedIP(t *testing.T) {
	s := newSegment(t, 2)
	m := s.members[0]
	m.MustRun(t, "ip", "addr", "add", "10.77.0.50/24", "dev", "eth0")
	m.MustRun(t, "ip", "addr", "add", "fd00:77::50/64", "dev", "eth0", "nodad")
	if !ping(t, m, "-I", "10.77.0.10", "10.77.0.11") || !ping(t, m, "-6", "-I", "fd00:77::a", "fd00:77::b") {
		t.Fatal("member 0 cannot reach member 1 from its own addresses")
	}
	if ping(t, m, "-I", "10.77.0.50", "10.77.0.11") {
		t.Error("a spoofed IPv4 source got through")
	}
	if ping(t, m, "-6", "-I", "fd00:77::50", "fd00:77::b") {
		t.Error("a spoofed IPv6 source got through")
	}
}

func TestGuardARPClaim(t *testing.T) {
	s := newSegment(t, 2)
	mac0 := s.ports[0].MAC.String()
	if !seen(t, s.members[1], []string{"sniff-arp", "eth0", "10.77.0.10", "2"}, s.members[0], []string{"arp", "eth0", mac0, "10.77.0.10", "10.77.0.11"}) {
		t.Fatal("an ARP for the member's own address did not arrive")
	}
	if seen(t, s.members[1], []string{"sniff-arp", "eth0", "10.77.0.11", "2"}, s.members[0], []string{"arp", "eth0", mac0, "10.77.0.11", "10.77.0.11"}) {
		t.Error("an ARP claiming another member's address got through")
	}
}

// TestGuardRogueDHCPServer: only foldup's server answers a DHCP client.
// A client takes an answer from any source port (it keys on its own port,
// 68, or 546 for DHCPv6, and on its transaction, not on the server's
// port), broadcast, multicast or unicast, so whatever a member sends to
// those ports is dropped, from any source port, to any destination.
// Other ports are untouched: the controls.
func TestGuardRogueDHCPServer(t *testing.T) {
	s := newSegment(t, 2)
	atk, victim := s.members[0], s.members[1]
	if !seen(t, victim, []string{"sniff-udp", "6868", "2"}, atk, []string{"udp", "6767", "6868", "10.77.0.255"}) {
		t.Fatal("control: a broadcast to an ordinary port did not arrive")
	}
	if !seen(t, victim, []string{"sniff-udp6", "5460", "2"}, atk, []string{"udp", "5470", "5460", "fd00:77::b"}) {
		t.Fatal("control: an IPv6 datagram to an ordinary port did not arrive")
	}
	for _, sport := range []string{"67", "6767", "68"} {
		for _, dst := range []string{"10.77.0.255", "255.255.255.255", "10.77.0.11"} {
			if seen(t, victim, []string{"sniff-udp", "68", "2"}, atk, []string{"udp", sport, "68", dst}) {
				t.Errorf("a datagram from port %s to %s:68 (a DHCP client) got through", sport, dst)
			}
		}
	}
	ll, _ := EUI64LinkLocal(s.ports[1].MAC)
	for _, sport := range []string{"547", "5470"} {
		for _, dst := range []string{"fd00:77::b", "ff02::1%eth0", ll.String() + "%eth0"} {
			if seen(t, victim, []string{"sniff-udp6", "546", "2"}, atk, []string{"udp", sport, "546", dst}) {
				t.Errorf("a datagram from port %s to [%s]:546 (a DHCPv6 client) got through", sport, dst)
			}
		}
	}
}

// TestGuardGatewayAddress: no member answers in the gateway's name (DNS
// from the server's address, on IPv4 or IPv6); from its own address it
// reaches the same port.
func TestGuardGatewayAddress(t *testing.T) {
	s := newSegment(t, 2)
	atk, victim := s.members[0], s.members[1]
	// The attacker gives itself the gateway's addresses, to send from them.
	atk.MustRun(t, "ip", "addr", "add", "10.77.0.1/32", "dev", "eth0")
	atk.MustRun(t, "ip", "addr", "add", "fd00:77::1/128", "dev", "eth0", "nodad")
	if !seen(t, victim, []string{"sniff-udp", "5353", "2"}, atk, []string{"udp", "53", "5353", "10.77.0.11", "10.77.0.10"}) {
		t.Fatal("control: a datagram from the member's own address did not arrive")
	}
	if seen(t, victim, []string{"sniff-udp", "5353", "2"}, atk, []string{"udp", "53", "5353", "10.77.0.11", "10.77.0.1"}) {
		t.Error("a datagram from the gateway's IPv4 address got through")
	}
	if !seen(t, victim, []string{"sniff-udp6", "5353", "2"}, atk, []string{"udp", "53", "5353", "fd00:77::b", "fd00:77::a"}) {
		t.Fatal("control: an IPv6 datagram from the member's own address did not arrive")
	}
	if seen(t, victim, []string{"sniff-udp6", "5353", "2"}, atk, []string{"udp", "53", "5353", "fd00:77::b", "fd00:77::1"}) {
		t.Error("a datagram from the gateway's IPv6 address got through")
	}
}

// TestGuardLinkLocal: a member may claim only its own link-local address
// (the EUI-64 one of its MAC) of those the plan knows: as a neighbour
// advertisement's target and as the source of anything. One no member
// has (a guest's stable-privacy or random one) it may advertise. The
// victim's neighbour table is the judge: it keeps the true member's MAC.
func TestGuardLinkLocal(t *testing.T) {
	s := newSegment(t, 3)
	atk, victim := s.members[0], s.members[2]
	own, _ := EUI64LinkLocal(s.ports[0].MAC)
	other, _ := EUI64LinkLocal(s.ports[1].MAC)
	unplanned := "fe80::1234:5678:9abc:def0"
	if !seen(t, victim, []string{"sniff-na", own.String(), "2"}, atk, []string{"na", "eth0", own.String(), own.String()}) {
		t.Fatal("control: an advertisement of the member's own link-local address did not arrive")
	}
	if !seen(t, victim, []string{"sniff-na", unplanned, "2"}, atk, []string{"na", "eth0", own.String(), unplanned}) {
		t.Fatal("control: an advertisement of a link-local address no member has did not arrive")
	}
	if seen(t, victim, []string{"sniff-na", other.String(), "2"}, atk, []string{"na", "eth0", own.String(), other.String()}) {
		t.Error("an advertisement of another member's link-local address got through")
	}
	if seen(t, victim, []string{"sniff-na", other.String(), "2"}, atk, []string{"na", "eth0", other.String(), other.String()}) {
		t.Error("an advertisement from and of another member's link-local address got through")
	}
	if seen(t, victim, []string{"sniff-na", "fd00:77::a", "2"}, atk, []string{"na", "eth0", other.String(), "fd00:77::a"}) {
		t.Error("an advertisement sent from another member's link-local address got through")
	}
	if !seen(t, victim, []string{"sniff-udp6", "5353", "2"}, atk, []string{"udp", "5353", "5353", "fd00:77::c", own.String() + "%eth0"}) {
		t.Fatal("control: a datagram from the member's own link-local address did not arrive")
	}
	atk.MustRun(t, "ip", "addr", "add", other.String()+"/64", "dev", "eth0", "nodad")
	if seen(t, victim, []string{"sniff-udp6", "5353", "2"}, atk, []string{"udp", "5353", "5353", "fd00:77::c", other.String() + "%eth0"}) {
		t.Error("a datagram from another member's link-local address got through")
	}
	// The victim knows the owner (it pinged it), then the attacker says
	// the owner's address is at its MAC, as an override.
	if !ping(t, victim, "-6", other.String()+"%eth0") {
		t.Fatal("control: the victim cannot ping the owner's link-local address")
	}
	atk.MustRun(t, "python3", pkt, "na", "eth0", own.String(), other.String())
	out := victim.MustRun(t, "ip", "-6", "neigh", "show", other.String(), "dev", "eth0")
	if !strings.Contains(out, s.ports[1].MAC.String()) || strings.Contains(out, s.ports[0].MAC.String()) {
		t.Errorf("the victim's neighbour entry for the owner's %s: %q; want the owner's MAC %s", other, out, s.ports[1].MAC)
	}
}

func TestGuardRogueRA(t *testing.T) {
	s := newSegment(t, 2)
	// Control: an echo request to all nodes arrives.
	if !seen(t, s.members[1], []string{"sniff-icmp6", "128", "2"}, s.members[0], []string{"icmp6", "eth0", "128"}) {
		t.Fatal("an ICMPv6 echo request from a member did not arrive")
	}
	if seen(t, s.members[1], []string{"sniff-icmp6", "134", "2"}, s.members[0], []string{"icmp6", "eth0", "134"}) {
		t.Error("a router advertisement from a member got through")
	}
}

// TestGuardIncremental: adding a port adds its elements and leaves the
// rules alone; removing the table removes everything.
func TestGuardIncremental(t *testing.T) {
	systest.Command(t, "nft")
	s := newSegment(t, 1)
	list := func() string { return s.host.MustRun(t, "nft", "list", "table", "bridge", "foldup-test") }
	before := list()
	more := append(s.ports, Port{Name: "fuv9", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x99}, IPv4: []netip.Addr{netip.MustParseAddr("10.77.0.99")}})
	s.cfg.Ports = more
	if err := s.h.FirewallApply(s.cfg); err != nil {
		t.Fatal(err)
	}
	after := list()
	if !strings.Contains(after, `"fuv9" . 02:00:00:00:00:99`) || !strings.Contains(after, `"fuv9" . 10.77.0.99`) {
		t.Errorf("new port's elements missing:\n%s", after)
	}
	if rules(before) != rules(after) {
		t.Errorf("rules changed when a port was added:\n%s\n---\n%s", rules(before), rules(after))
	}
	s.cfg.Ports = s.ports
	if err := s.h.FirewallApply(s.cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(list(), "fuv9") {
		t.Error("removed port's elements remain")
	}
	if err := s.h.FirewallRemove("test"); err != nil {
		t.Fatal(err)
	}
	if err := s.h.FirewallRemove("test"); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	if out := s.host.MustRun(t, "nft", "list", "tables"); strings.Contains(out, "foldup") {
		t.Errorf("tables left: %s", out)
	}
}

// rules returns the chain part of an nft listing (sets stripped).
func rules(listing string) string {
	var out []string
	in := false
	for _, l := range strings.Split(listing, "\n") {
		if strings.Contains(l, "chain ") {
			in = true
		}
		if in {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestGuardOtherVersion: a table made by another version of foldup (here:
// one with a set this one does not have) is replaced whole on the next
// apply, with this version's sets, rules and elements, and the guard
// still holds.
func TestGuardOtherVersion(t *testing.T) {
	systest.Command(t, "nft")
	s := newSegment(t, 2)
	list := func() string { return s.host.MustRun(t, "nft", "list", "table", "bridge", "foldup-test") }
	want := list()
	s.host.MustRun(t, "nft", "add", "set", "bridge", "foldup-test", "from_an_older_foldup", "{ type ipv4_addr; }")
	if err := s.h.FirewallApply(s.cfg); err != nil {
		t.Fatal(err)
	}
	if got := list(); got != want {
		t.Errorf("the table after apply:\n%s\nwant:\n%s", got, want)
	}
	if !ping(t, s.members[0], "10.77.0.11") {
		t.Error("members cannot reach each other after the table was replaced")
	}
}

// TestGuardConcurrentApply: two appliers at once, as up and the
// supervisor are when a recreated container starts, each bringing the
// sets to its own list of ports. Each reads the sets, then writes the
// difference: both may delete one element, and the second delete found
// nothing (ENOENT, which failed an up in CI). Every apply must succeed,
// and the tables end as the last one left them.
func TestGuardConcurrentApply(t *testing.T) {
	systest.Command(t, "nft")
	s := newSegment(t, 1)
	port := func(i int) Port {
		return Port{Name: fmt.Sprintf("fuv%d", i), MAC: net.HardwareAddr{2, 0, 0, 0, 1, byte(i)}, IPv4: []netip.Addr{netip.AddrFrom4([4]byte{10, 77, 0, byte(100 + i)})}}
	}
	cfgs := [2]Config{s.cfg, s.cfg}
	cfgs[0].Ports = append(slices.Clone(s.ports), port(1), port(2))
	cfgs[1].Ports = append(slices.Clone(s.ports), port(3))
	var wg sync.WaitGroup
	errs := make(chan error, 2*40)
	for g := range 2 {
		h, err := Open(s.host.Handle)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		wg.Go(func() {
			for i := range 40 {
				errs <- h.FirewallApply(cfgs[(g+i)%2])
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent apply: %v", err)
		}
	}
	// Once alone again, an apply brings the sets to exactly its ports.
	if err := s.h.FirewallApply(cfgs[1]); err != nil {
		t.Fatal(err)
	}
	out := s.host.MustRun(t, "nft", "list", "table", "bridge", "foldup-test")
	if !strings.Contains(out, `"fuv3" . 10.77.0.103`) || strings.Contains(out, "fuv1") || strings.Contains(out, "fuv2") {
		t.Errorf("after the last apply, the ports are not cfgs[1]'s:\n%s", out)
	}
}

// TestGuardStranger: a port of the project's bridge that is no member's
// reaches no member from its first frame when its MAC is no member's (a
// container joined by hand, before the supervisor adopts it); from a
// member's planned MAC (a project's container whose veth is not yet
// synced) it does, and is no DHCP, DHCPv6 or router-advertisement server,
// from whatever source port, to whatever address.
func TestGuardStranger(t *testing.T) {
	l := newLab(t)
	l.net(0, Net{})
	l.member(10, 0)
	victim := l.member(11, 0)
	stranger := l.member(12, 0)
	l.ports = l.ports[:2] // 12's port is on the bridge, and no member's
	l.apply()
	for _, send := range [][]string{
		{"udp", "6767", "6868", "10.77.0.255"},
		{"udp", "6767", "6868", "10.77.0.11"},
	} {
		if seen(t, victim, []string{"sniff-udp", "6868", "2"}, stranger, send) {
			t.Errorf("from a MAC no member has, %v got through", send)
		}
	}
	if seen(t, victim, []string{"sniff-icmp6", "128", "2"}, stranger, []string{"icmp6", "eth0", "128"}) {
		t.Error("from a MAC no member has, an echo request to all nodes got through")
	}
	if ping(t, stranger, "10.77.0.11") {
		t.Error("from a MAC no member has, a ping reached a member")
	}

	// The stranger's MAC becomes a planned member's, its port still unknown.
	l.cfg.MACs = []net.HardwareAddr{{0x02, 0, 0, 0, 0, 12}}
	l.apply()
	// A few tries: the stranger's first address resolutions failed, and
	// CI runs these labs in parallel.
	if !slices.ContainsFunc([]int{1, 2, 3}, func(int) bool { return ping(t, stranger, "-W2", "10.77.0.11") }) {
		t.Fatal("control: from a member's planned MAC, three pings did not reach a member")
	}
	if !seen(t, victim, []string{"sniff-udp", "6868", "2"}, stranger, []string{"udp", "6767", "6868", "10.77.0.255"}) {
		t.Fatal("control: a broadcast to an ordinary port did not arrive")
	}
	for _, sport := range []string{"67", "6767"} {
		for _, dst := range []string{"10.77.0.255", "255.255.255.255", "10.77.0.11"} {
			if seen(t, victim, []string{"sniff-udp", "68", "2"}, stranger, []string{"udp", sport, "68", dst}) {
				t.Errorf("a datagram from port %s to %s:68 (a DHCP client) got through", sport, dst)
			}
		}
	}
	for _, sport := range []string{"547", "5470"} {
		for _, dst := range []string{"fd00:77::b", "ff02::1%eth0"} {
			if seen(t, victim, []string{"sniff-udp6", "546", "2"}, stranger, []string{"udp", sport, "546", dst}) {
				t.Errorf("a datagram from port %s to [%s]:546 (a DHCPv6 client) got through", sport, dst)
			}
		}
	}
	if !seen(t, victim, []string{"sniff-icmp6", "128", "2"}, stranger, []string{"icmp6", "eth0", "128"}) {
		t.Fatal("control: an echo request to all nodes did not arrive")
	}
	if seen(t, victim, []string{"sniff-icmp6", "134", "2"}, stranger, []string{"icmp6", "eth0", "134"}) {
		t.Error("a router advertisement got through")
	}
}
