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
