//go:build linux

package executor

import (
	"bytes"
	"context"
	"fmt"
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

// TestLogsTimestamps: logs -t shows each console line with the time of
// its stamp, and the rotated log's lines too, before the new log's.
func TestLogsTimestamps(t *testing.T) {
	dir := t.TempDir()
	f := vm.Files{Run: dir, State: dir}
	t1 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	t2 := t1.Add(1500 * time.Millisecond)
	if err := os.WriteFile(f.ConsoleLog(), []byte("first\r\nsecond\nthird\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	times := fmt.Sprintf("0 %d\n%d %d\n", t1.UnixNano(), len("first\r\nsecond\n"), t2.UnixNano())
	if err := os.WriteFile(f.ConsoleTimes(), []byte(times), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	lp := &linePrefixer{w: &out, mu: new(sync.Mutex)}
	if err := vmLogs(context.Background(), f, LogOptions{Tail: "all", Timestamps: true}, lp); err != nil {
		t.Fatal(err)
	}
	want := t1.Format(stampFormat) + " first\n" + t1.Format(stampFormat) + " second\n" + t2.Format(stampFormat) + " third\n"
	if out.String() != want {
		t.Errorf("logs -t:\n%s\nwant:\n%s", out.String(), want)
	}

	// Rotated: the stamps go along with the lines.
	if rotated, err := vm.RotateConsole(f, 1); !rotated || err != nil {
		t.Fatal(rotated, err)
	}
	w, err := os.OpenFile(f.ConsoleLog(), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("fourth\n")
	w.Close()
	out.Reset()
	if err := vmLogs(context.Background(), f, LogOptions{Tail: "all", Timestamps: true}, lp); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != 4 || got[0] != strings.TrimSuffix(strings.Split(want, "\n")[0], "\n") || !strings.HasSuffix(got[3], " fourth") {
		t.Errorf("logs -t after rotation:\n%s", out.String())
	}
}

// TestLogsFollowCRLF: logs -f of a console written with \r\n (as a serial
// console is) shows each line once, then what comes next, from where the
// first read ended, not from the sum of the lines' lengths without \r.
func TestLogsFollowCRLF(t *testing.T) {
	dir := t.TempDir()
	f := vm.Files{Run: dir, State: dir}
	if err := os.WriteFile(f.ConsoleLog(), []byte("one\r\ntwo\r\nthree\r\nfour\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out bytes.Buffer
	lp := &linePrefixer{w: lockedWriter{&mu, &out}, mu: new(sync.Mutex)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- vmLogs(ctx, f, LogOptions{Tail: "all", Follow: true}, lp) }()
	time.Sleep(300 * time.Millisecond)
	w, err := os.OpenFile(f.ConsoleLog(), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("five\r\n")
	w.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := out.String()
		mu.Unlock()
		if strings.Contains(got, "five") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a few more polls: nothing else may come
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "one\ntwo\nthree\nfour\nfive\n"; got != want {
		t.Errorf("logs -f = %q, want %q", got, want)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestLogsSinceUntil: logs --since and --until keep a VM's console lines
// by their stamps' times.
func TestLogsSinceUntil(t *testing.T) {
	dir := t.TempDir()
	f := vm.Files{Run: dir, State: dir}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	os.WriteFile(f.ConsoleLog(), []byte("one\ntwo\nthree\n"), 0o600)
	os.WriteFile(f.ConsoleTimes(), []byte(fmt.Sprintf("0 %d\n4 %d\n8 %d\n", t0.UnixNano(), t0.Add(time.Minute).UnixNano(), t0.Add(2*time.Minute).UnixNano())), 0o600)
	for _, c := range []struct {
		since, until time.Time
		want         string
	}{
		{time.Time{}, time.Time{}, "one\ntwo\nthree\n"},
		{t0.Add(30 * time.Second), time.Time{}, "two\nthree\n"},
		{time.Time{}, t0.Add(90 * time.Second), "one\ntwo\n"},
		{t0.Add(30 * time.Second), t0.Add(90 * time.Second), "two\n"},
	} {
		var out bytes.Buffer
		lp := &linePrefixer{w: &out, mu: new(sync.Mutex)}
		// -f with --until ends: nothing written from now on is before it.
		follow := !c.until.IsZero()
		if err := vmLogs(t.Context(), f, LogOptions{Tail: "all", Since: c.since, Until: c.until, Follow: follow}, lp); err != nil {
			t.Fatal(err)
		}
		if out.String() != c.want {
			t.Errorf("since %v until %v: %q, want %q", c.since, c.until, out.String(), c.want)
		}
	}
}

func TestParseLogTime(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"10m":                  now.Add(-10 * time.Minute),
		"2026-12-05T11:00:00Z": time.Date(2026, 12, 5, 11, 0, 0, 0, time.UTC),
		"2026-12-04":           time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC),
		"1796472000":           time.Unix(1796472000, 0),
	} {
		if got, err := ParseLogTime(in, now); err != nil || !got.Equal(want) {
			t.Errorf("ParseLogTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseLogTime("yesterday", now); err == nil {
		t.Error("ParseLogTime(yesterday): no error")
	}
}
