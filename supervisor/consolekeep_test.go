//go:build linux

package supervisor

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/foldup/foldup/vm"
)

// TestConsoleStamps has keepConsole stamp what a writer (qemu, here a
// file opened for appending) prints: each line reads back with the time
// it came.
func TestConsoleStamps(t *testing.T) {
	dir := t.TempDir()
	f := vm.Files{Run: dir, State: dir}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	sig := newFileSignals()
	written := sig.subscribe("console.log")
	go sig.run(ctx, dir, time.Second)
	go func() { defer close(done); keepConsole(ctx, f, written, t.Logf) }()
	time.Sleep(2 * stampEvery) // no log yet: keepConsole starts from 0
	w, err := os.OpenFile(f.ConsoleLog(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	t1 := time.Now()
	w.WriteString("first\r\nsecond\n")
	time.Sleep(time.Second)
	t2 := time.Now()
	w.WriteString("third\n")
	time.Sleep(3 * stampEvery)
	cancel()
	<-done

	lines, _, err := vm.ReadConsole(f.ConsoleLog(), f.ConsoleTimes())
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 || lines[0].Text != "first\n" || lines[2].Text != "third\n" {
		t.Fatalf("lines = %+v", lines)
	}
	for i, want := range []time.Time{t1, t1, t2} {
		if d := lines[i].At.Sub(want); d < 0 || d > 2*stampEvery+100*time.Millisecond {
			t.Errorf("line %d stamped %v after it was written, want within %v", i, d, 2*stampEvery)
		}
	}
}
