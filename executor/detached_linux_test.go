//go:build linux

package executor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/supervisor"
)

const tickerProject = `
name: tick
services:
  ticker:
    image: foldup-test/busybox:1
    init: true
    command: ["sh", "-c", "i=0; while true; do i=$$((i+1)); echo tick $$i; sleep 0.2; done"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 500ms
dns:
  - {name: motd, txt: ["hello"]}
`

// TestDetached runs the CLI as a user does: up -d leaves a supervisor that
// serves DNS; killed with SIGKILL, it is started again by the next foldup
// command; logs -f streams; ps --format json reports health; down removes
// the lot.
func TestDetached(t *testing.T) {
	e := newTestEnv(t)
	p := e.load(t, "tick", tickerProject)
	file := filepath.Join(e.dir, "tick", "foldup.yaml")
	e.downAtEnd(t, p.Name)
	foldup := func(ctx context.Context, args ...string) *exec.Cmd {
		return e.cli(t, ctx, file, nil, args...)
	}
	run := func(args ...string) string {
		t.Helper()
		var stderr strings.Builder
		cmd := foldup(t.Context(), args...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("foldup %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out) + stderr.String()
	}

	run("up", "-d", "--wait")
	d := e.o.withDefaults().dirs(p.Name)
	plan, err := state.LoadPlan(d.PlanFile())
	if err != nil || plan == nil {
		t.Fatalf("plan: %v", err)
	}
	dig := func() string {
		out, _ := e.ns.Run(t, "dig", "+short", "+time=1", "+tries=1", "@"+plan.Networks[0].Gateway4.String(), "TXT", "motd."+plan.Domain)
		return strings.TrimSpace(out)
	}
	if got := dig(); got != `"hello"` {
		t.Fatalf("dig TXT motd after up -d = %q", got)
	}

	// ps --format json: the container, running and healthy.
	type row struct{ Name, State, Health string } // of compose's keys
	var list []row
	ps := foldup(t.Context(), "ps", "--format", "json")
	psOut, err := ps.Output()
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(psOut)) // one object a line
	for {
		var m row
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("%v\n%s", err, psOut)
		}
		list = append(list, m)
	}
	if len(list) != 1 || list[0].Name != "tick-ticker-1" || list[0].State != "running" || list[0].Health != "healthy" {
		t.Errorf("ps --format json = %+v", list)
	}

	// Kill the supervisor: DNS stops; the next command brings it back.
	pid := state.ReadPid(d.PidFile())
	if pid <= 0 || !supervisor.IsSupervisor(pid) {
		t.Fatalf("supervisor pid %d", pid)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, 5*time.Second, func() bool { return !state.Alive(pid) })
	if got := dig(); got == `"hello"` {
		t.Fatalf("DNS still answers with the supervisor killed")
	}
	run("ps")
	if got := dig(); got != `"hello"` {
		t.Fatalf("dig after ps restarted the supervisor = %q", got)
	}
	if np := state.ReadPid(d.PidFile()); np == pid || !supervisor.IsSupervisor(np) {
		t.Errorf("supervisor pid after restart = %d (was %d)", np, pid)
	}

	// logs -f streams new lines as they come.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := foldup(ctx, "logs", "-f", "--tail", "1", "ticker")
	stdout, _ := cmd.StdoutPipe()
	var logsErr strings.Builder
	cmd.Stderr = &logsErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var lines []string
	for len(lines) < 5 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	cancel()
	cmd.Wait()
	if len(lines) < 5 || !strings.HasPrefix(lines[4], "ticker-1  | tick ") {
		t.Errorf("logs -f gave %q; stderr:\n%s", lines, logsErr.String())
	}

	out := run("down")
	if !strings.Contains(out, "Container tick-ticker-1  Removed") {
		t.Errorf("down printed:\n%s", out)
	}
	e.assertGone(t, p.Name)
}

// TestForeground runs `foldup up` in the foreground: it streams the
// members' output with their prefixes, and Ctrl-C (SIGINT) stops the
// containers and its own supervisor, leaving the project stopped, not
// removed.
func TestForeground(t *testing.T) {
	e := newTestEnv(t)
	p := e.load(t, "tick", tickerProject)
	file := filepath.Join(e.dir, "tick", "foldup.yaml")
	e.downAtEnd(t, p.Name)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// Not through `ip netns exec`, which would take the signal itself:
	// enter the namespace with nsenter, which execs foldup in place.
	cmd := exec.CommandContext(ctx, "nsenter", "--net=/run/netns/"+e.ns.Name, foldupBinary(t), "-f", file, "up")
	cmd.Env = e.cliEnv()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	ticks := 0
	for ticks < 3 && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "ticker-1  | tick ") {
			ticks++
		}
	}
	if ticks < 3 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("foreground up streamed %d tick lines; stderr:\n%s", ticks, stderr.String())
	}
	d := e.o.withDefaults().dirs(p.Name)
	if _, err := supervisor.NewClient(d).Status(ctx); err != nil {
		t.Errorf("no supervisor answers while up runs: %v", err)
	}
	cmd.Process.Signal(syscall.SIGINT)
	go func() {
		for sc.Scan() {
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("up after Ctrl-C: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Gracefully stopping") || !strings.Contains(stderr.String(), "Container tick-ticker-1  Stopped") {
		t.Errorf("up's stderr:\n%s", stderr.String())
	}
	c, err := e.eng.Client.ContainerInspect(ctx, "tick-ticker-1")
	if err != nil || c.State.Running {
		t.Errorf("after Ctrl-C the container is %v (%v), want stopped and kept", c.State, err)
	}
	if _, err := supervisor.NewClient(d).Status(ctx); err == nil {
		t.Errorf("the supervisor still answers after Ctrl-C")
	}
}

// TestConcurrentUp runs two ups of one project at once: the lock makes
// one wait for the other, and the end state is one container per member.
func TestConcurrentUp(t *testing.T) {
	e := newTestEnv(t)
	p := e.load(t, "tick", tickerProject)
	e.downAtEnd(t, p.Name)
	errc := make(chan error, 2)
	var sups = make(chan *InProcess, 2)
	for range 2 {
		go func() {
			res, err := New(e.o).Up(t.Context(), p, UpOptions{InProcess: true})
			if res != nil && res.Supervisor != nil {
				sups <- res.Supervisor
			}
			errc <- err
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	close(sups)
	n := 0
	for s := range sups {
		n++
		defer s.Stop()
	}
	if n != 1 {
		t.Errorf("%d supervisors started, want 1 (the second up reloads the first's)", n)
	}
	list, err := New(e.o).Ps(t.Context(), p.Name, true)
	if err != nil || len(list) != 1 || list[0].State != "running" {
		t.Errorf("ps after two concurrent ups: %+v (%v)", list, err)
	}

	// stop, start and restart act on the container and keep it.
	ctx := t.Context()
	state := func() (string, string) {
		c, err := e.eng.Client.ContainerInspect(ctx, "tick-ticker-1")
		if err != nil {
			t.Fatal(err)
		}
		return c.State.Status, c.State.StartedAt
	}
	zero := 0
	if err := New(e.o).Stop(ctx, p.Name, []string{"ticker"}, &zero); err != nil {
		t.Fatal(err)
	}
	if st, _ := state(); st != "exited" {
		t.Errorf("after stop: %s", st)
	}
	if err := New(e.o).Start(ctx, p.Name, nil); err != nil {
		t.Fatal(err)
	}
	st, started := state()
	if st != "running" {
		t.Errorf("after start: %s", st)
	}
	if err := New(e.o).Restart(ctx, p.Name, nil, &zero); err != nil {
		t.Fatal(err)
	}
	if st, again := state(); st != "running" || again == started {
		t.Errorf("after restart: %s, started at %s (before: %s)", st, again, started)
	}

	// A service gone from the file: up names its container an orphan, and
	// removes it with --remove-orphans.
	renamed := e.load(t, "tick", strings.Replace(tickerProject, "  ticker:", "  tocker:", 1))
	var out strings.Builder
	o := e.o
	o.Events = eventsTo(&out)
	if _, err := New(o).Up(ctx, renamed, UpOptions{InProcess: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Found orphan containers (tick-ticker-1)") {
		t.Errorf("up without --remove-orphans printed:\n%s", out.String())
	}
	if _, err := New(e.o).Up(ctx, renamed, UpOptions{InProcess: true, RemoveOrphans: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.eng.Client.ContainerInspect(ctx, "tick-ticker-1"); err == nil {
		t.Errorf("up --remove-orphans left tick-ticker-1")
	}
}
