//go:build linux

package executor

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/vmtest"
	"github.com/foldup/foldup/vm"
)

const restartProject = `
name: rs
vms:
  always:
    kernel: %[1]s
    initrd: %[2]s
    cmdline: "console=ttyS0 quiet panic=-1"
    memory: 256m
    restart: always
    stop_grace_period: 1s
    healthcheck: {test: ["serial", "FOLDUP-READY"], interval: 300ms, retries: 100}
  onfail:
    kernel: %[1]s
    initrd: %[2]s
    cmdline: "console=ttyS0 quiet panic=-1"
    memory: 256m
    restart: on-failure
    stop_grace_period: 1s
`

// TestVMRestart holds VMs to their restart policies with real qemu: a VM
// killed (SIGKILL, no SHUTDOWN event) comes back with restart: always and
// takes its lease again on its reopened tap; one that powers itself off
// stays off under on-failure, and start brings it back; a supervisor
// stopped while the VMs run leaves them running, and a new one adopts
// them through their events sockets and restarts them in its turn; stop
// is never undone by a policy.
func TestVMRestart(t *testing.T) {
	kernel, initrd := vmtest.Images(t)
	e := newTestEnv(t)
	p, res := e.upInProcess(t, "rs", fmt.Sprintf(restartProject, kernel, initrd))
	ctx := t.Context()
	d := e.o.withDefaults().dirs(p.Name)
	always, onfail := vm.For(d, "always"), vm.For(d, "onfail")

	waitFor := func(what string, limit time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not in %s", what, limit)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	leases := func(f vm.Files) int {
		b, _ := os.ReadFile(f.ConsoleLog())
		return strings.Count(string(b), "FOLDUP-LEASE event=bound")
	}
	record := func(f vm.Files) *vm.Record {
		t.Helper()
		rec, err := vm.ReadRecord(f)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	for _, f := range []vm.Files{always, onfail} {
		waitFor("first lease", 60*time.Second, func() bool { return leases(f) == 1 })
	}

	// SIGKILL: no SHUTDOWN event, a crash to the watcher; restart: always.
	pid := vm.Running(always)
	syscall.Kill(pid, syscall.SIGKILL)
	restarted := func(f vm.Files, old int) func() bool {
		return func() bool {
			p := vm.Running(f)
			rec, err := vm.ReadRecord(f)
			return p != 0 && p != old && err == nil && rec.PID == p
		}
	}
	waitFor("always restarted", 30*time.Second, restarted(always, pid))
	if rec := record(always); rec.Restarts != 1 || rec.Stopped {
		t.Errorf("after one restart: %+v", rec)
	}
	waitFor("a lease after the restart", 60*time.Second, func() bool { return leases(always) == 2 })
	// Its health starts over from this boot: the old boot's FOLDUP-READY
	// does not count.
	waitFor("healthy again", 60*time.Second, func() bool { h := vm.ReadHealth(always); return h != nil && h.Status == "healthy" })

	// The guest powers off: exit 0, which on-failure does not restart.
	// Typed, not run: the shell never answers.
	fmt.Fprintln(dialGuest(t, onfail, "onfail").conn, "poweroff -f")
	waitFor("onfail powered off", 30*time.Second, func() bool { return vm.Running(onfail) == 0 })
	waitFor("onfail's exit recorded", 10*time.Second, func() bool { return !record(onfail).Exited.IsZero() })
	if rec := record(onfail); rec.ExitCode != 0 || rec.Exit != "guest-shutdown" || rec.Restarts != 0 {
		t.Errorf("after the guest's poweroff: exit %d %q, %d restarts", rec.ExitCode, rec.Exit, rec.Restarts)
	}
	time.Sleep(time.Second)
	if vm.Running(onfail) != 0 {
		t.Error("on-failure restarted a VM that powered itself off")
	}
	list, err := New(e.o).Ps(ctx, p.Name, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range list {
		if st.Name == "onfail" && (st.State != "exited" || !strings.HasPrefix(st.Status, "Exited (0) ")) {
			t.Errorf("ps -a: %+v", st)
		}
	}
	if err := New(e.o).Start(ctx, p.Name, []string{"onfail"}); err != nil {
		t.Fatal(err)
	}
	if vm.Running(onfail) == 0 {
		t.Fatal("start onfail: not running")
	}
	waitFor("onfail's lease after start", 60*time.Second, func() bool { return leases(onfail) == 2 })

	// A new supervisor adopts the running VMs.
	pids := []int{vm.Running(always), vm.Running(onfail)}
	if err := res.Supervisor.Stop(); err != nil {
		t.Fatal(err)
	}
	if vm.Running(always) != pids[0] || vm.Running(onfail) != pids[1] {
		t.Fatalf("VMs after the supervisor stopped: %d %d, were %v", vm.Running(always), vm.Running(onfail), pids)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- New(e.o).Supervise(sctx, p.Name, func() { close(ready) }) }()
	t.Cleanup(func() { stop(); <-done })
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("a second supervisor: %v", err)
	}
	time.Sleep(time.Second) // the watchers connect
	for i, f := range []vm.Files{always, onfail} {
		syscall.Kill(pids[i], syscall.SIGKILL)
		waitFor("restarted by the new supervisor", 30*time.Second, restarted(f, pids[i]))
	}
	if rec := record(onfail); rec.Restarts != 1 {
		t.Errorf("onfail after a crash under on-failure: %d restarts", rec.Restarts)
	}

	// stop is final: no policy brings the VM back.
	if err := New(e.o).Stop(ctx, p.Name, []string{"always"}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if vm.Running(always) != 0 {
		t.Error("restart: always undid a stop")
	}
	if rec := record(always); !rec.Stopped {
		t.Errorf("always after stop: %+v", rec)
	}
}
