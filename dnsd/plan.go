package dnsd

import (
	"net"
	"net/netip"
	"slices"

	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
)

// FromPlan returns what the server serves for a plan: every member under
// its name, its network aliases and its service's name (so that "api"
// answers with every replica of api, as in Compose), with static DHCPv4
// leases by MAC, and the plan's networks.
func FromPlan(p *planner.Plan) Config {
	cfg := Config{Domain: p.Domain, Upstream: p.Upstream, Records: p.Records}
	for _, n := range p.Networks {
		for _, s := range []netip.Prefix{n.Subnet4, n.Subnet6} {
			if s.IsValid() {
				cfg.Subnets = append(cfg.Subnets, s)
			}
		}
		cfg.Networks = append(cfg.Networks, Network{
			Name:      n.Name,
			Interface: n.Bridge,
			Subnet4:   n.Subnet4,
			Gateway4:  n.Gateway4,
			Router:    !n.Isolated,
			DHCP4:     n.DHCP && n.Gateway4.IsValid(),
			MTU:       n.MTU,
			Subnet6:   n.Subnet6,
			Gateway6:  n.Gateway6,
			IPv6Mode:  n.IPv6Mode,
		})
	}
	for _, m := range p.Members {
		dm := Member{Name: m.Name, Hostname: m.Hostname, Records: slices.Clone(m.Records)}
		var aliases []string
		if m.Service != m.Name {
			aliases = append(aliases, m.Service)
		}
		for _, nic := range m.NICs {
			aliases = append(aliases, nic.Aliases...)
			for _, a := range []netip.Addr{nic.IPv4, nic.IPv6} {
				if a.IsValid() {
					dm.Addrs = append(dm.Addrs, a)
				}
			}
			hw, err := net.ParseMAC(nic.MAC)
			if err != nil {
				continue // the planner validated it; a bad one gets no lease
			}
			dnic := NIC{Network: nic.Network, MAC: hw, IPv4: nic.IPv4}
			if n := p.Network(nic.Network); n != nil && n.IPv6Mode == spec.IPv6Static {
				dnic.IPv6 = nic.IPv6
			}
			dm.NICs = append(dm.NICs, dnic)
		}
		slices.Sort(aliases)
		dm.Aliases = slices.DeleteFunc(slices.Compact(aliases), func(a string) bool { return a == m.Name })
		cfg.Members = append(cfg.Members, dm)
	}
	return cfg
}
