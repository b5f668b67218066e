//go:build linux

package executor

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/foldup/foldup/firewall"
	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/state"
)

// CaptureTarget is what a capture listens on: a network's bridge, or a
// member's port on one network (its tap, or its container's veth).
type CaptureTarget struct {
	Interface string
	What      string // in words: "network lan (bridge fu1a2b3c4d)"
}

// CaptureOn resolves a capture's target in a project that is up: the
// network of that name, else the member (or service) of that name on
// net (which may be empty when the member has one network).
func (x *Executor) CaptureOn(ctx context.Context, project, target, net string) (CaptureTarget, error) {
	plan, err := state.LoadPlan(x.o.dirs(project).PlanFile())
	if err != nil {
		return CaptureTarget{}, err
	}
	if plan == nil {
		return CaptureTarget{}, fmt.Errorf("project %s is not up here", project)
	}
	if n := plan.Network(target); n != nil {
		if net != "" && net != target {
			return CaptureTarget{}, fmt.Errorf("%s is a network: --network is for a member", target)
		}
		return CaptureTarget{Interface: n.Bridge, What: fmt.Sprintf("network %s (bridge %s)", n.Name, n.Bridge)}, nil
	}
	var m *planner.Member
	for _, c := range plan.Members {
		if c.Name == target || c.Service == target && m == nil {
			m = c
		}
	}
	if m == nil {
		var names []string
		for _, n := range plan.Networks {
			names = append(names, n.Name)
		}
		for _, c := range plan.Members {
			names = append(names, c.Name)
		}
		return CaptureTarget{}, fmt.Errorf("no network or member %s in project %s: %s", target, project, strings.Join(names, ", "))
	}
	var nic *planner.NIC
	for _, n := range m.NICs {
		if n.Network == net || net == "" && len(m.NICs) == 1 {
			nic = n
		}
	}
	if nic == nil {
		var nets []string
		for _, n := range m.NICs {
			nets = append(nets, n.Network)
		}
		if net == "" {
			return CaptureTarget{}, fmt.Errorf("%s is on %d networks (%s): say which with --network", m.Name, len(nets), strings.Join(nets, ", "))
		}
		return CaptureTarget{}, fmt.Errorf("%s is not on network %s, but on %s", m.Name, net, strings.Join(nets, ", "))
	}
	if m.Kind == planner.VM {
		return CaptureTarget{Interface: nic.Tap, What: fmt.Sprintf("vm %s on %s (tap %s)", m.Name, nic.Network, nic.Tap)}, nil
	}
	dc, err := x.engine()
	if err != nil {
		return CaptureTarget{}, err
	}
	host, done, err := x.host()
	if err != nil {
		return CaptureTarget{}, err
	}
	defer done()
	ports, err := firewall.ContainerPorts(ctx, dc, host, plan, m, m.Container)
	if err != nil {
		return CaptureTarget{}, err
	}
	bridge := plan.Network(nic.Network).Bridge
	if i := slices.IndexFunc(ports, func(p network.Port) bool { return p.Bridge == bridge }); i >= 0 {
		return CaptureTarget{Interface: ports[i].Name, What: fmt.Sprintf("container %s on %s (veth %s)", m.Container, nic.Network, ports[i].Name)}, nil
	}
	return CaptureTarget{}, fmt.Errorf("container %s is not running: it has no port on %s to capture", m.Container, nic.Network)
}

// Capture writes the frames on t's interface that filter passes to w as
// pcap, until ctx ends, and says how many it wrote.
func (x *Executor) Capture(ctx context.Context, t CaptureTarget, filter *network.Filter, w *network.PcapWriter) (int, error) {
	host, done, err := x.host()
	if err != nil {
		return 0, err
	}
	defer done()
	return host.Capture(ctx, t.Interface, filter, w)
}

// host is the namespace of foldup's links: Options.Host, else this
// process's own, opened until done.
func (x *Executor) host() (*network.Host, func(), error) {
	if x.o.Host != nil {
		return x.o.Host, func() {}, nil
	}
	h, err := network.OpenCurrent()
	if err != nil {
		return nil, nil, err
	}
	return h, func() { h.Close() }, nil
}
