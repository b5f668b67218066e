//go:build linux

package supervisor

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/state"
)

// TestFileSignals: a subscriber is signalled when its file is written or
// replaced by a rename, not for another file's changes, and the watch
// begins once the directory exists (till then every subscriber is
// signalled each poll, so that nothing is missed).
func TestFileSignals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vm")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sig := newFileSignals()
	rec, con := sig.subscribe("vm.json"), sig.subscribe("console.log")
	done := make(chan struct{})
	go func() { defer close(done); sig.run(ctx, dir, 50*time.Millisecond) }()
	defer func() { cancel(); <-done }()

	got := func(c <-chan struct{}, within time.Duration) bool {
		select {
		case <-c:
			return true
		default: // a timer already fired would be chosen as often as c
		}
		select {
		case <-c:
			return true
		case <-time.After(within):
			return false
		}
	}
	drain := func() {
		time.Sleep(100 * time.Millisecond)
		for got(rec, 0) || got(con, 0) {
		}
	}
	if !got(rec, time.Second) {
		t.Fatal("no signal while the directory does not exist (it polls)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the watch begins
	drain()
	if got(rec, 300*time.Millisecond) || got(con, 0) {
		t.Fatal("signalled with nothing changed, once watching")
	}
	if err := state.WriteFileAtomic(filepath.Join(dir, "vm.json"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if !got(rec, time.Second) {
		t.Error("vm.json replaced by a rename: no signal")
	}
	drain()
	if got(con, 0) {
		t.Error("console.log signalled for vm.json's change")
	}
	fh, err := os.OpenFile(filepath.Join(dir, "console.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	drain()
	fh.WriteString("boot\n")
	if !got(con, time.Second) {
		t.Error("console.log appended to: no signal")
	}
}

// TestFollowVMsJoins: the supervisor's followers of a VM end with it: when
// the VM leaves the plan, and when followVMs returns, every goroutine it
// started has ended (none left behind).
func TestFollowVMsJoins(t *testing.T) {
	dir := t.TempDir()
	s := &server{
		dirs:  state.Dirs{State: filepath.Join(dir, "state"), Run: filepath.Join(dir, "run")},
		log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		plans: newFileSignals(),
		plan:  &planner.Plan{Members: []*planner.Member{{Name: "vm1", Service: "vm1", Kind: planner.VM}, {Name: "vm2", Service: "vm2", Kind: planner.VM}}},
	}
	// Counted once the count holds still: goroutines of earlier tests
	// may still be ending (CI once counted one that ended during the test).
	before := stableGoroutines()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.followVMs(ctx) }()
	settle := func(want int) int {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := goruntime.NumGoroutine()
			if n == want || time.Now().After(deadline) {
				return n
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// followVMs itself, and four followers a VM.
	if n := settle(before + 1 + 2*4); n != before+1+2*4 {
		t.Fatalf("%d goroutines with two VMs followed, want %d", n, before+1+2*4)
	}
	s.mu.Lock()
	s.plan = &planner.Plan{Members: s.plan.Members[:1]}
	s.mu.Unlock()
	s.plans.signal("plan")
	if n := settle(before + 1 + 4); n != before+1+4 {
		t.Errorf("%d goroutines once vm2 left the plan, want %d", n, before+1+4)
	}
	cancel()
	<-done
	if n := settle(before); n != before {
		t.Errorf("%d goroutines after followVMs returned, want %d as before", n, before)
	}
}

// stableGoroutines is the number of goroutines once it has not changed
// for 100 ms (2 s at most).
func stableGoroutines() int {
	n, same := goruntime.NumGoroutine(), 0
	for deadline := time.Now().Add(2 * time.Second); same < 5 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if m := goruntime.NumGoroutine(); m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	return n
}
