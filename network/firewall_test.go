package network

import (
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/nstest"
	"github.com/foldup/foldup/internal/systest"
)

// segment is a bridge in a host namespace with member namespaces on it,
// each behind a veth named fuvN on the host side.
type segment struct {
	host    *nstest.NS
	h       *Host
	members []*nstest.NS
	ports   []Port
}

func newSegment(t *testing.T, n int) *segment {
	t.Helper()
	systest.Command(t, "python3")
	s := &segment{host: nstest.New(t)}
	s.h = open(t, s.host)
	if err := s.h.BridgeAdd(BridgeOptions{Name: "fubtest0", Addrs: gw}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m := nstest.New(t)
		name := "fuv" + string(rune('0'+i))
		if err := s.h.VethAdd(name, "eth0", m.Handle); err != nil {
			t.Fatal(err)
		}
		if err := s.h.LinkAttach(name, "fubtest0"); err != nil {
			t.Fatal(err)
		}
		mac := net.HardwareAddr{0x02, 0, 0, 0, 0, byte(0x10 + i)}
		v4 := netip.AddrFrom4([4]byte{10, 77, 0, byte(10 + i)})
		v6 := netip.MustParseAddr("fd00:77::" + string(rune('a'+i)))
		m.MustRun(t, "ip", "link", "set", "eth0", "address", mac.String())
		m.MustRun(t, "ip", "addr", "add", v4.String()+"/24", "dev", "eth0")
		m.MustRun(t, "ip", "addr", "add", v6.String()+"/64", "dev", "eth0", "nodad")
		m.MustRun(t, "ip", "link", "set", "eth0", "up")
		s.members = append(s.members, m)
		s.ports = append(s.ports, Port{Name: name, MAC: mac, IPv4: []netip.Addr{v4}, IPv6: []netip.Addr{v6}})
	}
	if err := s.h.GuardApply(GuardConfig{Project: "test", Ports: s.ports}); err != nil {
		t.Fatal(err)
	}
	return s
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
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let it bind
	sendNS.MustRun(t, append([]string{"python3", pkt}, send...)...)
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

func TestGuardRogueDHCPServer(t *testing.T) {
	s := newSegment(t, 2)
	if !seen(t, s.members[1], []string{"sniff-udp", "68", "2"}, s.members[0], []string{"udp", "6767", "68", "10.77.0.255"}) {
		t.Fatal("a broadcast from an ordinary port did not arrive")
	}
	if seen(t, s.members[1], []string{"sniff-udp", "68", "2"}, s.members[0], []string{"udp", "67", "68", "10.77.0.255"}) {
		t.Error("a DHCP server reply from a member got through")
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
	if err := s.h.GuardApply(GuardConfig{Project: "test", Ports: more}); err != nil {
		t.Fatal(err)
	}
	after := list()
	if !strings.Contains(after, `"fuv9" . 02:00:00:00:00:99`) || !strings.Contains(after, `"fuv9" . 10.77.0.99`) {
		t.Errorf("new port's elements missing:\n%s", after)
	}
	if rules(before) != rules(after) {
		t.Errorf("rules changed when a port was added:\n%s\n---\n%s", rules(before), rules(after))
	}
	if err := s.h.GuardApply(GuardConfig{Project: "test", Ports: s.ports}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(list(), "fuv9") {
		t.Error("removed port's elements remain")
	}
	if err := s.h.GuardRemove("test"); err != nil {
		t.Fatal(err)
	}
	if err := s.h.GuardRemove("test"); err != nil {
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
