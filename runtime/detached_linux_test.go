package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
	bin := foldupBinary(t)
	foldup := func(ctx context.Context, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", e.ns.Name, bin, "-f", file}, args...)...)
		cmd.Env = append(e.eng.Env(), "FOLDUP_STATE_ROOT="+e.o.StateRoot, "FOLDUP_RUN_ROOT="+e.o.RunRoot)
		return cmd
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
	plan, err := loadPlan(d.planFile())
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
	var list []MemberStatus
	ps := foldup(t.Context(), "ps", "--format", "json")
	psOut, err := ps.Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(psOut, &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "tick-ticker-1" || list[0].State != "running" || list[0].Health != "healthy" {
		t.Errorf("ps --format json = %+v", list)
	}

	// Kill the supervisor: DNS stops; the next command brings it back.
	pid := readPid(d.pidFile())
	if pid <= 0 || !isSupervisor(pid) {
		t.Fatalf("supervisor pid %d", pid)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, 5*time.Second, func() bool { return !alive(pid) })
	if got := dig(); got == `"hello"` {
		t.Fatalf("DNS still answers with the supervisor killed")
	}
	run("ps")
	if got := dig(); got != `"hello"` {
		t.Fatalf("dig after ps restarted the supervisor = %q", got)
	}
	if np := readPid(d.pidFile()); np == pid || !isSupervisor(np) {
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
	if len(lines) < 5 || !strings.HasPrefix(lines[4], "ticker | tick ") {
		t.Errorf("logs -f gave %q; stderr:\n%s", lines, logsErr.String())
	}

	out := run("down")
	if !strings.Contains(out, "Container tick-ticker-1  Removed") {
		t.Errorf("down printed:\n%s", out)
	}
	e.assertGone(t, p.Name)
}
