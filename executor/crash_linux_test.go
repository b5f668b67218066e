//go:build linux

package executor

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

	"github.com/foldup/foldup/internal/vmtest"
	"github.com/foldup/foldup/state"
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

// crashVM is added to crashProject when qemu and the test images are here:
// a VM on both networks (two taps), started last.
const crashVM = `
vms:
  vm:
    kernel: %s
    initrd: %s
    cmdline: console=ttyS0 quiet panic=-1
    memory: 128m
    stop_grace_period: 0s
    networks: [front, back]
    depends_on: [api]
`

// TestCrashDown kills `foldup up -d` with SIGKILL at every point of its
// journal, twice: after the Nth entry is written, before the thing it
// names is made, and once that thing is made, before the next entry (or,
// for the last, before up returns). It also kills the detached supervisor
// once its DNS/DHCP server serves, and once it answers on its socket. After
// each kill, `foldup down -v` must leave nothing of the project: no
// container, Docker network, volume, bridge, tap, nftables table or rule,
// supervisor, qemu, or state.
func TestCrashDown(t *testing.T) {
	e := newTestEnv(t)
	project := crashProject
	// Where the kernel has netem, web's links are impaired both ways: the
	// matrix kills up at its ifb too (this project's machines have none).
	withNetem := netemSupported(t, e)
	if withNetem {
		project = strings.Replace(project, "    networks: [front]\n    depends_on: [api]\n",
			"    networks: [front]\n    depends_on: [api]\n    x-foldup: {netem: {delay: 1ms, direction: both}}\n", 1)
	}
	if vmtest.Have() {
		kernel, initrd := vmtest.Images(t)
		project += fmt.Sprintf(crashVM, kernel, initrd)
	}
	p := e.load(t, "crash", project)
	file := filepath.Join(e.dir, "crash", "foldup.yaml")
	e.downAtEnd(t, p.Name)
	foldup := func(env []string, args ...string) *exec.Cmd {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		t.Cleanup(cancel)
		return e.cli(t, ctx, file, env, args...)
	}
	d := e.o.withDefaults().dirs(p.Name)
	downClean := func(t *testing.T, after string) {
		t.Helper()
		if out, err := foldup(nil, "down", "-v").CombinedOutput(); err != nil {
			t.Fatalf("down -v after %s: %v\n%s", after, err, out)
		} else if strings.Contains(string(out), "Error") {
			t.Errorf("down reported errors:\n%s", out)
		}
		e.assertGone(t, p.Name)
		if _, err := os.Stat(d.State); err == nil {
			t.Errorf("state directory %s left after down -v", d.State)
		}
	}

	// How many entries a whole up writes: every point to kill at.
	out, err := foldup(nil, "up", "-d").CombinedOutput()
	if err != nil {
		t.Fatalf("up -d: %v\n%s", err, out)
	}
	entries, err := state.ReadJournal(d.JournalFile())
	if err != nil {
		t.Fatal(err)
	}
	downClean(t, "a whole up")
	kinds := map[string]bool{}
	for _, en := range entries {
		kinds[en.Kind] = true
	}
	want := []string{state.KindBridge, state.KindDockerAccept, state.KindDockerNetwork, state.KindFirewall, state.KindSupervisor, state.KindContainer, state.KindVolume}
	if vmtest.Have() {
		want = append(want, state.KindTap, state.KindVM)
	}
	if withNetem {
		want = append(want, state.KindIfb)
	}
	for _, k := range want {
		if !kinds[k] {
			t.Errorf("a whole up wrote no %s entry: %v", k, entries)
		}
	}

	killed := func(t *testing.T, env string) {
		t.Helper()
		out, err := foldup([]string{env}, "up", "-d").CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("up was not killed (%s): %v\n%s", env, err, out)
		}
	}
	points := 0
	for n := 1; n <= len(entries); n++ {
		points++
		t.Run(fmt.Sprintf("at_%d_%s", n, entries[n-1].Kind), func(t *testing.T) {
			killed(t, fmt.Sprint("FOLDUP_TEST_KILL_AT=", n))
			downClean(t, fmt.Sprintf("a kill at entry %d", n))
		})
	}
	for n := 1; n <= len(entries); n++ {
		points++
		t.Run(fmt.Sprintf("after_%d_%s", n, entries[n-1].Kind), func(t *testing.T) {
			killed(t, fmt.Sprint("FOLDUP_TEST_KILL_AFTER=", n))
			downClean(t, fmt.Sprintf("a kill after entry %d", n))
		})
	}
	// The supervisor dies; up, waiting for it, fails, and says so.
	for _, at := range []string{"dns", "ready"} {
		points++
		t.Run("supervisor_"+at, func(t *testing.T) {
			out, err := foldup([]string{"FOLDUP_TEST_KILL_SUPERVISOR=" + at}, "up", "-d").CombinedOutput()
			if err == nil {
				t.Errorf("up succeeded with its supervisor killed at %s:\n%s", at, out)
			}
			downClean(t, "the supervisor's kill at "+at)
		})
	}
	t.Logf("%d points to kill at, from %d journal entries", points, len(entries))
	if points < 20 {
		t.Errorf("%d points to kill at, want at least 20", points)
	}

	// A corrupt journal: down refuses and says why; down --force still
	// removes everything, by the plan and the project's labels.
	if out, err := foldup(nil, "up", "-d").CombinedOutput(); err != nil {
		t.Fatalf("up -d: %v\n%s", err, out)
	}
	journal := d.JournalFile()
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

	// A plan cut short (a disk full, a copy gone wrong): up and down both
	// refuse, naming the file and the way out; down --force cleans.
	if out, err := foldup(nil, "up", "-d").CombinedOutput(); err != nil {
		t.Fatalf("up -d: %v\n%s", err, out)
	}
	b, err := os.ReadFile(d.PlanFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.PlanFile(), b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"up", "-d"}, {"down"}} {
		out, err = foldup(nil, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), d.PlanFile()+": unexpected end of JSON input (down --force removes the project by its labels and names)") {
			t.Errorf("%s with a truncated plan: %v\n%s", args, err, out)
		}
	}
	if out, err := foldup(nil, "down", "-v", "--force").CombinedOutput(); err != nil {
		t.Fatalf("down --force: %v\n%s", err, out)
	}
	e.assertGone(t, p.Name)
}
