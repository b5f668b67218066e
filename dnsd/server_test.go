package dnsd

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/miekg/dns"

	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
)

// TestAddRemoveMember: members come and go without a restart, in DNS
// and in the static leases.
func TestAddRemoveMember(t *testing.T) {
	cfg := lanConfig(Range{})
	cfg.Networks = nil // DNS only, on loopback
	s, err := Start(cfg, Options{DNSListen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv := s.DNSAddrs()[0].String()
	cache := Member{Name: "cache", Addrs: addrs("10.77.0.12"),
		NICs: []NIC{{Network: "lan", MAC: mac("02:fd:00:00:00:12"), IPv4: netip.MustParseAddr("10.77.0.12")}}}
	if err := s.AddMember(cache); err != nil {
		t.Fatal(err)
	}
	if got := answers(query(t, srv, "udp", "", "cache.shop.foldup.internal.", dns.TypeA, false)); got != "cache.shop.foldup.internal. 10 A 10.77.0.12" {
		t.Errorf("after AddMember: %q", got)
	}
	if b := s.snapshot().static[leaseKey{"lan", string(mac("02:fd:00:00:00:12"))}]; b.ip.String() != "10.77.0.12" {
		t.Errorf("after AddMember, cache's static lease is %v", b.ip)
	}
	cache.Addrs = addrs("10.77.0.13")
	if err := s.AddMember(cache); err != nil {
		t.Fatal(err)
	}
	if got := answers(query(t, srv, "udp", "", "cache.shop.foldup.internal.", dns.TypeA, false)); got != "cache.shop.foldup.internal. 10 A 10.77.0.13" {
		t.Errorf("after replacing the member: %q", got)
	}
	if err := s.RemoveMember("cache"); err != nil {
		t.Fatal(err)
	}
	if r := query(t, srv, "udp", "", "cache.shop.foldup.internal.", dns.TypeA, false); r.Rcode != dns.RcodeNameError {
		t.Errorf("after RemoveMember: %s", dns.RcodeToString[r.Rcode])
	}
	if r := query(t, srv, "udp", "", "web.shop.foldup.internal.", dns.TypeA, false); len(r.Answer) != 1 {
		t.Errorf("web went with cache: %v", r)
	}
	if _, ok := s.snapshot().static[leaseKey{"lan", string(mac("02:fd:00:00:00:12"))}]; ok {
		t.Error("after RemoveMember, cache still has a static lease")
	}
}

func TestFromPlan(t *testing.T) {
	p := &planner.Plan{
		Project: "shop", Domain: "shop.foldup.internal", Upstream: []string{"127.0.0.1:5353"},
		Networks: []*planner.Network{
			{Name: "front", Bridge: "fub1", Subnet4: netip.MustParsePrefix("10.80.1.0/24"), Gateway4: netip.MustParseAddr("10.80.1.1"),
				Subnet6: netip.MustParsePrefix("fd00:1::/64"), Gateway6: netip.MustParseAddr("fd00:1::1"), IPv6Mode: spec.IPv6SLAAC, DHCP: true, MTU: 1400},
			{Name: "back", Bridge: "fub2", Subnet4: netip.MustParsePrefix("10.80.2.0/24"), Gateway4: netip.MustParseAddr("10.80.2.1"),
				Subnet6: netip.MustParsePrefix("fd00:2::/64"), Gateway6: netip.MustParseAddr("fd00:2::1"), IPv6Mode: spec.IPv6Static, Isolated: true},
		},
		Members: []*planner.Member{
			{Name: "api-1", Service: "api", Hostname: "api-1", NICs: []*planner.NIC{
				{Network: "front", MAC: "02:00:00:00:01:01", IPv4: netip.MustParseAddr("10.80.1.11"), IPv6: netip.MustParseAddr("fd00:1::1"), Aliases: []string{"backend", "api"}},
				{Network: "back", MAC: "02:00:00:00:02:01", IPv4: netip.MustParseAddr("10.80.2.11"), IPv6: netip.MustParseAddr("fd00:2::11")},
			}},
			{Name: "vm", Service: "vm", Hostname: "vm", Records: []spec.Record{{Name: "motd", TXT: []string{"hi"}}}, NICs: []*planner.NIC{
				{Network: "front", MAC: "02:00:00:00:01:02", IPv4: netip.MustParseAddr("10.80.1.12")},
			}},
		},
		Records: []spec.Record{{Name: "db", A: "10.80.1.5"}},
	}
	got := FromPlan(p)
	want := Config{
		Domain: "shop.foldup.internal", Upstream: []string{"127.0.0.1:5353"}, Records: p.Records,
		Subnets: []netip.Prefix{netip.MustParsePrefix("10.80.1.0/24"), netip.MustParsePrefix("fd00:1::/64"),
			netip.MustParsePrefix("10.80.2.0/24"), netip.MustParsePrefix("fd00:2::/64")},
		Networks: []Network{
			{Name: "front", Interface: "fub1", Subnet4: netip.MustParsePrefix("10.80.1.0/24"), Gateway4: netip.MustParseAddr("10.80.1.1"),
				Router: true, DHCP4: true, MTU: 1400,
				Subnet6: netip.MustParsePrefix("fd00:1::/64"), Gateway6: netip.MustParseAddr("fd00:1::1"), IPv6Mode: spec.IPv6SLAAC},
			{Name: "back", Interface: "fub2", Subnet4: netip.MustParsePrefix("10.80.2.0/24"), Gateway4: netip.MustParseAddr("10.80.2.1"),
				Subnet6: netip.MustParsePrefix("fd00:2::/64"), Gateway6: netip.MustParseAddr("fd00:2::1"), IPv6Mode: spec.IPv6Static},
		},
		Members: []Member{
			{Name: "api-1", Hostname: "api-1", Aliases: []string{"api", "backend"},
				Addrs: addrs("10.80.1.11", "fd00:1::1", "10.80.2.11", "fd00:2::11"),
				NICs: []NIC{
					{Network: "front", MAC: mac("02:00:00:00:01:01"), IPv4: netip.MustParseAddr("10.80.1.11")}, // SLAAC: no DHCPv6 address
					{Network: "back", MAC: mac("02:00:00:00:02:01"), IPv4: netip.MustParseAddr("10.80.2.11"), IPv6: netip.MustParseAddr("fd00:2::11")},
				}},
			{Name: "vm", Hostname: "vm", Records: p.Members[1].Records, Addrs: addrs("10.80.1.12"),
				NICs: []NIC{{Network: "front", MAC: mac("02:00:00:00:01:02"), IPv4: netip.MustParseAddr("10.80.1.12")}}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FromPlan:\n got %+v\nwant %+v", got, want)
	}
}
