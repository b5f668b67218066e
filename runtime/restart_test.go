//go:build linux

package runtime

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foldup/foldup/vm"
)

// TestRotateConsole rotates a log that a writer holds open for appending,
// as qemu holds the console log: what it writes next starts the new log,
// the old one is console.log.1, and logs shows both in order.
func TestRotateConsole(t *testing.T) {
	dir := t.TempDir()
	f := vm.Files{Run: dir, State: dir}
	w, err := os.OpenFile(f.ConsoleLog(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteString("line 1\nline 2\n")
	if rotated, err := vm.RotateConsole(f, 100); rotated || err != nil {
		t.Fatalf("rotated a small log: %v %v", rotated, err)
	}
	if rotated, err := vm.RotateConsole(f, 10); !rotated || err != nil {
		t.Fatalf("vm.RotateConsole = %v, %v", rotated, err)
	}
	w.WriteString("line 3\n")
	if b, _ := os.ReadFile(f.ConsoleLog()); string(b) != "line 3\n" {
		t.Errorf("console.log after rotation = %q", b)
	}
	if b, _ := os.ReadFile(f.ConsoleLog() + ".1"); string(b) != "line 1\nline 2\n" {
		t.Errorf("console.log.1 = %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "console.log.1.tmp")); err == nil {
		t.Error("the copy's temporary file is left")
	}
	var out bytes.Buffer
	lp := &linePrefixer{w: &out, mu: new(sync.Mutex)}
	if err := vmLogs(context.Background(), f, LogOptions{Tail: "all"}, lp); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "line 1\nline 2\nline 3\n" {
		t.Errorf("logs = %q", got)
	}
	out.Reset()
	if err := vmLogs(context.Background(), f, LogOptions{Tail: "2"}, lp); err != nil || strings.Count(out.String(), "\n") != 2 {
		t.Errorf("logs --tail 2 = %q, %v", out.String(), err)
	}
}

// TestConsoleStamps has keepConsole stamp what a writer (qemu, here a
// file opened for appending) prints, and logs -t show each line with the
// time it came, the rotated log's lines included.
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

	lines, err := vm.ReadConsole(f.ConsoleLog(), f.ConsoleTimes())
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
	var out bytes.Buffer
	lp := &linePrefixer{w: &out, mu: new(sync.Mutex)}
	if err := vmLogs(context.Background(), f, LogOptions{Tail: "all", Timestamps: true}, lp); err != nil {
		t.Fatal(err)
	}
	want := lines[0].At.UTC().Format(stampFormat) + " first\n" + lines[1].At.UTC().Format(stampFormat) + " second\n" + lines[2].At.UTC().Format(stampFormat) + " third\n"
	if out.String() != want {
		t.Errorf("logs -t:\n%s\nwant:\n%s", out.String(), want)
	}

	// Rotated: the stamps go along with the lines.
	if rotated, err := vm.RotateConsole(f, 1); !rotated || err != nil {
		t.Fatal(rotated, err)
	}
	w.WriteString("fourth\n")
	out.Reset()
	if err := vmLogs(context.Background(), f, LogOptions{Tail: "all", Timestamps: true}, lp); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != 4 || got[0] != strings.TrimSuffix(strings.Split(want, "\n")[0], "\n") || !strings.HasSuffix(got[3], " fourth") {
		t.Errorf("logs -t after rotation:\n%s", out.String())
	}
}
