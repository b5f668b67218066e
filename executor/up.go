//go:build linux

package executor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/foldup/foldup/containers"
	"github.com/foldup/foldup/firewall"
	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/supervisor"
	"github.com/foldup/foldup/vm"
	"github.com/foldup/foldup/vmimage"
	"golang.org/x/sync/errgroup"
)

// UpOptions are up's flags.
type UpOptions struct {
	Build         bool     // build images before starting containers
	ForceRecreate bool     // recreate containers whose configuration did not change
	RemoveOrphans bool     // remove containers of services no longer in the file
	Services      []string // only these services/VMs and what they depend on (default: all)
	// Wait waits until every container is running, and healthy if it has
	// a health check.
	Wait bool
	// WaitTimeout bounds Wait (0: none).
	WaitTimeout time.Duration
	// NoDeps, NoRecreate and AlwaysRecreateDeps are planner.Intent's.
	NoDeps, NoRecreate, AlwaysRecreateDeps bool
	// SegmentOnly is planner.Intent's: the segment, no member.
	SegmentOnly bool
	// NoBuild builds no image: a service with build: runs the image it
	// has, or up fails (up --no-build).
	NoBuild bool
	// RenewAnonVolumes gives a recreated container new anonymous volumes
	// and removes the old ones (up -V); without it the new container
	// keeps the old one's, as compose's does.
	RenewAnonVolumes bool
	// NoStart creates the members and starts none (up --no-start,
	// create): containers created, VMs' disks, seeds and taps made and
	// their records written.
	NoStart bool
	// InProcess runs the supervisor as a goroutine of this process (the
	// foreground `up`) instead of a detached process (`up -d`); Result's
	// Supervisor then stops it.
	InProcess bool
}

// Result is what Up did.
type Result struct {
	Plan     *planner.Plan
	Warnings []Warning
	// Supervisor is the in-process supervisor (UpOptions.InProcess), or
	// nil when another process runs it.
	Supervisor *InProcess
}

// InProcess is a supervisor running in this process.
type InProcess struct {
	stop context.CancelFunc
	done chan error
}

// Stop stops it and waits for it.
func (s *InProcess) Stop() error {
	s.stop()
	return <-s.done
}

// Done is closed (after sending its error, if any) when it ends.
func (s *InProcess) Done() <-chan error { return s.done }

// upRun is the state of one Up.
type upRun struct {
	x    *Executor
	p    *spec.Project
	pl   *planner.Plan
	o    Options
	uo   UpOptions
	d    state.Dirs
	j    *state.Journal
	host *network.Host
	dc   containers.Engine // nil when the project runs without Docker
	// podman: the engine is Podman's Docker-compatible service, which
	// refuses to create a network whose subnet a host interface has.
	podman bool
	prog   *progress
	obs    planner.Observed

	mu       sync.Mutex
	ports    map[string]network.Port // registered member ports by interface
	sup      *InProcess
	vmImages map[string]string   // a VM service's downloaded image: its path in the cache
	accels   map[string]vm.Accel // each VM's accelerator, by VM
}

// Up brings project p up: it plans it against what exists, then makes
// what is missing and recreates what changed, walking the plan's graph.
func (x *Executor) Up(ctx context.Context, p *spec.Project, uo UpOptions) (*Result, error) {
	o := x.o
	d := o.dirs(p.Name)
	prog := newProgress(o.Events)
	unlock, err := d.Lock(func() { prog.note("Waiting for another foldup to finish with project " + p.Name) })
	if err != nil {
		return nil, err
	}
	defer unlock()

	r := &upRun{x: x, p: p, o: o, uo: uo, d: d, prog: prog, ports: map[string]network.Port{}}
	if r.host = o.Host; r.host == nil {
		if r.host, err = network.OpenCurrent(); err != nil {
			return nil, err
		}
		defer r.host.Close()
	}
	res := &Result{}
	if err := r.check(ctx, res); err != nil {
		return nil, err
	}
	// Plan, and check every container's configuration, before anything
	// is made, so that bad input changes nothing.
	var specs map[string]*containers.Spec
	plan := func() error {
		if err := r.observe(ctx); err != nil {
			return err
		}
		pl, err := planner.Compute(p, r.obs, uo.Intent())
		if err != nil {
			return err
		}
		r.pl, res.Plan = pl, pl
		specs = map[string]*containers.Spec{}
		for _, m := range pl.Members {
			if m.Kind != planner.Container {
				continue
			}
			cs, err := containers.SpecFor(p, pl, m, d.State)
			if err != nil {
				return err
			}
			specs[m.Name] = cs
		}
		return nil
	}
	if err := plan(); err != nil {
		return nil, err
	}

	// Images first, as docker compose does: a missing one that cannot be
	// pulled or built stops up before anything is made.
	if err := r.images(ctx); err != nil {
		return nil, err
	}

	// Subnets and host ports are chosen against the other projects' and
	// the host's, which may have changed while the images were made: plan
	// again under the host's lock, and hold it until this project's
	// bridges hold its subnets.
	unlockHost, err := d.LockHost()
	if err != nil {
		return nil, err
	}
	defer unlockHost()
	if err := plan(); err != nil {
		return nil, err
	}
	pl := r.pl
	// A host port something else listens on is refused, as compose does:
	// the DNAT would take its traffic. This project's supervisor (or this
	// process's, in the foreground) holds its own.
	if err := supervisor.CheckHostPorts(r.host, p, pl, os.Getpid(), state.ReadPid(d.PidFile())); err != nil {
		return nil, err
	}

	if r.j, err = state.OpenJournal(d.JournalFile()); err != nil {
		return nil, err
	}
	defer r.j.Close()
	if err := state.SavePlan(d.PlanFile(), pl); err != nil {
		return nil, err
	}
	if err := state.WriteFileAtomic(d.FilesFile(), []byte(strings.Join(p.Files, "\n")+"\n")); err != nil {
		return nil, err
	}
	os.Remove(d.StoppedFile())

	err = r.run(ctx, specs, unlockHost)
	res.Supervisor = r.sup
	if err != nil {
		return res, err
	}
	// The links' impairments (x-foldup.netem), once every port is there.
	if err := firewall.ApplyNetem(ctx, r.host, r.dc, pl, r.j.Record, nil); err != nil {
		return res, err
	}
	if len(pl.Orphans) > 0 {
		prog.note(fmt.Sprintf("Found orphan containers (%s) for this project. If you removed or renamed this service in your file, run up with --remove-orphans to remove them.", strings.Join(pl.Orphans, ", ")))
	}
	r.j.Made()
	return res, nil
}

// Observe returns what is observed of the host and of project p's
// previous run, as up plans against it, and changes nothing: `foldup
// plan` shows what up would do here.
func (x *Executor) Observe(ctx context.Context, p *spec.Project) (planner.Observed, error) {
	o := x.o
	r := &upRun{x: x, p: p, o: o, d: o.dirs(p.Name), host: o.Host}
	if r.host == nil {
		h, err := network.OpenCurrent()
		if err != nil {
			return planner.Observed{}, err
		}
		defer h.Close()
		r.host = h
	}
	if err := r.reachEngine(ctx); err != nil {
		return planner.Observed{}, err
	}
	if err := r.observe(ctx); err != nil {
		return planner.Observed{}, err
	}
	return r.obs, nil
}

// check warns of what the file has that foldup does not act on, checks
// that the VMs' tools are here, chooses each VM's accelerator, and
// reaches the engine if the project has containers: before anything is
// planned or made.
func (r *upRun) check(ctx context.Context, res *Result) error {
	p, prog := r.p, r.prog
	res.Warnings = p.Warnings()
	for _, w := range res.Warnings {
		prog.warn(w.String())
	}
	for _, name := range p.VMNames() {
		if err := vm.Check(p, name); err != nil {
			return err
		}
	}
	accels, warnings, err := vm.Accelerators(ctx, p, p.VMNames(), r.o.RunRoot)
	for _, w := range warnings {
		prog.warn(w.String())
	}
	res.Warnings = append(res.Warnings, warnings...)
	if err != nil {
		return err
	}
	r.accels = accels
	return r.reachEngine(ctx)
}

// reachEngine connects to the engine when the project has containers,
// and learns whether it is Podman's.
func (r *upRun) reachEngine(ctx context.Context) error {
	if len(r.p.Compose.Services) == 0 {
		return nil
	}
	dc, err := r.x.engine()
	if err != nil {
		return err
	}
	v, err := dc.ServerVersion(ctx)
	if err != nil {
		return fmt.Errorf("the project has containers and no Docker engine answers at %s: %w", dc.DaemonHost(), err)
	}
	r.dc, r.podman = dc, containers.IsPodman(v)
	return nil
}

// run runs the plan's graph: each step once those it waits for are done,
// as many at once as the graph allows; the first error cancels the
// others. unlockHost releases the host's lock, once the last network is
// made.
func (r *upRun) run(ctx context.Context, specs map[string]*containers.Spec, unlockHost func()) error {
	pl, prog := r.pl, r.prog
	done := map[int]chan struct{}{}
	// The host's lock goes once the last network step is done.
	isNetwork := func(s *planner.Step) bool { return s.Kind == planner.KindNetwork }
	var networksLeft atomic.Int32
	for _, s := range pl.Steps {
		done[s.ID] = make(chan struct{})
		if isNetwork(s) {
			networksLeft.Add(1)
		}
		if s.Prepare() {
			close(done[s.ID]) // done before the graph
		}
	}
	if networksLeft.Load() == 0 {
		unlockHost()
	}
	g, gctx := errgroup.WithContext(ctx)
	if r.o.Parallel > 0 {
		// Steps go in order of their IDs, each after those it waits for,
		// so a step holding a slot waits only for ones that hold or held
		// one: the lowest always runs.
		g.SetLimit(r.o.Parallel)
	}
	prog.run = gctx
	for _, s := range pl.Steps {
		if s.Prepare() {
			continue
		}
		g.Go(func() error {
			for _, dep := range s.Deps {
				select {
				case <-done[dep]:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			if err := r.step(gctx, s, specs); err != nil {
				return err
			}
			if isNetwork(s) && networksLeft.Add(-1) == 0 {
				unlockHost()
			}
			close(done[s.ID])
			return nil
		})
	}
	err := g.Wait()
	prog.run = nil // Wait cancelled gctx
	return err
}

// Intent is what up with these options asks of the planner.
func (uo UpOptions) Intent() planner.Intent {
	return planner.Intent{Services: uo.Services, Build: uo.Build, ForceRecreate: uo.ForceRecreate, RemoveOrphans: uo.RemoveOrphans, Wait: uo.Wait,
		NoDeps: uo.NoDeps, NoRecreate: uo.NoRecreate, AlwaysRecreateDeps: uo.AlwaysRecreateDeps, SegmentOnly: uo.SegmentOnly}
}

// images runs the plan's image steps, all at once: pulls, builds and
// downloads.
func (r *upRun) images(ctx context.Context) error {
	r.vmImages = map[string]string{}
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range r.pl.Steps {
		switch s.Kind {
		case planner.KindVMImage:
			v := r.p.VMs[s.Name]
			g.Go(func() error {
				path, err := vmimage.Fetch(gctx, v.Image, v.SHA256, r.o.ImageCache, vmimage.Bar(r.o.Out, s.Name))
				if err != nil {
					return r.p.Errorf([]string{"vms", s.Name, "image"}, "%w; nothing was changed", err)
				}
				r.mu.Lock()
				r.vmImages[s.Name] = path
				r.mu.Unlock()
				return nil
			})
		case planner.KindImage:
			if svc := r.p.Compose.Services[s.Name]; r.uo.NoBuild && svc.Build != nil {
				// up --no-build: the image as it is, or an error.
				img := planner.ImageName(r.p, svc)
				g.Go(func() error {
					if _, err := r.dc.ImageInspect(gctx, img); errdefs.IsNotFound(err) {
						return r.p.Errorf([]string{"services", s.Name, "build"}, "image %s is not in the engine, and up --no-build builds nothing; nothing was changed", img)
					} else if err != nil {
						return r.p.Errorf([]string{"services", s.Name, "build"}, "image %s: %w; nothing was changed", img, err)
					}
					return nil
				})
				continue
			}
			g.Go(func() error {
				if err := containers.EnsureImage(gctx, r.dc, r.p, s.Name, s.Action == planner.ActionBuild, r.o.Out); err != nil {
					key := "image"
					if r.p.Compose.Services[s.Name].Build != nil {
						key = "build"
					}
					return r.p.Errorf([]string{"services", s.Name, key}, "%w; nothing was changed", err)
				}
				return nil
			})
		}
	}
	return g.Wait()
}

// observe fills r.obs: the previous plan, what exists of the project, and
// the subnets taken on the host.
func (r *upRun) observe(ctx context.Context) error {
	prev, err := state.LoadPlan(r.d.PlanFile())
	if err != nil {
		return err
	}
	r.obs.Previous = prev
	r.obs.Networks = map[string]bool{}
	r.obs.Members = map[string]planner.MemberState{}
	var ours []string
	if prev != nil {
		links, err := r.host.Links()
		if err != nil {
			return err
		}
		for _, n := range prev.Networks {
			ours = append(ours, n.Bridge)
			if slices.Contains(links, n.Bridge) {
				r.obs.Networks[n.Name] = true
			}
		}
	}
	r.obs.UsedSubnets, err = r.host.Prefixes(ours...)
	if err != nil {
		return err
	}
	// Other projects keep their subnets and host ports while they are up
	// or stopped, even when a reboot has taken their bridges.
	for project, pl := range r.d.OtherPlans() {
		for _, n := range pl.Networks {
			if n.External {
				continue
			}
			for _, pfx := range []netip.Prefix{n.Subnet4, n.Subnet6} {
				if pfx.IsValid() {
					r.obs.UsedSubnets = append(r.obs.UsedSubnets, pfx)
				}
			}
		}
		for _, m := range pl.Members {
			for _, pt := range m.Ports {
				r.obs.ForwardedPorts = append(r.obs.ForwardedPorts, planner.ForwardedPort{Port: pt, Owner: m.Name + " of project " + project})
			}
		}
	}
	if r.dc != nil {
		more, err := containers.Subnets(ctx, r.dc, r.p.Name)
		if err != nil {
			return err
		}
		r.obs.UsedSubnets = append(r.obs.UsedSubnets, more...)
		cs, err := containers.List(ctx, r.dc, r.p.Name, true)
		if err != nil {
			return err
		}
		for m, c := range cs {
			r.obs.Members[m] = planner.MemberState{Kind: planner.Container, Running: c.State == "running",
				ConfigHash: c.Labels[containers.LabelConfigHash], Container: strings.TrimPrefix(c.Names[0], "/")}
		}
	}
	for name := range r.p.VMs {
		f := vm.For(r.d, name)
		rec, err := vm.ReadRecord(f)
		if err != nil {
			continue // never started here
		}
		r.obs.Members[name] = planner.MemberState{Kind: planner.VM, Running: vm.Running(f) != 0, ConfigHash: rec.ConfigHash}
	}
	if _, err := supervisor.NewClient(r.d).Status(ctx); err == nil {
		r.obs.DNSRunning = true
	}
	return nil
}

// step does one step of the plan.
func (r *upRun) step(ctx context.Context, s *planner.Step, specs map[string]*containers.Spec) error {
	switch s.Kind {
	case planner.KindNetwork:
		return r.network(ctx, r.pl.Network(s.Name), s.Action)
	case planner.KindFirewall:
		return r.firewall(ctx)
	case planner.KindDockerAccept:
		return r.dockerAccept(r.pl.Network(s.Name))
	case planner.KindSupervisor:
		return r.supervisor(ctx, s.Action)
	case planner.KindWait:
		return r.wait(ctx, s)
	case planner.KindVolume:
		return r.volume(ctx, s.Name)
	case planner.KindContainer:
		return r.container(ctx, s, specs[s.Name])
	case planner.KindPorts:
		// Not up's to change, but its ports stay in the firewall.
		err := r.registerPorts(ctx, r.member(s.Name))
		if client.IsErrNotFound(err) {
			return nil
		}
		return err
	case planner.KindVMStop:
		return r.vmStop(ctx, s.Name)
	case planner.KindTap:
		return r.tap(s)
	case planner.KindOverlay:
		return r.overlay(ctx, s.Name)
	case planner.KindSeed:
		return r.seed(s.Name)
	case planner.KindQemu:
		return r.qemu(ctx, s)
	case planner.KindOrphan:
		ev := r.prog.start("Container", s.Name)
		if err := containers.Remove(ctx, r.dc, s.Name, nil, false); err != nil {
			return ev.fail(err)
		}
		ev.done("Removed")
		return nil
	case planner.KindReady:
		return r.ready(ctx, r.member(s.Name))
	}
	return fmt.Errorf("step %d: %s %s is not a kind of step this foldup knows", s.ID, s.Kind, s.Name)
}

// network makes the bridge (foldup's) and then Docker's network on it.
func (r *upRun) network(ctx context.Context, n *planner.Network, action string) error {
	ev := r.prog.start("Network", n.DockerName)
	if err := r.j.Record(state.KindBridge, n.Bridge); err != nil {
		return ev.fail(err)
	}
	engineNetwork := func() error {
		if err := r.j.Record(state.KindDockerNetwork, n.DockerName); err != nil {
			return err
		}
		return containers.EnsureNetwork(ctx, r.dc, r.p.Name, n, r.podman)
	}
	if r.podman {
		// Podman's network first, while no interface has its subnet;
		// it takes the bridge made next when a container joins.
		if err := engineNetwork(); err != nil {
			return ev.fail(err)
		}
	}
	var addrs []netip.Prefix
	if n.Gateway4.IsValid() {
		addrs = append(addrs, netip.PrefixFrom(n.Gateway4, n.Subnet4.Bits()))
	}
	if n.Gateway6.IsValid() {
		addrs = append(addrs, netip.PrefixFrom(n.Gateway6, n.Subnet6.Bits()))
	}
	err := r.host.BridgeAdd(network.BridgeOptions{Name: n.Bridge, MTU: n.MTU, Addrs: addrs, MulticastSnooping: len(n.Multicast) > 0})
	if err != nil {
		return ev.fail(err)
	}
	if !n.Isolated {
		if err := r.host.EnableForwarding(n.Subnet6.IsValid()); err != nil {
			return ev.fail(err)
		}
	}
	if r.dc != nil && !r.podman {
		if err := engineNetwork(); err != nil {
			return ev.fail(err)
		}
	}
	if action == planner.ActionNone {
		ev.done("Exists")
	} else {
		ev.done("Created")
	}
	return nil
}

// firewall applies the project's nftables tables, with the ports of the
// containers someone joined to its networks by hand held as members'.
func (r *upRun) firewall(ctx context.Context) error {
	ev := r.prog.start("Firewall", network.TableName(r.p.Name))
	if err := r.j.Record(state.KindFirewall, r.p.Name); err != nil {
		return ev.fail(err)
	}
	if r.dc != nil {
		joined, err := firewall.HandJoined(ctx, r.dc, r.host, r.pl, nil)
		if err != nil {
			return ev.fail(err)
		}
		r.mu.Lock()
		maps.Copy(r.ports, joined)
		r.mu.Unlock()
	}
	if err := r.applyFirewall(); err != nil {
		return ev.fail(err)
	}
	ev.done("Applied")
	return nil
}

// dockerAccept lets a bridge's frames past Docker's FORWARD policy.
func (r *upRun) dockerAccept(n *planner.Network) error {
	if err := r.j.Record(state.KindDockerAccept, n.Bridge); err != nil {
		return err
	}
	if err := r.host.DockerAccept(n.Bridge); err != nil {
		return r.prog.start("Network", n.DockerName).fail(fmt.Errorf("accepting bridge %s in DOCKER-USER: %w", n.Bridge, err))
	}
	return nil
}

// supervisor starts the project's supervisor, or has the one that runs
// read the plan again.
func (r *upRun) supervisor(ctx context.Context, action string) error {
	ev := r.prog.start("Supervisor", r.p.Name)
	c := supervisor.NewClient(r.d)
	if action == planner.ActionReload {
		if err := c.Reload(ctx); err == nil {
			ev.done("Reloaded")
			return nil
		} else if _, serr := c.Status(ctx); serr == nil {
			return ev.fail(err) // it answers, and refused the plan
		}
		// It was running when up planned, and is gone: started again.
	}
	if err := r.j.Record(state.KindSupervisor, r.p.Name); err != nil {
		return ev.fail(err)
	}
	if r.uo.InProcess {
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		ready := make(chan struct{})
		sup := &InProcess{stop: cancel, done: make(chan error, 1)}
		go func() {
			err := r.x.Supervise(sctx, r.p.Name, func() { close(ready) })
			sup.done <- err
			close(sup.done)
		}()
		select {
		case <-ready:
		case err := <-sup.done:
			return ev.fail(err)
		}
		r.sup = sup
		ev.done("Started")
		return nil
	}
	if err := spawnSupervisor(ctx, r.o, r.p.Name); err != nil {
		return ev.fail(err)
	}
	ev.done("Started")
	return nil
}

func (r *upRun) applyFirewall() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.host.FirewallApply(firewall.Config(r.p.Name, r.pl, r.ports))
}

// container brings one container to its step's action.
func (r *upRun) container(ctx context.Context, s *planner.Step, cs *containers.Spec) error {
	m := r.member(s.Name)
	ev := r.prog.start("Container", cs.Name)
	start := func() error {
		if r.uo.NoStart {
			ev.done("Created")
			return nil
		}
		ev.update("Starting")
		if err := r.dc.ContainerStart(ctx, cs.Name, container.StartOptions{}); err != nil {
			return ev.fail(err)
		}
		ev.done("Started")
		return r.registerPorts(ctx, m)
	}
	switch s.Action {
	case planner.ActionNone:
		ev.done("Running")
		return r.registerPorts(ctx, m)
	case planner.ActionStart:
		return start()
	case planner.ActionRecreate:
		ev.update("Recreating")
		var anon map[string]string
		var err error
		if r.uo.RenewAnonVolumes {
			anon, err = containers.AnonymousVolumes(ctx, r.dc, cs)
		} else {
			// As compose: the new container keeps the old one's
			// anonymous volumes, and so their data.
			cs, err = containers.KeepAnonymousVolumes(ctx, r.dc, cs)
		}
		if err != nil {
			return ev.fail(err)
		}
		if err := containers.Remove(ctx, r.dc, cs.Name, nil, r.uo.RenewAnonVolumes); err != nil {
			return ev.fail(err)
		}
		for _, v := range anon { // -V: the old ones go
			if err := r.dc.VolumeRemove(ctx, v, false); err != nil && !errdefs.IsNotFound(err) {
				return ev.fail(err)
			}
		}
	default:
		ev.update("Creating")
	}
	if err := r.writeFileObjects(m); err != nil {
		return ev.fail(err)
	}
	if err := r.j.Record(state.KindContainer, cs.Name); err != nil {
		return ev.fail(err)
	}
	if _, err := containers.Create(ctx, r.dc, cs); err != nil {
		return ev.fail(err)
	}
	return start()
}

// volume makes a named volume unless it exists.
func (r *upRun) volume(ctx context.Context, key string) error {
	name := planner.VolumeName(r.p, key)
	if err := r.j.Record(state.KindVolume, name); err != nil {
		return r.prog.start("Volume", name).fail(err)
	}
	_, created, err := containers.EnsureVolume(ctx, r.dc, r.p, key)
	if err != nil {
		return r.prog.start("Volume", name).fail(err)
	}
	if created {
		r.prog.event("Volume", name, "Created")
	}
	return nil
}

// wait waits until a member meets the condition another depends on it
// with: containers through the engine, VMs through qemu and the
// supervisor's health checks. A dependency that is not required and
// fails is reported and skipped.
func (r *upRun) wait(ctx context.Context, s *planner.Step) error {
	dm := r.member(s.Name)
	kind, name := "Container", dm.Container
	if dm.Kind == planner.VM {
		kind, name = "VM", dm.Name
	}
	ev := r.prog.start(kind, name)
	waits := s.Condition == "service_healthy" || s.Condition == "service_completed_successfully"
	if waits {
		ev.update("Waiting")
	}
	var err error
	if dm.Kind == planner.VM {
		err = vm.Wait(ctx, vm.For(r.d, dm.Name), dm.Name, s.Condition)
	} else {
		err = containers.WaitCondition(ctx, r.dc, name, s.Condition)
	}
	if err != nil {
		if !s.Required {
			ev.done("Skipped: " + err.Error())
			return nil
		}
		return ev.fail(fmt.Errorf("%s depends on it: %w", s.Member, err))
	}
	if waits {
		ev.done(conditionWord(s.Condition))
	}
	return nil
}

func conditionWord(cond string) string {
	switch cond {
	case "service_healthy":
		return "Healthy"
	case "service_completed_successfully":
		return "Exited"
	}
	return "Started"
}

func (r *upRun) member(name string) *planner.Member {
	for _, m := range r.pl.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// writeFileObjects writes the secrets and configs given by content: or
// environment: to files the container mounts.
func (r *upRun) writeFileObjects(m *planner.Member) error {
	svc := r.p.Compose.Services[m.Service]
	write := func(kind, name, file, content, env string) error {
		if file != "" {
			return nil
		}
		if env != "" {
			content = r.p.Compose.Environment[env]
		}
		dir := filepath.Join(r.d.State, kind+"s")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		return state.WriteFileAtomic(filepath.Join(dir, name), []byte(content))
	}
	for _, s := range svc.Secrets {
		o := r.p.Compose.Secrets[s.Source]
		if err := write("secret", s.Source, o.File, o.Content, o.Environment); err != nil {
			return err
		}
	}
	for _, c := range svc.Configs {
		o := r.p.Compose.Configs[c.Source]
		if err := write("config", c.Source, o.File, o.Content, o.Environment); err != nil {
			return err
		}
	}
	return nil
}

// registerPorts adds the container's veths to the firewall's member
// ports, so that it may send only as its own MAC and addresses.
func (r *upRun) registerPorts(ctx context.Context, m *planner.Member) error {
	ps, err := firewall.ContainerPorts(ctx, r.dc, r.host, r.pl, m, m.Container)
	if err != nil || len(ps) == 0 {
		return err
	}
	r.mu.Lock()
	for _, p := range ps {
		r.ports[p.Name] = p
	}
	r.mu.Unlock()
	return r.applyFirewall()
}

// ready waits, for up --wait, until a member runs, and is healthy if it
// has a health check.
func (r *upRun) ready(ctx context.Context, m *planner.Member) error {
	if r.uo.WaitTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.uo.WaitTimeout, fmt.Errorf("not ready within --wait-timeout %s", r.uo.WaitTimeout))
		defer cancel()
	}
	why := func(err error) error {
		if c := context.Cause(ctx); c != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return c
		}
		return err
	}
	if m.Kind == planner.VM {
		ev := r.prog.start("VM", m.Name)
		ev.update("Waiting")
		cond, word := "service_started", "Running"
		if hc := r.p.VMs[m.Service].HealthCheck; hc != nil && !hc.Disable {
			cond, word = "service_healthy", "Healthy"
		}
		if err := vm.Wait(ctx, vm.For(r.d, m.Name), m.Name, cond); err != nil {
			return ev.fail(why(err))
		}
		ev.done(word)
		return nil
	}
	ev := r.prog.start("Container", m.Container)
	ev.update("Waiting")
	word, err := waitReady(ctx, r.dc, m.Container)
	if err != nil {
		return ev.fail(why(err))
	}
	ev.done(word)
	return nil
}

// waitReady waits until a container runs, and is healthy if it has a
// health check (up --wait).
// It returns the word up reports: Healthy or Running.
func waitReady(ctx context.Context, dc containers.Engine, name string) (string, error) {
	c, err := dc.ContainerInspect(ctx, name)
	if err != nil {
		return "", err
	}
	if c.Config.Healthcheck != nil && len(c.Config.Healthcheck.Test) > 0 && c.Config.Healthcheck.Test[0] != "NONE" {
		return "Healthy", containers.WaitCondition(ctx, dc, name, "service_healthy")
	}
	if !c.State.Running {
		return "", errors.New("container " + name + " is not running")
	}
	return "Running", nil
}
