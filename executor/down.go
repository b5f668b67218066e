//go:build linux

package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/foldup/foldup/containers"
	net "github.com/foldup/foldup/network"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/supervisor"
	"github.com/foldup/foldup/vm"
)

// DownOptions are down's flags.
type DownOptions struct {
	Volumes       bool // remove named volumes and the project's state
	RemoveOrphans bool // accepted for Compose's sake: down removes every container of the project
	Timeout       *int // seconds to wait for containers to stop (default: each one's own)
	// Force removes what the project's labels and names find even when
	// the journal or plan cannot be read.
	Force bool
}

// Down removes everything up made for project: it stops the supervisor,
// then walks the journal backwards, removing each thing it names that
// still exists (Docker objects only when they carry the project's label),
// and then every container the engine still has with the project's label.
// It goes on after an error, so that one stuck object does not keep the
// rest, and keeps the journal when anything failed, so that down can be
// run again.
func (x *Executor) Down(ctx context.Context, project string, do DownOptions) error {
	o := x.o
	d := o.dirs(project)
	prog := newProgress(o.Events)
	if _, err := os.Stat(d.State); errors.Is(err, os.ErrNotExist) && !do.Force {
		if err := x.downByLabel(ctx, project, do, o, prog, nil); err != nil {
			return err
		}
		return nil
	}
	unlock, err := d.Lock(func() { prog.note("Waiting for another foldup to finish with project " + project) })
	if err != nil {
		return err
	}
	defer unlock()

	entries, jerr := state.ReadJournal(d.JournalFile())
	plan, perr := state.LoadPlan(d.PlanFile())
	if (jerr != nil || perr != nil) && !do.Force {
		return errors.Join(jerr, perr)
	}
	if o.DryRun {
		// What down would remove: the journal's objects, newest first.
		prog.note("DRY-RUN MODE: nothing is changed")
		slices.Reverse(entries)
		for _, e := range entries {
			if e.Kind == state.KindVolume && !do.Volumes {
				continue
			}
			prog.event(dryRunKind(e.Kind), e.Name, "Would remove")
		}
		return nil
	}

	var errs []error
	if err := supervisor.NewClient(d).Stop(ctx); err != nil {
		errs = append(errs, err)
	}

	host := o.Host
	if host == nil {
		if host, err = net.OpenCurrent(); err != nil {
			return err
		}
		defer host.Close()
	}
	var dc containers.Engine
	needDocker := do.Force
	for _, e := range entries {
		switch e.Kind {
		case state.KindContainer, state.KindDockerNetwork, state.KindVolume, state.KindImage:
			needDocker = true
		}
	}
	if needDocker {
		if dc, err = x.engine(); err == nil {
			if _, err = dc.Ping(ctx); err != nil {
				dc = nil
			}
		}
		if dc == nil && !do.Force {
			return fmt.Errorf("the project has Docker objects and no Docker engine answers: %v", err)
		}
	}
	// Containers first, all of them: every other object waits for them.
	if dc != nil {
		if err := removeContainers(ctx, dc, project, do.Timeout, prog); err != nil {
			errs = append(errs, err)
		}
	}
	slices.Reverse(entries)
	// With --force and a lost journal, the plan and the project's labels
	// still name what to remove.
	if do.Force && plan != nil {
		entries = append(entries, planEntries(plan)...)
	}
	for _, e := range entries {
		var err error
		switch e.Kind {
		case state.KindContainer:
			if dc != nil {
				err = removeOwned(ctx, dc, project, e.Name, do.Timeout)
			}
		case state.KindDockerNetwork:
			if dc != nil {
				var gone bool
				if gone, err = containers.RemoveNetwork(ctx, dc, project, e.Name); gone {
					prog.event("Network", e.Name, "Removed")
				}
			}
		case state.KindVolume:
			if dc != nil && do.Volumes {
				var gone bool
				if gone, err = containers.RemoveVolume(ctx, dc, project, e.Name); gone {
					prog.event("Volume", e.Name, "Removed")
				}
			}
		case state.KindVM:
			grace := -1 * time.Second // the VM's own stop_grace_period
			if do.Timeout != nil {
				grace = time.Duration(*do.Timeout) * time.Second
			}
			ev := prog.start("VM", e.Name)
			var stopped bool
			if stopped, err = vm.Stop(ctx, d, e.Name, grace); stopped && err == nil {
				ev.done("Removed")
			}
		case state.KindTap, state.KindIfb:
			err = host.LinkDel(e.Name)
		case state.KindDockerAccept:
			err = host.DockerAcceptRemove(e.Name)
		case state.KindFirewall:
			err = host.FirewallRemove(e.Name)
		case state.KindBridge:
			err = host.LinkDel(e.Name)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", e.Kind, e.Name, err))
		}
	}
	if do.Force {
		errs = append(errs, host.FirewallRemove(project))
	}
	if do.Force || do.Volumes {
		// Named volumes outlive a plain down, and its journal: -v finds
		// them by label.
		errs = append(errs, x.downByLabel(ctx, project, do, o, prog, dc))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, f := range []string{d.JournalFile(), d.PlanFile(), d.LeaseFile(), d.StoppedFile(), d.FilesFile()} {
		os.Remove(f)
	}
	os.RemoveAll(d.Run)
	if do.Volumes {
		return os.RemoveAll(d.State)
	}
	return nil
}

// planEntries names what a plan would have made, for down --force.
func planEntries(p *planner.Plan) []state.Entry {
	var out []state.Entry
	for _, m := range p.Members {
		if m.Kind != planner.VM {
			continue
		}
		out = append(out, state.Entry{Kind: state.KindVM, Name: m.Name})
		for _, nic := range m.NICs {
			out = append(out, state.Entry{Kind: state.KindTap, Name: nic.Tap})
		}
	}
	for _, m := range p.Members {
		for _, nic := range m.NICs {
			if nic.Ifb != "" {
				out = append(out, state.Entry{Kind: state.KindIfb, Name: nic.Ifb})
			}
		}
	}
	for _, n := range p.Networks {
		if n.External {
			continue
		}
		out = append(out, state.Entry{Kind: state.KindDockerNetwork, Name: n.DockerName}, state.Entry{Kind: state.KindDockerAccept, Name: n.Bridge}, state.Entry{Kind: state.KindBridge, Name: n.Bridge})
	}
	return out
}

// downByLabel removes the Docker objects that carry the project's label:
// what down does for a project whose state directory is gone.
// dryRunKind is how a journal entry's kind reads in progress.
func dryRunKind(k string) string {
	switch k {
	case state.KindContainer:
		return "Container"
	case state.KindDockerNetwork:
		return "Network"
	case state.KindVolume:
		return "Volume"
	case state.KindVM:
		return "VM"
	}
	return strings.ToUpper(k[:1]) + k[1:]
}

func (x *Executor) downByLabel(ctx context.Context, project string, do DownOptions, o Options, prog *progress, dc containers.Engine) error {
	if dc == nil {
		var err error
		if dc, err = x.engine(); err != nil {
			return err
		}
		if _, err := dc.Ping(ctx); err != nil {
			prog.note("No Docker engine answers: Docker objects of project " + project + " were not looked for")
			return nil
		}
	}
	var errs []error
	errs = append(errs, removeContainers(ctx, dc, project, do.Timeout, prog))
	nets, err := dc.NetworkList(ctx, network.ListOptions{Filters: containers.ProjectFilter(project)})
	errs = append(errs, err)
	for _, n := range nets {
		gone, err := containers.RemoveNetwork(ctx, dc, project, n.Name)
		errs = append(errs, err)
		if gone {
			prog.event("Network", n.Name, "Removed")
		}
	}
	if do.Volumes {
		vols, err := dc.VolumeList(ctx, volume.ListOptions{Filters: containers.ProjectFilter(project)})
		errs = append(errs, err)
		for _, v := range vols.Volumes {
			gone, err := containers.RemoveVolume(ctx, dc, project, v.Name)
			errs = append(errs, err)
			if gone {
				prog.event("Volume", v.Name, "Removed")
			}
		}
	}
	return errors.Join(errs...)
}

// removeContainers stops and removes every container with the project's
// label, all at once.
func removeContainers(ctx context.Context, dc containers.Engine, project string, timeout *int, prog *progress) error {
	list, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: containers.ProjectFilter(project)})
	if err != nil {
		return err
	}
	errc := make(chan error, len(list))
	for _, c := range list {
		go func() {
			name := strings.TrimPrefix(c.Names[0], "/")
			ev := prog.start("Container", name)
			ev.update("Stopping")
			if err := containers.Remove(ctx, dc, c.ID, timeout, false); err != nil {
				errc <- ev.fail(err)
				return
			}
			ev.done("Removed")
			errc <- nil
		}()
	}
	var errs []error
	for range list {
		errs = append(errs, <-errc)
	}
	return errors.Join(errs...)
}

// removeOwned removes the container called name if it carries the
// project's label.
func removeOwned(ctx context.Context, dc containers.Engine, project, name string, timeout *int) error {
	c, err := dc.ContainerInspect(ctx, name)
	if err != nil {
		return nil // gone already
	}
	if c.Config.Labels[containers.LabelProject] != project {
		return nil
	}
	return containers.Remove(ctx, dc, c.ID, timeout, false)
}
