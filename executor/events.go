//go:build linux

package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/foldup/foldup/containers"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/vm"
)

// MemberEvent is one thing that happened to a container or a VM of the
// project, as docker compose events reports one.
type MemberEvent struct {
	Time       time.Time         `json:"time"`
	Type       string            `json:"type"` // container or vm
	Action     string            `json:"action"`
	ID         string            `json:"id"`
	Service    string            `json:"service"`
	Attributes map[string]string `json:"attributes"`
}

// Events sends what happens to the project's containers (the engine's
// events) and VMs (start, pause, unpause, kill, die: their events files,
// which whatever caused each writes, read ten times a second) to emit,
// until ctx ends.
func (x *Executor) Events(ctx context.Context, project string, members []string, emit func(MemberEvent)) error {
	d := x.o.dirs(project)
	plan, err := state.LoadPlan(d.PlanFile())
	if err != nil {
		return err
	}
	wants := func(service, member string) bool {
		return len(members) == 0 || slices.Contains(members, service) || slices.Contains(members, member)
	}
	out := make(chan MemberEvent)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	if plan == nil || plan.HasContainers() {
		dc, err := x.engine()
		if err != nil {
			return err
		}
		msgs, errs := dc.Events(ctx, events.ListOptions{Filters: containers.ProjectFilter(project,
			filters.Arg("type", string(events.ContainerEventType)))})
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case err := <-errs:
					errc <- err
					return
				case m := <-msgs:
					svc := m.Actor.Attributes[containers.LabelService]
					if !wants(svc, m.Actor.Attributes[containers.LabelMember]) {
						continue
					}
					select {
					case out <- MemberEvent{Time: time.Unix(0, m.TimeNano), Type: "container", Action: string(m.Action),
						ID: m.Actor.ID, Service: svc, Attributes: m.Actor.Attributes}:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}
	if plan != nil {
		go func() {
			// Each VM's events file, from its end as it is now: what
			// comes next, written by whatever caused it.
			offsets := map[string]int64{}
			for _, m := range plan.Members {
				if fi, err := os.Stat(vm.For(d, m.Name).EventsFile()); err == nil {
					offsets[m.Name] = fi.Size()
				}
			}
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				for _, m := range plan.Members {
					if m.Kind != planner.VM || !wants(m.Service, m.Name) {
						continue
					}
					b, err := os.ReadFile(vm.For(d, m.Name).EventsFile())
					if err != nil {
						continue
					}
					off := offsets[m.Name]
					if int64(len(b)) < off {
						off = 0 // a new file (down, then up)
					}
					end := bytes.LastIndexByte(b[off:], '\n')
					if end < 0 {
						continue
					}
					lines := b[off : off+int64(end)+1]
					offsets[m.Name] = off + int64(end) + 1
					for _, l := range bytes.Split(bytes.TrimSpace(lines), []byte("\n")) {
						var e vm.VMEvent
						if json.Unmarshal(l, &e) != nil {
							continue
						}
						attrs := maps.Clone(e.Attributes)
						if attrs == nil {
							attrs = map[string]string{}
						}
						attrs["name"] = m.Name
						select {
						case out <- MemberEvent{Time: e.Time, Type: "vm", Action: e.Action, ID: m.Name, Service: m.Service, Attributes: attrs}:
						case <-ctx.Done():
							return
						}
					}
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case ev := <-out:
			emit(ev)
		}
	}
}
