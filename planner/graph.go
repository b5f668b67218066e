package planner

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// deps returns the depends_on entries of the service or VM behind m.
func (pl *planner) deps(section, name string) types.DependsOnConfig {
	if section == "vms" {
		return pl.p.VMs[name].DependsOn
	}
	out := types.DependsOnConfig{}
	for k, v := range pl.p.Compose.Services[name].DependsOn {
		out[k] = v
	}
	for k, v := range pl.p.ServiceDeps[name] {
		out[k] = v
	}
	return out
}

// node is a service or VM in the dependency graph.
type node struct{ section, name string }

func (pl *planner) nodes() []node {
	var out []node
	for _, n := range pl.p.ServiceNames() {
		out = append(out, node{"services", n})
	}
	for _, n := range pl.p.VMNames() {
		out = append(out, node{"vms", n})
	}
	slices.SortFunc(out, func(a, b node) int { return cmp.Compare(a.name, b.name) })
	return out
}

func (pl *planner) nodeOf(name string) (node, bool) {
	if _, ok := pl.p.VMs[name]; ok {
		return node{"vms", name}, true
	}
	if _, ok := pl.p.Compose.Services[name]; ok {
		return node{"services", name}, true
	}
	return node{}, false // disabled and not required: no edge
}

// cycles reports every dependency cycle, each once, as the whole cycle,
// starting from its alphabetically first member.
func (pl *planner) cycles() bool {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []node
	seen := map[string]bool{}
	found := false
	var visit func(n node)
	visit = func(n node) {
		color[n.name] = grey
		stack = append(stack, n)
		for _, t := range slices.Sorted(maps.Keys(pl.deps(n.section, n.name))) {
			tn, ok := pl.nodeOf(t)
			if !ok {
				continue
			}
			switch color[t] {
			case white:
				visit(tn)
			case grey:
				i := slices.IndexFunc(stack, func(s node) bool { return s.name == t })
				cyc := slices.Clone(stack[i:])
				// Rotate to start at the smallest name, for one report per cycle.
				min := 0
				for j, c := range cyc {
					if c.name < cyc[min].name {
						min = j
					}
				}
				cyc = append(cyc[min:], cyc[:min]...)
				names := make([]string, 0, len(cyc)+1)
				for _, c := range cyc {
					names = append(names, c.name)
				}
				names = append(names, cyc[0].name)
				key := strings.Join(names, " -> ")
				if !seen[key] {
					seen[key] = true
					found = true
					next := cyc[(1)%len(cyc)].name
					pl.keyErrorf([]string{cyc[0].section, cyc[0].name, "depends_on", next}, "dependency cycle: %s", key)
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n.name] = black
	}
	for _, n := range pl.nodes() {
		if color[n.name] == white {
			visit(n)
		}
	}
	return found
}

func (n *Network) detail() string {
	parts := []string{"bridge " + n.Bridge}
	if n.Subnet4.IsValid() {
		parts = append(parts, fmt.Sprintf("%s gw %s docker %s", n.Subnet4, n.Gateway4, n.DockerRange4))
	}
	if n.Subnet6.IsValid() {
		parts = append(parts, fmt.Sprintf("%s gw %s %s", n.Subnet6, n.Gateway6, n.IPv6Mode))
	}
	var flags []string
	if n.Isolated {
		flags = append(flags, "isolated")
	}
	flags = append(flags, "outbound "+n.Outbound)
	if !n.DHCP {
		flags = append(flags, "no dhcp")
	}
	for _, g := range n.Multicast {
		flags = append(flags, "multicast "+g.String())
	}
	if n.MTU != 0 {
		flags = append(flags, fmt.Sprintf("mtu %d", n.MTU))
	}
	return strings.Join(append(parts, strings.Join(flags, " ")), ", ")
}

func (p *Plan) dnsDetail() string {
	var addrs []string
	for _, n := range p.Networks {
		for _, a := range n.DNSAddrs() {
			addrs = append(addrs, a.String())
		}
	}
	d := strings.Join(addrs, " ") + "; domain " + p.Domain
	if len(p.Records) > 0 {
		d += fmt.Sprintf("; %d records", len(p.Records))
	}
	return d
}

func (m *Member) detail() string {
	var parts []string
	for _, nic := range m.NICs {
		f := []string{nic.Network, nic.MAC}
		if nic.IPv4.IsValid() {
			f = append(f, nic.IPv4.String())
		}
		if nic.IPv6.IsValid() {
			f = append(f, nic.IPv6.String())
		}
		if nic.Tap != "" {
			f = append(f, "tap "+nic.Tap)
		}
		parts = append(parts, strings.Join(f, " "))
	}
	if len(m.Ports) > 0 {
		var ps []string
		for _, p := range m.Ports {
			host := fmt.Sprint(p.HostPort)
			if p.HostIP != "" {
				host = p.HostIP + ":" + host
			}
			ps = append(ps, fmt.Sprintf("%s->%d/%s", host, p.Target, p.Protocol))
		}
		parts = append(parts, "ports "+strings.Join(ps, " "))
	}
	if len(m.DependsOn) > 0 {
		var ds []string
		for _, d := range m.DependsOn {
			ds = append(ds, d.Member+" "+strings.TrimPrefix(d.Condition, "service_"))
		}
		parts = append(parts, "after "+strings.Join(ds, ", "))
	}
	if len(parts) == 0 {
		return "no network"
	}
	return strings.Join(parts, "; ")
}
