package network

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestGuardRouterLinkLocal: a member claims the bridge's link-local
// address (the router its neighbours learn from foldup's advertisements)
// the two ways a Linux guest does once it has the address without DAD,
// a neighbour solicitation from it (whose source link-layer option
// updates the receiver's entry for it) and an unsolicited advertisement
// with the override flag (ndisc_notify), and by an advertisement for it
// sent from the member's own address. The other member's entry for the
// router must keep the bridge's MAC. Each attack starts from a true
// entry, so each rule is tried on its own: the solicitation and the
// kernel's advertisement meet "from a bridge's link-local address", the
// forged advertisement "target a bridge's link-local address".
func TestGuardRouterLinkLocal(t *testing.T) {
	s := newLab(t)
	s.net(0, Net{})
	// As a network without multicast groups is made: with snooping, the
	// bridge would pass a solicitation only to ports it knows joined the
	// target's group, and whether it knows that yet is a race.
	s.host.MustRun(t, "ip", "link", "set", "fubtest0", "type", "bridge", "mcast_snooping", "0")
	m0, m1 := s.member(10, 0), s.member(11, 0)
	s.apply()
	var bridgeLL, m1LL netip.Addr
	for _, f := range strings.Fields(s.host.MustRun(t, "ip", "-6", "-o", "addr", "show", "dev", "fubtest0", "scope", "link")) {
		if p, err := netip.ParsePrefix(f); err == nil {
			bridgeLL = p.Addr()
		}
	}
	for _, f := range strings.Fields(m1.MustRun(t, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")) {
		if p, err := netip.ParsePrefix(f); err == nil {
			m1LL = p.Addr()
		}
	}
	if !bridgeLL.IsLinkLocalUnicast() || !m1LL.IsLinkLocalUnicast() {
		t.Fatalf("link-local addresses: bridge %v, member 1 %v", bridgeLL, m1LL)
	}
	bridgeMAC := bridgeMAC("fubtest0").String()
	router := func() string {
		f := strings.Fields(m1.MustRun(t, "ip", "-6", "neigh", "show", bridgeLL.String(), "dev", "eth0"))
		for i := range f {
			if f[i] == "lladdr" && i+1 < len(f) {
				return f[i+1]
			}
		}
		return ""
	}
	// moved waits a while for member 1's entry to move (the kernel
	// retransmits a solicitation after a second), and returns it.
	moved := func() string {
		deadline := time.Now().Add(3 * time.Second)
		for {
			got := router()
			if got != bridgeMAC || time.Now().After(deadline) {
				return got
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !ping(t, m1, bridgeLL.String()+"%eth0") || router() != bridgeMAC {
		t.Fatalf("control: member 1 does not reach the bridge's %s at %s (its entry: %q)", bridgeLL, bridgeMAC, router())
	}

	// The solicitation: member 0's own link-local address goes, so that
	// the bridge's is the source of what it sends to member 1's.
	own := strings.Fields(m0.MustRun(t, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"))[3]
	m0.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
	m0.MustRun(t, "ip", "addr", "add", bridgeLL.String()+"/64", "dev", "eth0")
	m0.MustRun(t, "ip", "addr", "del", own, "dev", "eth0")
	ping(t, m0, m1LL.String()+"%eth0")
	if got := moved(); got != bridgeMAC {
		t.Errorf("a neighbour solicitation from the bridge's %s moved member 1's entry for it to %s", bridgeLL, got)
	}

	// The kernel's advertisement.
	reset := func() {
		m1.MustRun(t, "ip", "-6", "neigh", "replace", bridgeLL.String(), "lladdr", bridgeMAC, "dev", "eth0", "router", "nud", "reachable")
	}
	reset()
	m0.MustRun(t, "ip", "addr", "del", bridgeLL.String()+"/64", "dev", "eth0")
	m0.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.eth0.ndisc_notify=1")
	m0.MustRun(t, "ip", "addr", "add", bridgeLL.String()+"/64", "dev", "eth0")
	if got := moved(); got != bridgeMAC {
		t.Errorf("an advertisement for the bridge's %s from it moved member 1's entry for it to %s", bridgeLL, got)
	}

	// A forged one, from member 0's own address.
	reset()
	m0.MustRun(t, "ip", "addr", "del", bridgeLL.String()+"/64", "dev", "eth0")
	m0.MustRun(t, "ip", "addr", "add", own, "dev", "eth0")
	m0.MustRun(t, "python3", "-c", forgeNA, bridgeLL.String(), s.ports[0].MAC.String())
	if got := moved(); got != bridgeMAC {
		t.Errorf("an advertisement for the bridge's %s from member 0's own address moved member 1's entry for it to %s", bridgeLL, got)
	}
}

// forgeNA sends three unsolicited neighbour advertisements (override
// flag, target link-layer option) for TARGET at MAC to all nodes on eth0,
// from the address the kernel picks: python3 -c "$forgeNA" TARGET MAC.
const forgeNA = `
import socket, struct, sys
target, mac = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", ""))
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
idx = socket.if_nametoindex("eth0")
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
na = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + socket.inet_pton(socket.AF_INET6, target) + bytes([2, 1]) + mac
for _ in range(3):
    s.sendto(na, ("ff02::1", 0, 0, idx))
`
