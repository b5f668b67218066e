//go:build linux

package executor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/foldup/foldup/containers"
	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/supervisor"
	"github.com/foldup/foldup/vm"
)

// MemberStatus is one line of ps.
type MemberStatus struct {
	Name      string   `json:"Name"` // the container's name
	Member    string   `json:"Member"`
	Service   string   `json:"Service"`
	Kind      string   `json:"Kind"`
	Image     string   `json:"Image"`
	State     string   `json:"State"`             // running, exited, created, restarting, ...
	Health    string   `json:"Health"`            // healthy, unhealthy, starting, or ""
	Status    string   `json:"Status"`            // Docker's words: "Up 3 seconds (healthy)"
	ExitCode  int      `json:"ExitCode"`          // when exited
	Addresses []string `json:"Addresses"`         // from the plan
	Ports     []string `json:"Ports"`             // host:port->port/proto
	ID        string   `json:"ID,omitempty"`      // Docker's container ID
	Command   string   `json:"Command,omitempty"` // as Docker shows it
	Accel     string   `json:"Accel,omitempty"`   // a running VM's accelerator: kvm or tcg (QMP query-kvm)
	Netem     string   `json:"Netem,omitempty"`   // its links' impairments: "lan: delay 50ms loss 1%"

	Project    string            `json:"Project"`
	Created    time.Time         `json:"Created"` // a container's creation; a VM's first start
	Labels     map[string]string `json:"Labels"`
	Networks   []string          `json:"Networks"` // Docker's names of the member's networks
	Publishers []Publisher       `json:"Publishers"`
}

// Publisher is a host port forwarded to a member, as compose's ps shows it.
type Publisher struct {
	URL           string
	TargetPort    int
	PublishedPort int
	Protocol      string
}

// Ps returns the project's members as they are: running ones, and with
// all the stopped ones too.
func (x *Executor) Ps(ctx context.Context, project string, all bool) ([]MemberStatus, error) {
	o := x.o
	d := o.dirs(project)
	plan, err := state.LoadPlan(d.PlanFile())
	if err != nil {
		return nil, err
	}
	ensureSupervisor(ctx, o, project, plan)
	dc, err := x.engine()
	if err != nil {
		return nil, err
	}
	list, err := dc.ContainerList(ctx, container.ListOptions{All: all, Filters: containers.ProjectFilter(project)})
	if err != nil {
		if plan == nil || !plan.HasContainers() {
			list = nil // no engine, and nothing of ours would be in one
		} else {
			return nil, err
		}
	}
	out := vmStatuses(d, plan, all)
	for _, c := range list {
		st := MemberStatus{
			Name:    strings.TrimPrefix(c.Names[0], "/"),
			Member:  c.Labels[containers.LabelMember],
			Service: c.Labels[containers.LabelService],
			Kind:    planner.Container,
			Image:   c.Image,
			State:   c.State,
			Status:  c.Status,
			ID:      c.ID,
			Command: c.Command,
			Project: project,
			Created: time.Unix(c.Created, 0),
			Labels:  c.Labels,
		}
		if c.NetworkSettings != nil {
			st.Networks = slices.Sorted(maps.Keys(c.NetworkSettings.Networks))
		}
		if c.State != "running" {
			if ci, err := dc.ContainerInspect(ctx, c.ID); err == nil {
				st.ExitCode = ci.State.ExitCode
			}
		}
		switch {
		case strings.Contains(c.Status, "(healthy)"):
			st.Health = "healthy"
		case strings.Contains(c.Status, "(unhealthy)"):
			st.Health = "unhealthy"
		case strings.Contains(c.Status, "(health: starting)"):
			st.Health = "starting"
		}
		if plan != nil {
			for _, m := range plan.Members {
				if m.Name != st.Member {
					continue
				}
				st.Addresses, st.Ports = planned(m)
			}
		}
		for _, p := range c.Ports {
			if p.PublicPort != 0 {
				st.Ports = append(st.Ports, fmt.Sprintf("%s:%d->%d/%s", p.IP, p.PublicPort, p.PrivatePort, p.Type))
			}
			st.Publishers = append(st.Publishers, Publisher{URL: p.IP, TargetPort: int(p.PrivatePort), PublishedPort: int(p.PublicPort), Protocol: p.Type})
		}
		if plan != nil {
			for _, m := range plan.Members {
				if m.Name == st.Member {
					st.Publishers = append(st.Publishers, publishers(m)...)
				}
			}
		}
		out = append(out, st)
	}
	if plan != nil {
		for i := range out {
			for _, m := range plan.Members {
				if m.Name == out[i].Member {
					out[i].Netem = NetemStatus(m)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// publishers are the host ports foldup forwards to a member.
func publishers(m *planner.Member) []Publisher {
	var out []Publisher
	for _, p := range m.Ports {
		out = append(out, Publisher{URL: cmp.Or(p.HostIP, "0.0.0.0"), TargetPort: int(p.Target), PublishedPort: int(p.HostPort), Protocol: p.Protocol})
	}
	return out
}

// planned is what ps shows of a member from the plan: its addresses and
// the host ports foldup forwards to it.
func planned(m *planner.Member) (addrs, ports []string) {
	for _, nic := range m.NICs {
		for _, a := range []string{addrString(nic.IPv4), addrString(nic.IPv6)} {
			if a != "" {
				addrs = append(addrs, a)
			}
		}
	}
	for _, p := range m.Ports {
		host := p.HostIP
		if host == "" {
			host = "0.0.0.0"
		}
		ports = append(ports, fmt.Sprintf("%s:%d->%d/%s", host, p.HostPort, p.Target, p.Protocol))
	}
	return addrs, ports
}

func addrString[T interface {
	IsValid() bool
	String() string
}](a T) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// ensureSupervisor starts the project's supervisor again when the project
// is up (it has a plan, and was not stopped on purpose) and none answers:
// a crashed supervisor comes back with the next foldup command.
func ensureSupervisor(ctx context.Context, o Options, project string, plan *planner.Plan) {
	d := o.dirs(project)
	if plan == nil || len(plan.Networks) == 0 {
		return
	}
	if _, err := os.Stat(d.StoppedFile()); err == nil {
		return
	}
	c := supervisor.NewClient(d)
	if _, err := c.Status(ctx); err == nil {
		return
	}
	unlock, err := d.Lock(nil)
	if err != nil {
		return
	}
	defer unlock()
	if _, err := c.Status(ctx); err == nil {
		return // another command restarted it while we waited
	}
	if err := spawnSupervisor(ctx, o, project); err != nil {
		o.Logger.Warn("restarting the supervisor", "project", project, "err", err)
	}
}

// LogOptions are logs' flags.
type LogOptions struct {
	Follow     bool
	Tail       string // "all" or a number of lines
	Timestamps bool
	NoColor    bool
	NoPrefix   bool
	Members    []string // services or members; default all
	// Since and Until bound the lines shown by when they were written
	// (ParseLogTime); zero: unbounded. Index picks one replica of a
	// service (0: all).
	Since, Until time.Time
	Index        int
}

// ParseLogTime reads logs' --since and --until as docker does: a
// duration before now (10m, 1h30m), an RFC 3339 time (with or without
// nanoseconds, or a date alone), or Unix seconds.
func ParseLogTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("invalid time %q: a duration (10m), an RFC 3339 time or Unix seconds", s)
}

// Logs writes the output of the project's containers to w, each line
// prefixed by its member's name (coloured, as docker compose does). With
// Follow it returns when ctx ends.
func (x *Executor) Logs(ctx context.Context, project string, lo LogOptions, w io.Writer) error {
	o := x.o
	plan, _ := state.LoadPlan(o.dirs(project).PlanFile())
	ensureSupervisor(ctx, o, project, plan)
	type source struct {
		member string
		run    func(w *linePrefixer) error
	}
	var chosen []source
	wants := func(service, member string) bool {
		return len(lo.Members) == 0 || slices.Contains(lo.Members, service) || slices.Contains(lo.Members, member)
	}
	if plan != nil {
		d := o.dirs(project)
		for _, m := range plan.Members {
			if m.Kind != planner.VM || !wants(m.Service, m.Name) {
				continue
			}
			f := vm.For(d, m.Name)
			if _, err := os.Stat(f.ConsoleLog()); err != nil {
				continue // never started
			}
			chosen = append(chosen, source{m.Name, func(w *linePrefixer) error { return vmLogs(ctx, f, lo, w) }})
		}
	}
	if plan == nil || plan.HasContainers() {
		dc, err := x.engine()
		if err != nil {
			return err
		}
		list, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: containers.ProjectFilter(project)})
		if err != nil {
			return err
		}
		for _, c := range list {
			if lo.Index > 0 && c.Labels[containers.LabelReplica] != strconv.Itoa(lo.Index) {
				continue
			}
			if wants(c.Labels[containers.LabelService], c.Labels[containers.LabelMember]) {
				// compose's prefix: the container's name without the project's
				name := strings.TrimPrefix(strings.TrimPrefix(c.Names[0], "/"), project+"-")
				chosen = append(chosen, source{name, func(w *linePrefixer) error { return containerLogs(ctx, dc, c.ID, lo, w) }})
			}
		}
	}
	if len(chosen) == 0 && len(lo.Members) > 0 {
		return fmt.Errorf("no such service, VM or member: %s", strings.Join(lo.Members, ", "))
	}
	sort.Slice(chosen, func(i, j int) bool { return chosen[i].member < chosen[j].member })
	width := 0
	for _, c := range chosen {
		width = max(width, len(c.member))
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(chosen))
	for i, c := range chosen {
		prefix := ""
		if !lo.NoPrefix {
			prefix = fmt.Sprintf("%-*s | ", width+1, c.member) // as compose: "web-1  | "
			if !lo.NoColor {
				prefix = colors[i%len(colors)] + prefix + "\x1b[0m"
			}
		}
		wg.Go(func() {
			errs[i] = c.run(&linePrefixer{w: w, mu: &mu, prefix: prefix})
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(errs...)
}

var colors = []string{"\x1b[36m", "\x1b[33m", "\x1b[32m", "\x1b[35m", "\x1b[34m", "\x1b[96m", "\x1b[93m", "\x1b[92m", "\x1b[95m", "\x1b[94m"}

func containerLogs(ctx context.Context, dc containers.Engine, id string, lo LogOptions, w *linePrefixer) error {
	ci, err := dc.ContainerInspect(ctx, id)
	if err != nil {
		return err
	}
	opts := container.LogsOptions{
		ShowStdout: true, ShowStderr: true, Follow: lo.Follow, Tail: lo.Tail, Timestamps: lo.Timestamps,
	}
	if !lo.Since.IsZero() {
		opts.Since = strconv.FormatInt(lo.Since.Unix(), 10)
	}
	if !lo.Until.IsZero() {
		opts.Until = strconv.FormatInt(lo.Until.Unix(), 10)
	}
	rc, err := dc.ContainerLogs(ctx, id, opts)
	if err != nil {
		return err
	}
	defer rc.Close()
	if ci.Config.Tty {
		_, err = io.Copy(w, rc)
	} else {
		_, err = stdcopy.StdCopy(w, w, rc)
	}
	w.flush()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// linePrefixer writes whole lines, each with a prefix, under a lock shared
// by every container's stream.
type linePrefixer struct {
	w      io.Writer
	mu     *sync.Mutex
	prefix string
	buf    []byte
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := slices.Index(l.buf, '\n')
		if i < 0 {
			break
		}
		l.mu.Lock()
		_, err := fmt.Fprintf(l.w, "%s%s\n", l.prefix, l.buf[:i])
		l.mu.Unlock()
		l.buf = l.buf[i+1:]
		if err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

func (l *linePrefixer) flush() {
	if len(l.buf) > 0 {
		l.Write([]byte("\n"))
	}
}

// Stop stops the project's containers and VMs (the named ones, or all; in
// reverse dependency order), leaving them in place for start. Stopping all marks
// the project stopped and stops its supervisor.
func (x *Executor) Stop(ctx context.Context, project string, members []string, timeout *int) error {
	return x.lifecycle(ctx, project, members, action{
		doing: "Stopping", did: "Stopped", idle: "Stopped", stops: true,
		container: func(dc containers.Engine, id string) error {
			return dc.ContainerStop(ctx, id, container.StopOptions{Timeout: timeout})
		},
		vm: func(_ *network.Host, d state.Dirs, name string) (bool, error) {
			return vm.Stop(ctx, d, name, timeoutDuration(timeout))
		},
	})
}

// Start starts the project's stopped containers and VMs, in dependency
// order (and its supervisor).
func (x *Executor) Start(ctx context.Context, project string, members []string) error {
	return x.lifecycle(ctx, project, members, action{
		doing: "Starting", did: "Started", idle: "Running", starts: true,
		container: func(dc containers.Engine, id string) error {
			return dc.ContainerStart(ctx, id, container.StartOptions{})
		},
		vm: func(host *network.Host, d state.Dirs, name string) (bool, error) {
			return vm.StartStopped(ctx, host, d, name)
		},
	})
}

// Restart restarts the project's containers and VMs.
func (x *Executor) Restart(ctx context.Context, project string, members []string, timeout *int) error {
	return x.lifecycle(ctx, project, members, action{
		doing: "Restarting", did: "Started", idle: "Running", starts: true,
		container: func(dc containers.Engine, id string) error {
			return dc.ContainerRestart(ctx, id, container.StopOptions{Timeout: timeout})
		},
		vm: func(host *network.Host, d state.Dirs, name string) (bool, error) {
			stopped, err := vm.Stop(ctx, d, name, timeoutDuration(timeout))
			if err != nil {
				return stopped, err
			}
			started, err := vm.StartStopped(ctx, host, d, name)
			return stopped || started, err
		},
	})
}

// errIdle, from an action's container function: it left the container as
// it was (a running one rm does not remove), which reports action.idle.
var errIdle = errors.New("nothing to do")

// action is what a lifecycle verb does to each member.
type action struct {
	doing, did string
	idle       string // what a member reports that needed nothing
	// stops: the members go down, in reverse dependency order, and with
	// none named the project is stopped (and its supervisor). starts: they
	// come up, the supervisor first, with a host for the VMs' taps.
	stops, starts bool
	container     func(dc containers.Engine, id string) error
	vm            func(host *network.Host, d state.Dirs, name string) (acted bool, err error)
}

func (x *Executor) lifecycle(ctx context.Context, project string, members []string, a action) error {
	o := x.o
	d := o.dirs(project)
	prog := newProgress(o.Events)
	unlock, err := d.Lock(func() { prog.note("Waiting for another foldup to finish with project " + project) })
	if err != nil {
		return err
	}
	plan, err := state.LoadPlan(d.PlanFile())
	if err != nil {
		unlock()
		return err
	}
	if plan == nil {
		unlock()
		return fmt.Errorf("project %s is not up here (no plan in %s)", project, d.State)
	}
	if err := checkMembers(plan, members); err != nil {
		unlock()
		return err
	}
	switch {
	case o.DryRun:
	case a.stops && len(members) == 0:
		state.WriteFileAtomic(d.StoppedFile(), nil)
	case a.starts:
		os.Remove(d.StoppedFile())
	}
	unlock()
	if a.starts && !o.DryRun {
		ensureSupervisor(ctx, o, project, plan)
	}
	var dc containers.Engine
	cs := map[string]container.Summary{}
	if plan.HasContainers() {
		if dc, err = x.engine(); err != nil {
			return err
		}
		if cs, err = containers.List(ctx, dc, project, true); err != nil {
			return err
		}
	}
	// In dependency order: containers and VMs alike.
	type target struct{ kind, name string }
	var order []target
	for _, m := range plan.Ordered() {
		if len(members) == 0 || slices.Contains(members, m.Service) || slices.Contains(members, m.Name) {
			order = append(order, target{m.Kind, m.Name})
		}
	}
	if a.stops {
		slices.Reverse(order)
	}
	var host *network.Host
	if a.starts && o.Host != nil {
		host = o.Host
	} else if a.starts && !o.DryRun {
		if host, err = network.OpenCurrent(); err != nil {
			return err
		}
		defer host.Close()
	}
	var errs []error
	if o.DryRun {
		prog.note("DRY-RUN MODE: nothing is changed")
	}
	for _, t := range order {
		if o.DryRun {
			if t.kind == planner.VM {
				prog.event("VM", t.name, "Would be "+strings.ToLower(a.did))
			} else if c, ok := cs[t.name]; ok {
				prog.event("Container", strings.TrimPrefix(c.Names[0], "/"), "Would be "+strings.ToLower(a.did))
			}
			continue
		}
		if t.kind == planner.VM {
			ev := prog.start("VM", t.name)
			ev.update(a.doing)
			acted, err := a.vm(host, d, t.name)
			switch {
			case err != nil:
				errs = append(errs, ev.fail(err))
			case acted:
				ev.done(a.did)
			default:
				ev.done(a.idle)
			}
			continue
		}
		c, ok := cs[t.name]
		if !ok {
			continue
		}
		cname := strings.TrimPrefix(c.Names[0], "/")
		ev := prog.start("Container", cname)
		ev.update(a.doing)
		switch err := a.container(dc, c.ID); {
		case errors.Is(err, errIdle):
			ev.done(a.idle)
		case err != nil:
			errs = append(errs, ev.fail(err))
		default:
			ev.done(a.did)
		}
	}
	if a.stops && len(members) == 0 && !o.DryRun {
		errs = append(errs, supervisor.NewClient(d).Stop(ctx))
	}
	return errors.Join(errs...)
}

// checkMembers refuses a name that is no service, VM or member of the
// plan, as compose refuses a service it does not know.
func checkMembers(plan *planner.Plan, names []string) error {
	for _, n := range names {
		if !slices.ContainsFunc(plan.Members, func(m *planner.Member) bool { return m.Service == n || m.Name == n }) {
			return fmt.Errorf("no such service, VM or member: %s", n)
		}
	}
	return nil
}

// Exec runs a command in a member's running container, attached to the
// given streams, and returns its exit code.
func (x *Executor) Exec(ctx context.Context, project, member string, cmd []string, opts ExecOptions) (int, error) {
	if plan, _ := state.LoadPlan(x.o.dirs(project).PlanFile()); plan != nil {
		for _, m := range plan.Members {
			if m.Kind == planner.VM && (m.Name == member || m.Service == member) {
				return x.execVM(ctx, project, plan, m, cmd, opts)
			}
		}
	}
	dc, err := x.engine()
	if err != nil {
		return -1, err
	}
	cs, err := containers.List(ctx, dc, project, false)
	if err != nil {
		return -1, err
	}
	c, ok := cs[member]
	if !ok {
		for _, cc := range cs {
			if cc.Labels[containers.LabelService] == member && cc.Labels[containers.LabelReplica] == fmt.Sprint(max(opts.Index, 1)) {
				c, ok = cc, true
			}
		}
	}
	if !ok {
		return -1, fmt.Errorf("service %q is not running", member)
	}
	if opts.Detach {
		ex, err := dc.ContainerExecCreate(ctx, c.ID, container.ExecOptions{Cmd: cmd, Detach: true,
			Env: opts.Env, User: opts.User, WorkingDir: opts.Workdir, Privileged: opts.Privileged})
		if err != nil {
			return -1, err
		}
		return 0, dc.ContainerExecStart(ctx, ex.ID, container.ExecStartOptions{Detach: true})
	}
	ex, err := dc.ContainerExecCreate(ctx, c.ID, container.ExecOptions{
		Cmd: cmd, Tty: opts.Tty, AttachStdin: opts.Stdin != nil, AttachStdout: true, AttachStderr: true,
		Env: opts.Env, User: opts.User, WorkingDir: opts.Workdir, Privileged: opts.Privileged,
	})
	if err != nil {
		return -1, err
	}
	hj, err := dc.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{Tty: opts.Tty})
	if err != nil {
		return -1, err
	}
	defer hj.Close()
	if opts.Stdin != nil {
		go func() {
			io.Copy(hj.Conn, opts.Stdin)
			hj.CloseWrite()
		}()
	}
	if opts.Tty {
		_, err = io.Copy(opts.Stdout, hj.Reader)
	} else {
		_, err = stdcopy.StdCopy(opts.Stdout, opts.Stderr, hj.Reader)
	}
	if err != nil {
		return -1, err
	}
	insp, err := dc.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		return -1, err
	}
	return insp.ExitCode, nil
}

// ExecOptions are exec's flags and streams.
type ExecOptions struct {
	Tty        bool
	Index      int
	Env        []string
	User       string
	Workdir    string
	Privileged bool
	Detach     bool      // start it and return (exec -d)
	Stdin      io.Reader // nil: not attached
	Stdout     io.Writer
	Stderr     io.Writer
}

// timeoutDuration is -t N as a stop grace; -1 s (the member's own) when
// not given.
func timeoutDuration(t *int) time.Duration {
	if t == nil {
		return -time.Second
	}
	return time.Duration(*t) * time.Second
}
