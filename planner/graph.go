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

// steps builds the DAG: networks, then the DNS server, then members in
// dependency order. IDs follow a topological order, so every step's
// dependencies have smaller IDs, and ties are broken by name.
func (pl *planner) steps() {
	if pl.cycles() {
		return
	}
	plan := pl.plan
	add := func(target, action, reason string, deps []int) *Step {
		slices.Sort(deps)
		s := &Step{ID: len(plan.Steps) + 1, Deps: slices.Compact(deps), Target: target, Action: action, Reason: reason}
		if s.Deps == nil {
			s.Deps = []int{}
		}
		plan.Steps = append(plan.Steps, s)
		return s
	}
	netStep := map[string]int{}
	var all []int
	for _, n := range plan.Networks {
		if n.External {
			continue
		}
		action, reason := ActionCreate, "not found"
		if pl.obs.Networks[n.Name] {
			action, reason = ActionNone, "exists"
		}
		s := add("network:"+n.Name, action, reason, nil)
		netStep[n.Name] = s.ID
		all = append(all, s.ID)
	}
	dnsID := 0
	if len(all) > 0 {
		action, reason := ActionStart, "not running"
		if pl.obs.DNSRunning {
			action, reason = ActionNone, "running"
		}
		dnsID = add("dns", action, reason, all).ID
	}

	// Members of each service or VM, for edges to all replicas.
	byService := map[string][]*Member{}
	for _, m := range plan.Members {
		byService[m.Service] = append(byService[m.Service], m)
	}
	for _, m := range plan.Members {
		section := "services"
		if m.Kind == VM {
			section = "vms"
		}
		deps := pl.deps(section, m.Service)
		for _, t := range slices.Sorted(maps.Keys(deps)) {
			if _, ok := pl.nodeOf(t); !ok {
				continue
			}
			for _, tm := range byService[t] {
				m.DependsOn = append(m.DependsOn, Dependency{Member: tm.Name, Condition: deps[t].Condition, Required: deps[t].Required})
			}
		}
	}

	// Kahn's algorithm over members, smallest name first.
	stepOf := map[string]int{}
	done := map[string]bool{}
	for len(done) < len(plan.Members) {
		progressed := false
		for _, m := range plan.Members {
			if done[m.Name] {
				continue
			}
			ready := true
			for _, d := range m.DependsOn {
				if !done[d.Member] {
					ready = false
					break
				}
			}
			if !ready {
				continue
			}
			var ids []int
			for _, nic := range m.NICs {
				if id, ok := netStep[nic.Network]; ok {
					ids = append(ids, id)
				}
			}
			// A container may look a name up as soon as it runs: it waits
			// for the DNS server. A VM's DHCP client asks seconds after
			// qemu starts (firmware and kernel come first; ~2.5 s under
			// TCG, ~0.3 s for a fast guest under KVM, against ~0.1 s for the
			// server to start), and asks again if unanswered: its qemu
			// starts while the server does.
			if dnsID != 0 && len(m.NICs) > 0 && m.Kind != VM {
				ids = append(ids, dnsID)
			}
			for _, d := range m.DependsOn {
				ids = append(ids, stepOf[d.Member])
			}
			action, reason := pl.memberAction(m)
			stepOf[m.Name] = add(m.Kind+":"+m.Name, action, reason, ids).ID
			done[m.Name] = true
			progressed = true
			break // restart from the smallest name
		}
		if !progressed {
			panic("planner: cycle survived cycle detection") // cycles() reports them all
		}
	}
}

func (pl *planner) memberAction(m *Member) (string, string) {
	st, ok := pl.obs.Members[m.Name]
	switch {
	case !ok:
		return ActionCreate, "not found"
	case st.ConfigHash != m.ConfigHash:
		return ActionRecreate, "config changed"
	case !st.Running:
		return ActionStart, "not running"
	}
	return ActionNone, "running"
}

// String renders the plan one step a line, in the form docker compose's
// plan uses, with what each step will make in brackets:
//
//	[] -> #1 network:lan, Create, not found (bridge fub…, 10.80.1.0/24 gw 10.80.1.1)
//	[1] -> #2 dns, Start, not running (10.80.1.1)
func (p *Plan) String() string {
	var b strings.Builder
	nets := map[string]*Network{}
	for _, n := range p.Networks {
		nets[n.Name] = n
	}
	members := map[string]*Member{}
	for _, m := range p.Members {
		members[m.Name] = m
	}
	for _, s := range p.Steps {
		deps := make([]string, len(s.Deps))
		for i, d := range s.Deps {
			deps[i] = fmt.Sprint(d)
		}
		fmt.Fprintf(&b, "[%s] -> #%d %s, %s, %s", strings.Join(deps, " "), s.ID, s.Target, s.Action, s.Reason)
		kind, name, _ := strings.Cut(s.Target, ":")
		var detail string
		switch kind {
		case "network":
			detail = nets[name].detail()
		case "dns":
			detail = p.dnsDetail()
		default:
			detail = members[name].detail()
		}
		fmt.Fprintf(&b, " (%s)\n", detail)
	}
	return b.String()
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
