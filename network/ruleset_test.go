package network

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/foldup/foldup/internal/golden"
	"github.com/foldup/foldup/internal/nstest"
	"github.com/foldup/foldup/internal/systest"
)

// smallProject is a project of two networks, an isolated one with a
// multicast group and its bridge's link-local address and a NAT one, a
// VM on both, a container, and two forwarded ports.
func smallProject() Config {
	return Config{
		Project: "shop",
		Networks: []Net{
			{Bridge: "fub1a2b3c4d", Gateway4: mustAddr("10.80.1.1"), Gateway6: mustAddr("fd00:80:1::1"),
				Isolated: true, Outbound: OutboundDrop, Multicast: []netip.Addr{mustAddr("239.1.2.3")}, LinkLocal: []netip.Addr{mustAddr("fe80::1")},
				MAC: net.HardwareAddr{0x02, 0xfd, 0x12, 0x34, 0x56, 0x78}},
			{Bridge: "fub5e6f7a8b", Gateway4: mustAddr("10.80.2.1"), Outbound: OutboundNAT},
		},
		Ports: []Port{
			{Name: "fut00000001", Bridge: "fub1a2b3c4d", MAC: net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}, RA: true,
				IPv4: []netip.Addr{mustAddr("10.80.1.10")}, IPv6: []netip.Addr{mustAddr("fd00:80:1::5054:ff:fe12:3456")}},
			{Name: "fut00000002", Bridge: "fub5e6f7a8b", MAC: net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x57}, RA: true,
				IPv4: []netip.Addr{mustAddr("10.80.2.10")}},
			{Name: "veth1234567", Bridge: "fub1a2b3c4d", MAC: net.HardwareAddr{0x02, 0x42, 0x0a, 0x50, 0x01, 0x05},
				IPv4: []netip.Addr{mustAddr("10.80.1.5")}},
		},
		Forwards: []Forward{
			{Protocol: "tcp", HostPort: 8080, To: mustAddr("10.80.1.10"), Port: 80},
			{Protocol: "tcp", HostIP: mustAddr("127.0.0.1"), HostPort: 5432, To: mustAddr("10.80.1.5"), Port: 5432},
		},
	}
}

// TestRuleset compares `nft list ruleset` for a small project with
// testdata/ruleset.golden (go test ./network -run Ruleset -update
// rewrites it), and checks that applying the same config again changes
// nothing and that removing it leaves an empty ruleset.
func TestRuleset(t *testing.T) {
	systest.Command(t, "nft")
	ns := nstest.New(t)
	h := open(t, ns)
	cfg := smallProject()
	if err := h.FirewallApply(cfg); err != nil {
		t.Fatal(err)
	}
	got := ns.MustRun(t, "nft", "list", "ruleset")
	golden.Check(t, "testdata/ruleset.golden", got)

	if err := h.FirewallApply(cfg); err != nil {
		t.Fatal(err)
	}
	if again := ns.MustRun(t, "nft", "list", "ruleset"); again != got {
		t.Errorf("applying the same config again changed the ruleset:\n%s", again)
	}

	// A forward moved to another member: its map element is replaced.
	cfg.Forwards[0].To = mustAddr("10.80.2.10")
	if err := h.FirewallApply(cfg); err != nil {
		t.Fatal(err)
	}
	out := ns.MustRun(t, "nft", "list", "map", "inet", "foldup-shop", "forward_ipv4")
	if !strings.Contains(out, "tcp . 8080 : 10.80.2.10 . 80") || strings.Contains(out, "10.80.1.10") {
		t.Errorf("forward not moved:\n%s", out)
	}

	if err := h.FirewallRemove("shop"); err != nil {
		t.Fatal(err)
	}
	if out := ns.MustRun(t, "nft", "list", "ruleset"); strings.TrimSpace(out) != "" {
		t.Errorf("ruleset after FirewallRemove:\n%s", out)
	}
}
