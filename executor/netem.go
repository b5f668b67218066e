//go:build linux

package executor

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/foldup/foldup/containers"
	"github.com/foldup/foldup/firewall"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/supervisor"
)

// NetemStatus is a member's impairment on each of its networks, in tc's
// words, as ps shows it: "lan: delay 50ms loss 1%".
func NetemStatus(m *planner.Member) string {
	var parts []string
	for _, nic := range m.NICs {
		if nic.Netem != nil {
			parts = append(parts, nic.Network+": "+nic.Netem.String())
		}
	}
	return strings.Join(parts, "; ")
}

// Netem changes a running member's impairment on one network (all of its
// networks when network is ""), live: the plan up applied keeps it (ps
// shows it, a restarted container gets it back) until the next up, which
// applies the file's again. A nil n takes the impairment away.
func (x *Executor) Netem(ctx context.Context, project, member, net string, n *spec.Netem) error {
	d := x.o.dirs(project)
	unlock, err := d.Lock(nil)
	if err != nil {
		return err
	}
	defer unlock()
	pl, err := state.LoadPlan(d.PlanFile())
	if err != nil {
		return err
	}
	if pl == nil {
		return fmt.Errorf("project %s is not up here", project)
	}
	var m *planner.Member
	for _, c := range pl.Members {
		if c.Name == member || c.Service == member && m == nil {
			m = c
		}
	}
	if m == nil {
		return fmt.Errorf("no member %s in project %s", member, project)
	}
	found := false
	for _, nic := range m.NICs {
		if net != "" && nic.Network != net {
			continue
		}
		found = true
		nic.Netem = n
		if n != nil && (n.Direction == spec.NetemFrom || n.Direction == spec.NetemBoth) && nic.Ifb == "" {
			nic.Ifb = ifbName(pl, m, nic)
		}
	}
	if !found {
		return fmt.Errorf("%s is not on network %s", m.Name, net)
	}
	host, done, err := x.host()
	if err != nil {
		return err
	}
	defer done()
	var dc containers.Engine
	if m.Kind == planner.Container {
		if dc, err = x.engine(); err != nil {
			return err
		}
	}
	j, err := state.OpenJournal(d.JournalFile())
	if err != nil {
		return err
	}
	defer j.Close()
	if err := state.SavePlan(d.PlanFile(), pl); err != nil {
		return err
	}
	// The supervisor gives a container that starts again its impairment
	// from its copy of the plan: the new one. A project whose supervisor
	// does not run (up in the foreground has ended) has nobody to tell.
	supervisor.NewClient(d).Reload(ctx)
	ports, err := firewall.MemberPorts(ctx, host, dc, pl, m)
	if err != nil {
		return err
	}
	if len(ports) == 0 {
		return fmt.Errorf("%s is not running: it has no port to impair (the setting is kept for when it runs)", m.Name)
	}
	return firewall.ApplyNetem(ctx, host, dc, pl, j.Record, []string{m.Name})
}

// ifbName names the ifb device of a NIC the plan gave none, from the
// same parts the planner uses, with a salt until it is the plan's only.
func ifbName(pl *planner.Plan, m *planner.Member, nic *planner.NIC) string {
	taken := map[string]bool{}
	for _, c := range pl.Members {
		for _, n := range c.NICs {
			taken[n.Ifb] = true
		}
	}
	parts := []string{pl.Project, "ifb", m.Name, nic.Network} // the planner's
	for salt := 0; ; salt++ {
		ps := parts
		if salt > 0 {
			ps = append(slices.Clip(parts), fmt.Sprint(salt))
		}
		if name := planner.LinkName("fui", ps...); !taken[name] {
			return name
		}
	}
}
