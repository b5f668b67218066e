//go:build linux

package firewall

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/docker/docker/errdefs"
	"github.com/foldup/foldup/containers"
	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
	"github.com/foldup/foldup/state"
)

// netemOf is a spec impairment as the network package applies it, split
// by direction: to the member, from it.
func netemOf(n *spec.Netem) (to, from *network.Netem) {
	if n == nil {
		return nil, nil
	}
	nn := &network.Netem{Delay: n.Delay, Jitter: n.Jitter, Loss: n.Loss, Duplicate: n.Duplicate, Corrupt: n.Corrupt, Rate: n.Rate}
	switch n.Direction {
	case spec.NetemFrom:
		return nil, nn
	case spec.NetemBoth:
		return nn, nn
	}
	return nn, nil
}

// MemberPorts are a member's ports by network: a VM's taps, a running
// container's veths (none when it is not running).
func MemberPorts(ctx context.Context, host *network.Host, dc containers.Engine, pl *planner.Plan, m *planner.Member) (map[string]string, error) {
	out := map[string]string{}
	if m.Kind == planner.VM {
		for _, nic := range m.NICs {
			if host.HasLink(nic.Tap) {
				out[nic.Network] = nic.Tap
			}
		}
		return out, nil
	}
	if dc == nil {
		return out, nil
	}
	ports, err := ContainerPorts(ctx, dc, host, pl, m, m.Container)
	if errdefs.IsNotFound(err) {
		return out, nil // not created (up of other services, run): no port
	}
	if err != nil {
		return nil, err
	}
	for _, nic := range m.NICs {
		n := pl.Network(nic.Network)
		if i := slices.IndexFunc(ports, func(p network.Port) bool { return n != nil && p.Bridge == n.Bridge }); i >= 0 {
			out[nic.Network] = ports[i].Name
		}
	}
	return out, nil
}

// ApplyNetem impairs the ports of the members (all, or those named) as
// the plan's NICs say, and takes away impairments the plan no longer has.
// An ifb device is recorded (record, if not nil: the journal's) before
// it is made.
func ApplyNetem(ctx context.Context, host *network.Host, dc containers.Engine, pl *planner.Plan, record func(kind, name string) error, members []string) error {
	var errs []error
	for _, m := range pl.Members {
		if len(members) > 0 && !slices.Contains(members, m.Name) {
			continue
		}
		ports, err := MemberPorts(ctx, host, dc, pl, m)
		if err != nil {
			errs = append(errs, fmt.Errorf("netem of %s: %w", m.Name, err))
			continue
		}
		for _, nic := range m.NICs {
			port, ok := ports[nic.Network]
			if !ok {
				continue
			}
			to, from := netemOf(nic.Netem)
			ifb := nic.Ifb
			if from != nil && !host.HasLink(ifb) && record != nil {
				if err := record(state.KindIfb, ifb); err != nil {
					return err
				}
			}
			if err := host.SetNetem(port, to, from, ifb); err != nil {
				errs = append(errs, fmt.Errorf("netem of %s on %s: %w", m.Name, nic.Network, err))
			}
		}
	}
	return errors.Join(errs...)
}
