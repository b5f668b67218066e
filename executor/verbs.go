//go:build linux

package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/foldup/foldup/containers"
	"github.com/foldup/foldup/internal/term"
	"github.com/foldup/foldup/kube"
	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/qemu"
	"github.com/foldup/foldup/spec"
	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/vm"
	"golang.org/x/sys/unix"
)

// Kill sends signal (a name, SIGKILL or KILL, or a number; default
// SIGKILL) to the project's running containers and VMs, as docker compose
// kill does; to a VM, see vm.Kill.
func (x *Executor) Kill(ctx context.Context, project string, members []string, signal string) error {
	sig, err := ParseSignal(signal)
	if err != nil {
		return err
	}
	return x.lifecycle(ctx, project, members, action{
		doing: "Killing", did: "Killed", idle: "Stopped", stops: sig == syscall.SIGKILL,
		container: func(dc containers.Engine, id string) error {
			c, err := dc.ContainerInspect(ctx, id)
			if err != nil {
				return err
			}
			if c.State == nil || !c.State.Running {
				return errIdle // compose kills only running containers
			}
			return dc.ContainerKill(ctx, id, unix.SignalName(sig))
		},
		vm: func(_ *network.Host, d state.Dirs, name string) (bool, error) {
			return vm.Kill(ctx, d, name, sig)
		},
	})
}

// ParseSignal reads a signal as docker kill takes one: SIGKILL, KILL or
// 9; "" is SIGKILL.
func ParseSignal(s string) (syscall.Signal, error) {
	if s == "" {
		return syscall.SIGKILL, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("invalid signal %q", s)
}

// Pause freezes the project's running containers (docker pause) and VMs
// (QMP stop); Unpause lets them go on.
func (x *Executor) Pause(ctx context.Context, project string, members []string) error {
	return x.lifecycle(ctx, project, members, action{
		doing: "Pausing", did: "Paused", idle: "Paused",
		container: func(dc containers.Engine, id string) error { return dc.ContainerPause(ctx, id) },
		vm: func(_ *network.Host, d state.Dirs, name string) (bool, error) {
			return vm.Pause(ctx, d, name)
		},
	})
}

func (x *Executor) Unpause(ctx context.Context, project string, members []string) error {
	return x.lifecycle(ctx, project, members, action{
		doing: "Unpausing", did: "Unpaused", idle: "Running",
		container: func(dc containers.Engine, id string) error { return dc.ContainerUnpause(ctx, id) },
		vm: func(_ *network.Host, d state.Dirs, name string) (bool, error) {
			return vm.Resume(ctx, d, name)
		},
	})
}

// RmOptions are rm's flags.
type RmOptions struct {
	Stop    bool // stop running members first (-s)
	Volumes bool // a container's anonymous volumes; a VM's disk (-v)
}

// Rm removes the project's stopped containers and VMs (docker compose
// rm); running ones are stopped first with Stop, else left alone.
func (x *Executor) Rm(ctx context.Context, project string, members []string, ro RmOptions) error {
	if ro.Stop {
		if err := x.Stop(ctx, project, members, nil); err != nil {
			return err
		}
	}
	return x.lifecycle(ctx, project, members, action{
		doing: "Removing", did: "Removed", idle: "Running",
		container: func(dc containers.Engine, id string) error {
			c, err := dc.ContainerInspect(ctx, id)
			if err != nil {
				return err
			}
			if c.State != nil && c.State.Running {
				return errIdle
			}
			return dc.ContainerRemove(ctx, id, container.RemoveOptions{RemoveVolumes: ro.Volumes})
		},
		vm: func(_ *network.Host, d state.Dirs, name string) (bool, error) {
			if vm.Running(vm.For(d, name)) != 0 {
				return false, nil
			}
			return vm.Remove(d, name, ro.Volumes)
		},
	})
}

// Wait blocks until the first of the named members (or of all) has
// stopped and returns its exit code, as docker compose wait.
func (x *Executor) Wait(ctx context.Context, project string, members []string) (int, error) {
	d := x.o.dirs(project)
	plan, err := state.LoadPlan(d.PlanFile())
	if err != nil {
		return 0, err
	}
	if plan == nil {
		return 0, fmt.Errorf("project %s is not up here (no plan in %s)", project, d.State)
	}
	if err := checkMembers(plan, members); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		code int
		err  error
	}
	done := make(chan result, len(plan.Members))
	n := 0
	var cs map[string]container.Summary
	var dc containers.Engine
	if plan.HasContainers() {
		if dc, err = x.engine(); err != nil {
			return 0, err
		}
		if cs, err = containers.List(ctx, dc, project, true); err != nil {
			return 0, err
		}
	}
	for _, m := range plan.Members {
		if len(members) > 0 && !containsName(members, m) {
			continue
		}
		if m.Kind == planner.VM {
			n++
			go func() {
				f := vm.For(d, m.Name)
				for vm.Running(f) != 0 {
					if err := sleepCtx(ctx); err != nil {
						done <- result{0, err}
						return
					}
				}
				rec, err := vm.ReadRecord(f)
				if err != nil {
					done <- result{0, fmt.Errorf("vm %s: %w", m.Name, err)}
					return
				}
				done <- result{rec.ExitCode, nil}
			}()
			continue
		}
		c, ok := cs[m.Name]
		if !ok {
			continue
		}
		n++
		go func() {
			ch, errc := dc.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
			select {
			case r := <-ch:
				done <- result{int(r.StatusCode), nil}
			case err := <-errc:
				done <- result{0, err}
			}
		}()
	}
	if n == 0 {
		return 0, fmt.Errorf("no container or VM of project %s to wait for", project)
	}
	r := <-done
	return r.code, r.err
}

func containsName(names []string, m *planner.Member) bool {
	for _, n := range names {
		if n == m.Service || n == m.Name {
			return true
		}
	}
	return false
}

func sleepCtx(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(100 * time.Millisecond):
		return nil
	}
}

// Top writes the processes of the project's running containers (docker
// top) and VMs (each one's qemu), each under its name, as docker compose
// top does.
func (x *Executor) Top(ctx context.Context, project string, members []string, w io.Writer) error {
	list, err := x.Ps(ctx, project, false)
	if err != nil {
		return err
	}
	var dc containers.Engine
	for _, m := range list {
		if len(members) > 0 && !containsStatus(members, m) {
			continue
		}
		fmt.Fprintln(w, m.Name)
		tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		if m.Kind == planner.VM {
			pid, _ := strconv.Atoi(strings.TrimPrefix(m.ID, "qemu:"))
			fmt.Fprintln(tw, "UID\tPID\tPPID\tCMD")
			uid, ppid := procStatus(pid)
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", uid, pid, ppid, strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " ")))
		} else {
			if dc == nil {
				if dc, err = x.engine(); err != nil {
					return err
				}
			}
			top, err := dc.ContainerTop(ctx, m.ID, nil)
			if err != nil {
				return err
			}
			fmt.Fprintln(tw, strings.Join(top.Titles, "\t"))
			for _, p := range top.Processes {
				fmt.Fprintln(tw, strings.Join(p, "\t"))
			}
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	return nil
}

func containsStatus(names []string, m MemberStatus) bool {
	for _, n := range names {
		if n == m.Service || n == m.Member {
			return true
		}
	}
	return false
}

// procStatus is a process's real UID and parent, from /proc.
func procStatus(pid int) (uid, ppid string) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		fields := strings.Fields(v)
		switch {
		case k == "Uid" && len(fields) > 0:
			uid = fields[0]
		case k == "PPid" && len(fields) > 0:
			ppid = fields[0]
		}
	}
	return uid, ppid
}

// ProjectStatus is one line of ls.
type ProjectStatus struct {
	Name        string
	Status      string // compose's: running(2), exited(1), ...
	ConfigFiles string // comma-separated, as compose's ls
}

// Projects lists the projects up on this host (with all, those whose
// members all stopped too), as docker compose ls does.
func (x *Executor) Projects(ctx context.Context, all bool) ([]ProjectStatus, error) {
	var out []ProjectStatus
	for _, name := range state.Projects(x.o.StateRoot) {
		list, err := x.Ps(ctx, name, true)
		if err != nil {
			return nil, fmt.Errorf("project %s: %w", name, err)
		}
		counts := map[string]int{}
		var states []string
		for _, m := range list {
			if counts[m.State] == 0 {
				states = append(states, m.State)
			}
			counts[m.State]++
		}
		if !all && counts["running"] == 0 {
			continue
		}
		slices.Sort(states)
		var parts []string
		for _, s := range states {
			parts = append(parts, fmt.Sprintf("%s(%d)", s, counts[s]))
		}
		files, _ := os.ReadFile(x.o.dirs(name).FilesFile())
		out = append(out, ProjectStatus{Name: name, Status: strings.Join(parts, ", "),
			ConfigFiles: strings.Join(slices.DeleteFunc(strings.Split(string(files), "\n"), func(s string) bool { return s == "" }), ",")})
	}
	return out, nil
}

// execVM runs a command in a VM over SSH, as the user foldup's seed made
// (vm.Exec), with exec's options turned into the shell's: env for -e, cd
// for -w, sudo for -u and --privileged.
func (x *Executor) execVM(ctx context.Context, project string, plan *planner.Plan, m *planner.Member, cmd []string, opts ExecOptions) (int, error) {
	d := x.o.dirs(project)
	addr, err := x.wayIn(d, m)
	if errors.Is(err, errNoWayIn) {
		if code, err := x.execAgent(ctx, d, m, cmd, opts); !errors.Is(err, errNoAgent) {
			return code, err
		}
		if opts.User == "" && !opts.Privileged {
			return x.execConsole(ctx, d, m, cmd, opts)
		}
	}
	if err != nil {
		return -1, err
	}
	line := shellLine(cmd, opts)
	if opts.Detach {
		line = "nohup sh -c " + vm.ShellQuote([]string{line}) + " >/dev/null 2>&1 </dev/null &"
	}
	switch {
	case opts.User != "":
		line = "sudo -u " + vm.ShellQuote([]string{opts.User}) + " -- sh -c " + vm.ShellQuote([]string{line})
	case opts.Privileged:
		line = "sudo -- sh -c " + vm.ShellQuote([]string{line})
	}
	eo := vm.ExecOptions{Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr, Tty: opts.Tty}
	if h := x.o.Host; h != nil {
		// The segment is in Host's namespace: the connection is made there.
		eo.Dial = func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
			h.Do(func() error {
				conn, err = (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
				return nil
			})
			return conn, err
		}
	}
	return vm.Exec(ctx, d, addr, line, eo)
}

// errNoAgent: the VM has no guest agent listening on its channel.
var errNoAgent = errors.New("no guest agent")

// execAgent runs a command in a VM through qemu-guest-agent, for a guest
// that runs it on foldup's channel and has no seed of foldup's: as root
// (the agent's user), as sh -c, -u through su. The agent has no terminal
// and no streams: input is read whole before the command starts (unless
// it is a terminal, which is not read), and the output comes when the
// command ends. errNoAgent when the guest holds the channel closed.
func (x *Executor) execAgent(ctx context.Context, d state.Dirs, m *planner.Member, cmd []string, opts ExecOptions) (int, error) {
	f := vm.For(d, m.Name)
	if !vm.AgentOpen(ctx, f) {
		return -1, errNoAgent
	}
	line := shellLine(cmd, opts)
	if opts.User != "" {
		line = "exec su -s /bin/sh " + vm.ShellQuote([]string{opts.User}) + " -c " + vm.ShellQuote([]string{line})
	}
	c := qemu.AgentCommand{Path: "/bin/sh", Args: []string{"-c", line}, Detach: opts.Detach}
	if in := opts.Stdin; in != nil && !opts.Detach && !term.Is(in) {
		b, err := readInput(ctx, in, maxAgentInput)
		if err != nil {
			return -1, fmt.Errorf("vm %s: reading the input: %w", m.Name, err)
		}
		c.Input = b
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	a, err := qemu.DialAgent(dctx, f.Agent())
	cancel()
	if err != nil {
		return -1, fmt.Errorf("vm %s: %w", m.Name, err)
	}
	defer a.Close()
	res, err := a.Exec(ctx, c)
	if opts.Stdout != nil {
		opts.Stdout.Write(res.Stdout)
	}
	if opts.Stderr != nil {
		opts.Stderr.Write(res.Stderr)
	}
	if err != nil {
		return -1, fmt.Errorf("vm %s: %w", m.Name, err)
	}
	return res.ExitCode, nil
}

// maxAgentInput is the most input the agent takes in one guest-exec
// (its JSON parser's 64 MiB token limit, less base64's third).
const maxAgentInput = 48 << 20

// readInput reads in whole, up to max bytes, until ctx ends: an input
// that never closes (a pipe a parent holds open) waits for an interrupt,
// not forever.
func readInput(ctx context.Context, in io.Reader, max int64) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(in, max+1))
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		if r.err == nil && int64(len(r.b)) > max {
			r.err = fmt.Errorf("over the %d MiB the guest agent takes", max>>20)
		}
		return r.b, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// shellLine is cmd as a shell command line, with exec's -e as env and -w
// as a cd.
func shellLine(cmd []string, opts ExecOptions) string {
	line := vm.ShellQuote(cmd)
	if len(opts.Env) > 0 {
		line = "env " + vm.ShellQuote(opts.Env) + " " + line
	}
	if opts.Workdir != "" {
		line = "cd " + vm.ShellQuote([]string{opts.Workdir}) + " && " + line
	}
	return line
}

// wayIn is where foldup reaches a running VM over SSH, if its guest has
// the user foldup's seed makes.
func (x *Executor) wayIn(d state.Dirs, m *planner.Member) (netip.Addr, error) {
	f := vm.For(d, m.Name)
	rec, err := vm.ReadRecord(f)
	if err != nil || vm.Running(f) == 0 {
		return netip.Addr{}, fmt.Errorf("vm %s is not running", m.Name)
	}
	if rec.Launch.Config.Seed == "" || rec.Launch.PassSeed { // no seed, or the user's own
		return netip.Addr{}, noWayIn(m.Name)
	}
	return vmAddr(m)
}

// errNoWayIn: a VM has no seed of foldup's, so no user foldup to reach
// over SSH.
var errNoWayIn = errors.New("no way in")

func noWayIn(name string) error {
	return fmt.Errorf("vm %s has no way in: foldup reaches a VM over SSH as the user foldup that its cloud-init seed adds "+
		"(give the VM cloud_init:, and a guest with cloud-init, sshd and sudo), or through qemu-guest-agent on the channel %s "+
		"(a guest that runs qemu-ga); a guest without them has its serial console: foldup console %s%w", name, qemu.AgentPort, name, wrapQuiet{errNoWayIn})
}

// wrapQuiet wraps an error for errors.Is and adds nothing to the message.
type wrapQuiet struct{ err error }

func (w wrapQuiet) Error() string { return "" }
func (w wrapQuiet) Unwrap() error { return w.err }

// vmAddr is the address foldup reaches a VM at: its first planned IPv4
// address, else its first IPv6 one.
func vmAddr(m *planner.Member) (netip.Addr, error) {
	var addr netip.Addr
	for _, nic := range m.NICs {
		if nic.IPv4.IsValid() {
			return nic.IPv4, nil
		}
		if !addr.IsValid() && nic.IPv6.IsValid() {
			addr = nic.IPv6
		}
	}
	if !addr.IsValid() {
		return addr, fmt.Errorf("vm %s has no planned address to reach it at", m.Name)
	}
	return addr, nil
}

// ImageRow is one line of images: a container's image, or a VM's disk
// image or kernel.
type ImageRow struct {
	Container  string
	Repository string
	Tag        string
	ID         string
	Size       int64
	Kind       string
}

// Images lists the images the project's containers and VMs run from, as
// docker compose images does for containers; a VM's is its image file (or
// kernel), its size the file's.
func (x *Executor) Images(ctx context.Context, project string, members []string) ([]ImageRow, error) {
	list, err := x.Ps(ctx, project, true)
	if err != nil {
		return nil, err
	}
	var dc containers.Engine
	var out []ImageRow
	for _, m := range list {
		if len(members) > 0 && !containsStatus(members, m) {
			continue
		}
		if m.Kind == planner.VM {
			r := ImageRow{Container: m.Name, Repository: m.Image, Kind: m.Kind}
			if fi, err := os.Stat(m.Image); err == nil {
				r.Size = fi.Size()
			}
			out = append(out, r)
			continue
		}
		if dc == nil {
			if dc, err = x.engine(); err != nil {
				return nil, err
			}
		}
		r := ImageRow{Container: m.Name, Repository: m.Image, Kind: m.Kind}
		if i := strings.LastIndex(m.Image, ":"); i > strings.LastIndex(m.Image, "/") {
			r.Repository, r.Tag = m.Image[:i], m.Image[i+1:]
		}
		if img, err := dc.ImageInspect(ctx, m.Image); err == nil {
			r.ID, r.Size = strings.TrimPrefix(img.ID, "sha256:"), img.Size
		}
		out = append(out, r)
	}
	return out, nil
}

// WaitReady waits until the named members (or all) run, and are healthy
// if they have a health check (start --wait), reporting each.
func (x *Executor) WaitReady(ctx context.Context, project string, members []string) error {
	d := x.o.dirs(project)
	plan, err := state.LoadPlan(d.PlanFile())
	if err != nil {
		return err
	}
	if plan == nil {
		return fmt.Errorf("project %s is not up here (no plan in %s)", project, d.State)
	}
	prog := newProgress(x.o.Events)
	var dc containers.Engine
	var errs []error
	for _, m := range plan.Ordered() {
		if len(members) > 0 && !containsName(members, m) {
			continue
		}
		if m.Kind == planner.VM {
			ev := prog.start("VM", m.Name)
			ev.update("Waiting")
			f := vm.For(d, m.Name)
			cond, word := "service_started", "Running"
			if rec, err := vm.ReadRecord(f); err == nil && rec.Health != nil && !rec.Health.Disable {
				cond, word = "service_healthy", "Healthy"
			}
			if err := vm.Wait(ctx, f, m.Name, cond); err != nil {
				errs = append(errs, ev.fail(err))
				continue
			}
			ev.done(word)
			continue
		}
		if dc == nil {
			if dc, err = x.engine(); err != nil {
				return err
			}
		}
		ev := prog.start("Container", m.Container)
		ev.update("Waiting")
		word, err := waitReady(ctx, dc, m.Container)
		if err != nil {
			errs = append(errs, ev.fail(err))
			continue
		}
		ev.done(word)
	}
	return errors.Join(errs...)
}

// Build builds the images of the project's services that have build:
// (the named ones, or all), as docker compose build does, without
// creating or starting anything.
func (x *Executor) Build(ctx context.Context, p *spec.Project, services []string) error {
	pl, err := planner.Compute(p, planner.Observed{}, planner.Intent{Services: services, Build: true})
	if err != nil {
		return err
	}
	r := &upRun{x: x, p: p, o: x.o, d: x.o.dirs(p.Name), prog: newProgress(x.o.Events), pl: &planner.Plan{Project: pl.Project}}
	for _, s := range pl.Steps {
		if s.Kind == planner.KindImage && s.Action == planner.ActionBuild {
			r.pl.Steps = append(r.pl.Steps, s)
		}
	}
	if len(r.pl.Steps) == 0 {
		return nil
	}
	if r.dc, err = x.engine(); err != nil {
		return err
	}
	return r.images(ctx)
}

// Attach attaches to a member's output (and its input, when in is not nil
// and it takes input), as docker compose attach does: a container's
// streams, or a VM's serial console (Console). It returns when the
// container ends or ctx does.
func (x *Executor) Attach(ctx context.Context, project, member string, index int, in io.Reader, out, errOut io.Writer) error {
	if plan, _ := state.LoadPlan(x.o.dirs(project).PlanFile()); plan != nil {
		for _, m := range plan.Members {
			if m.Kind == planner.VM && (m.Name == member || m.Service == member) {
				if in == nil {
					in = strings.NewReader("")
				}
				return x.Console(ctx, project, m.Name, in, out)
			}
		}
	}
	dc, err := x.engine()
	if err != nil {
		return err
	}
	cs, err := containers.List(ctx, dc, project, false)
	if err != nil {
		return err
	}
	var id string
	for _, c := range cs {
		if c.Labels[containers.LabelMember] == member ||
			(c.Labels[containers.LabelService] == member && c.Labels[containers.LabelReplica] == strconv.Itoa(max(index, 1))) {
			id = c.ID
		}
	}
	if id == "" {
		return fmt.Errorf("service %q is not running", member)
	}
	c, err := dc.ContainerInspect(ctx, id)
	if err != nil {
		return err
	}
	stdin := in != nil && c.Config.OpenStdin
	hj, err := dc.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdin: stdin, Stdout: true, Stderr: true})
	if err != nil {
		return err
	}
	defer hj.Close()
	if stdin {
		go func() {
			io.Copy(hj.Conn, in)
			hj.CloseWrite()
		}()
	}
	done := make(chan error, 1)
	go func() {
		var err error
		if c.Config.Tty {
			_, err = io.Copy(out, hj.Reader)
		} else {
			_, err = stdcopy.StdCopy(out, errOut, hj.Reader)
		}
		done <- err
	}()
	select {
	case <-ctx.Done():
		return nil
	case err := <-done:
		return err
	}
}

// RemoveImages removes images by name, as down --rmi does after the
// containers are gone; one that is not there is no error, one still in
// use (by another project) is.
func (x *Executor) RemoveImages(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	dc, err := x.engine()
	if err != nil {
		return err
	}
	prog := newProgress(x.o.Events)
	var errs []error
	for _, n := range names {
		ev := prog.start("Image", n)
		ev.update("Removing")
		if _, err := dc.ImageRemove(ctx, n, image.RemoveOptions{PruneChildren: true}); err != nil {
			if errdefs.IsNotFound(err) {
				ev.done("Removed")
				continue
			}
			errs = append(errs, ev.fail(err))
			continue
		}
		ev.done("Removed")
	}
	return errors.Join(errs...)
}

// Pull fetches what the project's services and VMs run from (the named
// ones, or all), as docker compose pull does, and makes nothing else:
// each service's image (a service that only builds is skipped), pulled
// whatever its pull_policy, and each VM's image downloaded from its URL
// into the image cache (and verified), unless the cache has it.
func (x *Executor) Pull(ctx context.Context, p *spec.Project, services []string) error {
	for name, s := range p.Compose.Services {
		if s.Image != "" {
			s.PullPolicy = types.PullPolicyAlways
			p.Compose.Services[name] = s
		}
	}
	pl, err := planner.Compute(p, planner.Observed{}, planner.Intent{Services: services})
	if err != nil {
		return err
	}
	r := &upRun{x: x, p: p, o: x.o, d: x.o.dirs(p.Name), prog: newProgress(x.o.Events), pl: &planner.Plan{Project: pl.Project}}
	containersToo := false
	for _, s := range pl.Steps {
		switch {
		case s.Kind == planner.KindVMImage:
			r.pl.Steps = append(r.pl.Steps, s)
		case s.Kind == planner.KindImage && p.Compose.Services[s.Name].Image != "":
			r.pl.Steps = append(r.pl.Steps, s)
			containersToo = true
		}
	}
	if containersToo {
		if r.dc, err = x.engine(); err != nil {
			return err
		}
	}
	return r.images(ctx)
}

// KubeBuild builds the container images foldup kube names for the
// project's VMs (kube.Images): a kernel and initrd for KubeVirt's
// kernelBoot, or a disk for a containerDisk, each FROM scratch; with
// push, it pushes each to its registry.
func (x *Executor) KubeBuild(ctx context.Context, project string, images []kube.Image, push bool) error {
	dc, err := x.engine()
	if err != nil {
		return err
	}
	prog := newProgress(x.o.Events)
	for _, im := range images {
		o := prog.start("Image", im.Ref)
		o.update("Building")
		labels := map[string]string{containers.LabelProject: project, "foldup.dev/vm": im.VM, "foldup.dev/image": im.Kind}
		if err := containers.BuildFiles(ctx, dc, im.Ref, im.File, labels, nil); err != nil {
			return o.fail(err)
		}
		if !push {
			o.done("Built")
			continue
		}
		o.update("Pushing")
		if err := containers.Push(ctx, dc, im.Ref, nil); err != nil {
			return o.fail(err)
		}
		o.done("Pushed")
	}
	return nil
}

// Applied is the plan up applied last for the project, and nil when the
// project is not up here.
func (x *Executor) Applied(project string) (*planner.Plan, error) {
	return state.LoadPlan(x.o.dirs(project).PlanFile())
}
