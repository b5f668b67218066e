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

	"github.com/foldup/foldup/state"
)

func TestWantsRestart(t *testing.T) {
	exited := time.Now()
	for _, c := range []struct {
		policy   string
		code     int
		restarts int
		stopped  bool
		want     bool
	}{
		{"", 137, 0, false, false},
		{"no", 137, 0, false, false},
		{"always", 0, 5, false, true},
		{"always", 137, 0, true, false}, // stopped by a user
		{"unless-stopped", 0, 0, false, true},
		{"unless-stopped", 0, 0, true, false},
		{"on-failure", 0, 0, false, false},
		{"on-failure", 137, 9, false, true},
		{"on-failure:2", 137, 1, false, true},
		{"on-failure:2", 137, 2, false, false},
		{"on-failure", exitUnknown, 0, false, true},
	} {
		rec := &vmRecord{Restart: c.policy, ExitCode: c.code, Restarts: c.restarts, Stopped: c.stopped, Exited: exited}
		if got := wantsRestart(rec); got != c.want {
			t.Errorf("restart %q, exit %d, %d restarts, stopped %v: wantsRestart = %v", c.policy, c.code, c.restarts, c.stopped, got)
		}
	}
	if wantsRestart(&vmRecord{Restart: "always"}) {
		t.Error("a VM that has not exited wants a restart")
	}
}

// TestRotateConsole rotates a log that a writer holds open for appending,
// as qemu holds the console log: what it writes next starts the new log,
// the old one is console.log.1, and logs shows both in order.
func TestRotateConsole(t *testing.T) {
	dir := t.TempDir()
	f := vmFiles{run: dir, state: dir}
	w, err := os.OpenFile(f.consoleLog(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteString("line 1\nline 2\n")
	if rotated, err := rotateConsole(f, 100); rotated || err != nil {
		t.Fatalf("rotated a small log: %v %v", rotated, err)
	}
	if rotated, err := rotateConsole(f, 10); !rotated || err != nil {
		t.Fatalf("rotateConsole = %v, %v", rotated, err)
	}
	w.WriteString("line 3\n")
	if b, _ := os.ReadFile(f.consoleLog()); string(b) != "line 3\n" {
		t.Errorf("console.log after rotation = %q", b)
	}
	if b, _ := os.ReadFile(f.consoleLog() + ".1"); string(b) != "line 1\nline 2\n" {
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
	f := vmFiles{run: dir, state: dir}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	sig := newFileSignals()
	written := sig.subscribe("console.log")
	go sig.run(ctx, dir, time.Second)
	go func() { defer close(done); keepConsole(ctx, f, written, t.Logf) }()
	time.Sleep(2 * stampEvery) // no log yet: keepConsole starts from 0
	w, err := os.OpenFile(f.consoleLog(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
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

	lines, err := readConsole(f.consoleLog(), f.consoleTimes())
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 || lines[0].text != "first\n" || lines[2].text != "third\n" {
		t.Fatalf("lines = %+v", lines)
	}
	for i, want := range []time.Time{t1, t1, t2} {
		if d := lines[i].at.Sub(want); d < 0 || d > 2*stampEvery+100*time.Millisecond {
			t.Errorf("line %d stamped %v after it was written, want within %v", i, d, 2*stampEvery)
		}
	}
	var out bytes.Buffer
	lp := &linePrefixer{w: &out, mu: new(sync.Mutex)}
	if err := vmLogs(context.Background(), f, LogOptions{Tail: "all", Timestamps: true}, lp); err != nil {
		t.Fatal(err)
	}
	want := lines[0].at.UTC().Format(stampFormat) + " first\n" + lines[1].at.UTC().Format(stampFormat) + " second\n" + lines[2].at.UTC().Format(stampFormat) + " third\n"
	if out.String() != want {
		t.Errorf("logs -t:\n%s\nwant:\n%s", out.String(), want)
	}

	// Rotated: the stamps go along with the lines.
	if rotated, err := rotateConsole(f, 1); !rotated || err != nil {
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

// TestPassFile: a file qemu gets as a descriptor is one it will reopen
// through /proc/self/fd, so one others cannot read is refused up front,
// with what to do, rather than by qemu.
func TestPassFile(t *testing.T) {
	dir := t.TempDir()
	var passed []*os.File
	next := func(f *os.File) int { passed = append(passed, f); return 2 + len(passed) }
	defer func() {
		for _, f := range passed {
			f.Close()
		}
	}()
	open := filepath.Join(dir, "vmlinuz")
	os.WriteFile(open, []byte("k"), 0o644)
	if got, err := passFile(open, next); err != nil || got != "/proc/self/fd/3" {
		t.Errorf("passFile(0644) = %q, %v", got, err)
	}
	private := filepath.Join(dir, "initrd")
	os.WriteFile(private, []byte("i"), 0o600)
	if _, err := passFile(private, next); err == nil || !strings.Contains(err.Error(), "chmod o+r") {
		t.Errorf("passFile(0600) = %v, want an error saying to chmod o+r", err)
	}
	if len(passed) != 1 {
		t.Errorf("%d descriptors passed, want 1", len(passed))
	}
}

// TestStopUnrecorded: a stop that cannot record that the user stopped the
// VM (its record unreadable here) fails, and leaves the VM as it was,
// rather than stop it and leave the supervisor to restart it; a VM never
// started has nothing to record and nothing to stop.
func TestStopUnrecorded(t *testing.T) {
	dir := t.TempDir()
	d := state.Dirs{State: filepath.Join(dir, "state"), Run: filepath.Join(dir, "run")}
	f := vmFilesOf(d, "vm1")
	for _, p := range []string{f.state, f.run} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if stopped, err := stopVM(t.Context(), d, "vm1", 0); stopped || err != nil {
		t.Errorf("a VM with no record: stopped %v, %v; want nothing done", stopped, err)
	}
	if err := os.WriteFile(f.record(), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := stopVM(t.Context(), d, "vm1", 0); err == nil {
		t.Error("stopVM succeeded though it could not record the stop")
	}
}
