package runtime

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const crashProject = `
name: crash
networks:
  front: {}
  back: {}
services:
  db:
    image: foldup-test/busybox:1
    init: true
    command: ["sleep", "3600"]
    networks: [back]
    volumes: ["data:/data"]
  api:
    image: foldup-test/busybox:1
    init: true
    command: ["sleep", "3600"]
    networks: [front, back]
    depends_on: [db]
  web:
    image: foldup-test/busybox:1
    init: true
    command: ["sleep", "3600"]
    networks: [front]
    depends_on: [api]
volumes:
  data: {}
`

// TestCrashDown kills `foldup up -d` with SIGKILL at every point of its
// journal (after the Nth entry is written, before the thing it names is
// made), then runs `foldup down -v`, and checks that nothing of the
// project is left each time: no container, Docker network, volume,
// bridge, nftables table or rule, supervisor.
func TestCrashDown(t *testing.T) {
	e := newTestEnv(t)
	p := e.load(t, "crash", crashProject)
	file := filepath.Join(e.dir, "crash", "foldup.yaml")
	e.downAtEnd(t, p.Name)
	foldup := func(env []string, args ...string) *exec.Cmd {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		t.Cleanup(cancel)
		return e.cli(t, ctx, file, env, args...)
	}

	// How many entries a whole up writes: every point to kill at.
	out, err := foldup(nil, "up", "-d").CombinedOutput()
	if err != nil {
		t.Fatalf("up -d: %v\n%s", err, out)
	}
	entries, err := readJournal(e.o.withDefaults().dirs(p.Name).journalFile())
	if err != nil {
		t.Fatal(err)
	}
	if out, err := foldup(nil, "down", "-v").CombinedOutput(); err != nil {
		t.Fatalf("down -v: %v\n%s", err, out)
	}
	e.assertGone(t, p.Name)
	if len(entries) < 10 {
		t.Fatalf("a whole up writes %d journal entries; the test wants 10 points to kill at", len(entries))
	}

	for n := 1; n <= len(entries); n++ {
		t.Run(fmt.Sprintf("after_%d_%s", n, entries[n-1].Kind), func(t *testing.T) {
			out, err := foldup([]string{fmt.Sprint("FOLDUP_TEST_KILL_AT=", n)}, "up", "-d").CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("up was not killed at entry %d: %v\n%s", n, err, out)
			}
			if out, err := foldup(nil, "down", "-v").CombinedOutput(); err != nil {
				t.Fatalf("down -v after a kill at entry %d: %v\n%s", n, err, out)
			} else if strings.Contains(string(out), "Error") {
				t.Errorf("down reported errors:\n%s", out)
			}
			e.assertGone(t, p.Name)
		})
	}

	// A corrupt journal: down refuses and says why; down --force still
	// removes everything, by the plan and the project's labels.
	if out, err := foldup(nil, "up", "-d").CombinedOutput(); err != nil {
		t.Fatalf("up -d: %v\n%s", err, out)
	}
	journal := e.o.withDefaults().dirs(p.Name).journalFile()
	if err := os.WriteFile(journal, []byte("garbage\n{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = foldup(nil, "down").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "corrupt journal entry") {
		t.Fatalf("down with a corrupt journal: %v\n%s", err, out)
	}
	if out, err := foldup(nil, "down", "-v", "--force").CombinedOutput(); err != nil {
		t.Fatalf("down --force: %v\n%s", err, out)
	}
	e.assertGone(t, p.Name)
}
