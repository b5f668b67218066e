//go:build linux

package executor

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/foldup/foldup/internal/vtscreen"
)

const ttyProject = `
name: tty
services:
  db:
    image: foldup-test/busybox:1
    init: true
    command: ["sh", "-c", "sleep 1; touch /ready; exec sleep 3600"]
    healthcheck:
      test: ["CMD", "test", "-e", "/ready"]
      interval: 300ms
      start_period: 30s # failures while it starts do not count: CI's load
  web:
    image: foldup-test/busybox:1
    init: true
    command: ["sleep", "3600"]
    depends_on:
      db: {condition: service_healthy}
`

// TestTTYProgress runs the CLI on a real pseudo-terminal (script(1)): up
// and down draw compose's live block there, which a terminal shows as one
// finished line per object; with TERM=dumb they print plain lines.
func TestTTYProgress(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("no script(1) to run foldup on a pseudo-terminal")
	}
	e := newTestEnv(t)
	p := e.load(t, "tty", ttyProject)
	file := filepath.Join(e.dir, "tty", "foldup.yaml")
	e.downAtEnd(t, p.Name)
	// onTTY runs foldup with its stdin, stdout and stderr on a new
	// pseudo-terminal and returns what the terminal received.
	onTTY := func(term string, args ...string) string {
		t.Helper()
		fcmd := e.cli(t, t.Context(), file, nil, args...)
		var quoted []string
		for _, a := range fcmd.Args {
			quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
		}
		cmd := exec.CommandContext(t.Context(), "script", "--quiet", "--return", "--flush", "--command", strings.Join(quoted, " "), "/dev/null")
		cmd.Env = append(fcmd.Env, "TERM="+term, "NO_COLOR=")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("foldup %s on a terminal: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	out := onTTY("xterm", "up", "-d")
	s := vtscreen.New(t)
	s.Write([]byte(out))
	got := s.Text()
	t.Logf("up -d on a terminal:\n%s", got)
	if s.CursorUps == 0 {
		t.Errorf("up on a terminal never redrew its block: %q", out)
	}
	// web waits about a second for db's health: the block is redrawn
	// meanwhile, and still ends with each object once.
	for _, obj := range []string{"Network tty_default", "Firewall foldup-tty", "Supervisor tty", "Container tty-db-1", "Container tty-web-1"} {
		sgr := `(\x1b\[[0-9;]*m)?`
		re := regexp.MustCompile(`(?m)^ ` + sgr + `✔` + sgr + ` ` + regexp.QuoteMeta(obj) + ` +` + sgr + `[A-Z][a-z]+` + sgr + ` +` + sgr + `[0-9]+\.[0-9]s` + sgr + `$`)
		if n := len(re.FindAllString(got, -1)); n != 1 {
			t.Errorf("%q finished %d times on the screen, want once", obj, n)
		}
	}
	if !regexp.MustCompile(`(?m)^\[\+\] up 5/5$`).MatchString(got) {
		t.Errorf("no final header [+] up 5/5 on the screen, as compose v5 draws it")
	}
	if !strings.Contains(out, "Waiting") {
		t.Errorf("web was never shown waiting for db: %q", out)
	}

	// A terminal that cannot move the cursor gets plain lines.
	out = onTTY("dumb", "up", "-d")
	if strings.Contains(out, "\x1b") || !strings.Contains(out, "Container tty-web-1  ") {
		t.Errorf("up -d with TERM=dumb printed %q", out)
	}

	out = onTTY("xterm", "down")
	s = vtscreen.New(t)
	s.Write([]byte(out))
	t.Logf("down on a terminal:\n%s", s.Text())
	for _, obj := range []string{"Container tty-db-1", "Container tty-web-1", "Network tty_default"} {
		if n := strings.Count(s.Text(), " "+obj+" "); n != 1 {
			t.Errorf("%q on the screen %d times after down, want once", obj, n)
		}
	}
}
