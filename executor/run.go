//go:build linux

package executor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/foldup/foldup/containers"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/vm"
)

// RunOptions are foldup run's.
type RunOptions struct {
	Command    []string // replaces the service's command when given
	Entrypoint []string // replaces the service's entrypoint when given
	Env        []string
	User       string
	Workdir    string
	Name       string // default PROJECT-SERVICE-run-RANDOM
	Rm         bool   // remove the container when it ends
	Detach     bool   // start it and return its name (on Stdout)
	NoDeps     bool   // start nothing it depends on
	// ServicePorts publishes the service's ports, as up would.
	ServicePorts bool
	Tty          bool
	Stdin        io.Reader // nil: none
	Stdout       io.Writer
	Stderr       io.Writer
}

// Run runs a one-off container of a service on the project's networks,
// as docker compose run does: what the service depends on is brought up
// first (unless NoDeps; the networks, firewall and DNS server always), the
// service's own container is not. The container has the service's
// configuration with the command given, Docker's addresses rather than
// the plan's, none of its published ports, and the service's name as no
// alias; foldup's firewall holds it, as a container joined by hand, to the
// MAC and address Docker gave it. It returns the container's exit code.
func (x *Executor) Run(ctx context.Context, p *spec.Project, service string, ro RunOptions) (int, error) {
	if _, ok := p.Compose.Services[service]; !ok {
		if p.VMs[service] != nil {
			return -1, fmt.Errorf("%s is a VM: run starts a one-off container of a service (exec and ssh reach a VM)", service)
		}
		return -1, fmt.Errorf("no such service: %s", service)
	}
	uo := UpOptions{SegmentOnly: true}
	if !ro.NoDeps {
		pl, err := planner.Compute(p, planner.Observed{}, planner.Intent{})
		if err != nil {
			return -1, err
		}
		for _, m := range pl.Members {
			if m.Service == service {
				for _, d := range m.DependsOn {
					uo.Services = append(uo.Services, d.Member)
				}
			}
		}
	}
	res, err := x.Up(ctx, p, uo)
	if err != nil {
		return -1, err
	}
	var m *planner.Member
	for _, pm := range res.Plan.Members {
		if pm.Service == service && (m == nil || pm.Replica < m.Replica) {
			m = pm
		}
	}
	if m == nil {
		return -1, fmt.Errorf("service %s has no member to run (scale 0?)", service)
	}
	d := x.o.dirs(p.Name)
	dc, err := x.engine()
	if err != nil {
		return -1, err
	}
	if !ro.NoDeps {
		// What it depends on, as its depends_on says: started, healthy
		// or completed, as up waits before it starts the service's own.
		if err := x.waitDeps(ctx, d, res.Plan, m, dc); err != nil {
			return -1, err
		}
	}
	cs, err := containers.SpecFor(p, res.Plan, m, d.State)
	if err != nil {
		return -1, err
	}
	oneOff(cs, p, service, ro)
	if err := recordContainer(d, cs.Name); err != nil {
		return -1, err
	}
	id, err := containers.Create(ctx, dc, cs)
	if err != nil {
		return -1, err
	}
	remove := func() {
		if ro.Rm {
			dc.ContainerRemove(context.WithoutCancel(ctx), id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		}
	}
	if ro.Detach {
		if err := dc.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
			remove()
			return -1, err
		}
		fmt.Fprintln(ro.Stdout, cs.Name)
		return 0, nil
	}
	hj, err := dc.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdin: ro.Stdin != nil, Stdout: true, Stderr: true})
	if err != nil {
		remove()
		return -1, err
	}
	defer hj.Close()
	waitC, waitErr := dc.ContainerWait(ctx, id, container.WaitConditionNextExit)
	if err := dc.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		remove()
		return -1, err
	}
	if ro.Stdin != nil {
		go func() {
			io.Copy(hj.Conn, ro.Stdin)
			hj.CloseWrite()
		}()
	}
	copied := make(chan error, 1)
	go func() {
		var err error
		if ro.Tty {
			_, err = io.Copy(ro.Stdout, hj.Reader)
		} else {
			_, err = stdcopy.StdCopy(ro.Stdout, ro.Stderr, hj.Reader)
		}
		copied <- err
	}()
	var code int
	select {
	case w := <-waitC:
		code = int(w.StatusCode)
		if w.Error != nil {
			err = fmt.Errorf("%s", w.Error.Message)
		}
	case err = <-waitErr:
	case <-ctx.Done():
		err = ctx.Err()
	}
	<-copied // the output, to its end
	remove()
	return code, err
}

// waitDeps waits until each member m depends on meets its condition.
func (x *Executor) waitDeps(ctx context.Context, d state.Dirs, pl *planner.Plan, m *planner.Member, dc containers.Engine) error {
	for _, dep := range m.DependsOn {
		var dm *planner.Member
		for _, o := range pl.Members {
			if o.Name == dep.Member {
				dm = o
			}
		}
		if dm == nil {
			continue
		}
		var err error
		if dm.Kind == planner.VM {
			err = vm.Wait(ctx, vm.For(d, dm.Name), dm.Name, dep.Condition)
		} else {
			err = containers.WaitCondition(ctx, dc, dm.Container, dep.Condition)
		}
		if err != nil && dep.Required {
			return fmt.Errorf("%s depends on %s: %w", m.Service, dm.Name, err)
		}
	}
	return nil
}

// oneOff turns a service member's container spec into a one-off's:
// named for the run, labelled one-off, on Docker's addresses and MACs,
// with no alias and no published port, the command and options given.
func oneOff(cs *containers.Spec, p *spec.Project, service string, ro RunOptions) {
	if ro.Name != "" {
		cs.Name = ro.Name
	} else {
		b := make([]byte, 6)
		rand.Read(b)
		cs.Name = p.Name + "-" + service + "-run-" + hex.EncodeToString(b)
	}
	cfg := *cs.Config
	cfg.Labels = maps.Clone(cfg.Labels)
	cfg.Labels[containers.LabelOneOff] = "True"
	cfg.Labels[containers.LabelMember] = cs.Name
	delete(cfg.Labels, containers.LabelConfigHash)
	if ro.Command != nil {
		cfg.Cmd = ro.Command
	}
	if ro.Entrypoint != nil {
		cfg.Entrypoint = ro.Entrypoint
	}
	cfg.Env = append(slices.Clone(cfg.Env), ro.Env...)
	if ro.User != "" {
		cfg.User = ro.User
	}
	if ro.Workdir != "" {
		cfg.WorkingDir = ro.Workdir
	}
	cfg.Hostname = ""
	cfg.Tty = ro.Tty
	cfg.OpenStdin, cfg.AttachStdin, cfg.StdinOnce = ro.Stdin != nil, ro.Stdin != nil, ro.Stdin != nil
	cfg.AttachStdout, cfg.AttachStderr = true, true
	if !ro.ServicePorts {
		cfg.ExposedPorts = nil
	}
	cfg.MacAddress = "" //nolint:staticcheck // cleared, as the endpoints' are
	cs.Config = &cfg
	host := *cs.Host
	if !ro.ServicePorts {
		host.PortBindings = nil
	}
	host.RestartPolicy = container.RestartPolicy{}
	host.AutoRemove = false
	cs.Host = &host
	for name, ep := range cs.Network {
		e := *ep
		e.IPAMConfig, e.MacAddress, e.Aliases, e.DNSNames = nil, "", nil, nil
		cs.Network[name] = &e
	}
}

// recordContainer notes a container in the project's journal, under its
// lock, so that down removes it whatever happens to the run.
func recordContainer(d state.Dirs, name string) error {
	unlock, err := d.Lock(func() {})
	if err != nil {
		return err
	}
	defer unlock()
	j, err := state.OpenJournal(d.JournalFile())
	if err != nil {
		return err
	}
	defer j.Close()
	return j.Record(state.KindContainer, name)
}
