// Package graph draws a project's plan: its networks, its members (VMs
// and containers drawn apart) with their addresses and forwarded ports,
// and the dependencies between members with their conditions; with the
// live state of each member when the project is up. It writes Graphviz's
// DOT and Mermaid, both plain text; SVG is DOT given to Graphviz.
package graph

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/foldup/foldup/planner"
)

// State is what runs of a member: its state (running, exited, ...) and
// health (healthy, unhealthy, starting or "").
type State struct {
	State  string
	Health string
}

// Live is the members' states by member name; nil when the project is
// not up (the picture is then of the plan alone).
type Live map[string]State

// words is a member's state as the picture says it, and its colour.
func (l Live) words(m *planner.Member) (string, string) {
	if l == nil {
		return "", ""
	}
	s, ok := l[m.Name]
	switch {
	case !ok || s.State == "":
		return "not created", "grey"
	case s.State == "running" && s.Health == "unhealthy":
		return "running (unhealthy)", "red"
	case s.State == "running" && s.Health == "starting":
		return "running (starting)", "orange"
	case s.State == "running" && s.Health != "":
		return "running (" + s.Health + ")", "green"
	case s.State == "running":
		return "running", "green"
	}
	return s.State, "red"
}

func subnets(n *planner.Network) []string {
	var out []string
	for _, p := range []netip.Prefix{n.Subnet4, n.Subnet6} {
		if p.IsValid() {
			out = append(out, p.String())
		}
	}
	return out
}

func addrs(nic *planner.NIC) []string {
	var out []string
	for _, a := range []netip.Addr{nic.IPv4, nic.IPv6} {
		if a.IsValid() {
			out = append(out, a.String())
		}
	}
	return out
}

func ports(m *planner.Member) []string {
	var out []string
	for _, p := range m.Ports {
		host := fmt.Sprint(p.HostPort)
		if a, err := netip.ParseAddr(p.HostIP); err == nil {
			host = netip.AddrPortFrom(a, p.HostPort).String()
		}
		out = append(out, fmt.Sprintf("%s→%d/%s", host, p.Target, p.Protocol))
	}
	return out
}

// id is a node's identifier in both languages: letters, digits and _.
func id(prefix, name string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "_%x_", r)
		}
	}
	return b.String()
}

// DOT is the plan as a Graphviz digraph: networks as ellipses, containers
// as boxes, VMs as 3-D boxes, each member linked to its networks (the
// link labelled with its addresses) and to what it depends on (dashed,
// labelled with the condition); members filled by their live state.
func DOT(plan *planner.Plan, live Live) string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %q {\n", plan.Project)
	b.WriteString("  graph [rankdir=LR, fontname=\"Helvetica\", labelloc=t, label=" + dotQuote("project "+plan.Project+" ("+plan.Domain+")") + "];\n")
	b.WriteString("  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=9];\n")
	for _, n := range plan.Networks {
		label := []string{"network " + n.Name}
		label = append(label, subnets(n)...)
		var flags []string
		if n.Isolated {
			flags = append(flags, "isolated")
		} else if n.Outbound != "" && n.Outbound != "nat" {
			flags = append(flags, "outbound: "+n.Outbound)
		}
		if n.External {
			flags = append(flags, "external")
		}
		if len(flags) > 0 {
			label = append(label, strings.Join(flags, ", "))
		}
		fmt.Fprintf(&b, "  %s [shape=ellipse, style=filled, fillcolor=lightblue, label=%s];\n", id("net_", n.Name), dotQuote(strings.Join(label, "\n")))
	}
	for _, m := range plan.Members {
		shape := "box"
		if m.Kind == planner.VM {
			shape = "box3d"
		}
		label := []string{m.Name, m.Kind}
		label = append(label, ports(m)...)
		attrs := fmt.Sprintf("shape=%s", shape)
		if words, color := live.words(m); words != "" {
			label = append(label, words)
			attrs += ", style=filled, fillcolor=" + map[string]string{"green": "palegreen", "orange": "moccasin", "red": "salmon", "grey": "lightgrey"}[color]
		}
		fmt.Fprintf(&b, "  %s [%s, label=%s];\n", id("m_", m.Name), attrs, dotQuote(strings.Join(label, "\n")))
	}
	for _, m := range plan.Members {
		for _, nic := range m.NICs {
			fmt.Fprintf(&b, "  %s -> %s [dir=none, label=%s];\n", id("m_", m.Name), id("net_", nic.Network), dotQuote(strings.Join(addrs(nic), "\n")))
		}
	}
	for _, m := range plan.Members {
		for _, d := range m.DependsOn {
			fmt.Fprintf(&b, "  %s -> %s [style=dashed, label=%s];\n", id("m_", m.Name), id("m_", d.Member), dotQuote(d.Condition))
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// dotQuote is s as a DOT string, its newlines as \n (centred lines).
func dotQuote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + strings.ReplaceAll(s, "\n", `\n`) + `"`
}

// Mermaid is the plan as a Mermaid flowchart, as DOT draws it: networks
// as stadiums, containers as rectangles, VMs as subroutines (double
// sides), dependencies as dotted arrows; members classed by live state.
func Mermaid(plan *planner.Plan, live Live) string {
	var b strings.Builder
	b.WriteString("---\ntitle: " + mermaidText("project "+plan.Project+" ("+plan.Domain+")") + "\n---\nflowchart LR\n")
	for _, n := range plan.Networks {
		label := append([]string{"network " + n.Name}, subnets(n)...)
		if n.Isolated {
			label = append(label, "isolated")
		}
		fmt.Fprintf(&b, "  %s([\"%s\"])\n", id("net_", n.Name), mermaidLines(label))
	}
	classes := map[string][]string{}
	for _, m := range plan.Members {
		label := append([]string{m.Name, m.Kind}, ports(m)...)
		if words, color := live.words(m); words != "" {
			label = append(label, words)
			classes[color] = append(classes[color], id("m_", m.Name))
		}
		open, close := "[\"", "\"]"
		if m.Kind == planner.VM {
			open, close = "[[\"", "\"]]"
		}
		fmt.Fprintf(&b, "  %s%s%s%s\n", id("m_", m.Name), open, mermaidLines(label), close)
	}
	for _, m := range plan.Members {
		for _, nic := range m.NICs {
			fmt.Fprintf(&b, "  %s ---|\"%s\"| %s\n", id("m_", m.Name), mermaidLines(addrs(nic)), id("net_", nic.Network))
		}
	}
	for _, m := range plan.Members {
		for _, d := range m.DependsOn {
			fmt.Fprintf(&b, "  %s -.->|%s| %s\n", id("m_", m.Name), d.Condition, id("m_", d.Member))
		}
	}
	b.WriteString("  classDef network fill:#add8e6\n")
	for _, n := range plan.Networks {
		fmt.Fprintf(&b, "  class %s network\n", id("net_", n.Name))
	}
	for _, c := range []struct{ name, fill string }{{"green", "#98fb98"}, {"orange", "#ffe4b5"}, {"red", "#fa8072"}, {"grey", "#d3d3d3"}} {
		if ids := classes[c.name]; len(ids) > 0 {
			fmt.Fprintf(&b, "  classDef %s fill:%s\n  class %s %s\n", c.name, c.fill, strings.Join(ids, ","), c.name)
		}
	}
	return b.String()
}

// mermaidLines joins lines with Mermaid's line break, each escaped.
func mermaidLines(lines []string) string {
	for i, l := range lines {
		lines[i] = mermaidText(l)
	}
	return strings.Join(lines, "<br/>")
}

// mermaidText escapes what a quoted Mermaid label cannot hold.
func mermaidText(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;").Replace(s)
}
