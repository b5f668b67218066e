//go:build linux

package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/systest"
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
		{"on-failure", ExitUnknown, 0, false, true},
	} {
		rec := &Record{Restart: c.policy, ExitCode: c.code, Restarts: c.restarts, Stopped: c.stopped, Exited: exited}
		if got := WantsRestart(rec); got != c.want {
			t.Errorf("restart %q, exit %d, %d restarts, stopped %v: WantsRestart = %v", c.policy, c.code, c.restarts, c.stopped, got)
		}
	}
	if WantsRestart(&Record{Restart: "always"}) {
		t.Error("a VM that has not exited wants a restart")
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
	f := For(d, "vm1")
	for _, p := range []string{f.State, f.Run} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if stopped, err := Stop(t.Context(), d, "vm1", 0); stopped || err != nil {
		t.Errorf("a VM with no record: stopped %v, %v; want nothing done", stopped, err)
	}
	if err := os.WriteFile(f.RecordFile(), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Stop(t.Context(), d, "vm1", 0); err == nil {
		t.Error("Stop succeeded though it could not record the stop")
	}
}

// TestWaitCompleted: a VM has completed successfully once its last qemu
// ended with exit 0 (the guest powered off), as the supervisor records
// it; another exit is an error that says how it ended; a VM the user
// stopped never completes; one whose end is not recorded yet is waited
// for.
func TestWaitCompleted(t *testing.T) {
	dir := t.TempDir()
	f := Files{Run: dir, State: dir}
	write := func(rec Record) {
		t.Helper()
		if err := WriteRecord(f, &rec); err != nil {
			t.Fatal(err)
		}
	}
	const cond = "service_completed_successfully"
	write(Record{Member: "job", Exited: time.Now(), ExitCode: ExitGuest, Exit: "guest-shutdown"})
	if err := Wait(t.Context(), f, "job", cond); err != nil {
		t.Errorf("powered off: %v", err)
	}
	write(Record{Member: "job", Exited: time.Now(), ExitCode: ExitCrashed, Exit: "crashed"})
	if err := Wait(t.Context(), f, "job", cond); err == nil || !strings.Contains(err.Error(), "exited with code 137 (crashed)") {
		t.Errorf("crashed: %v", err)
	}
	write(Record{Member: "job", Stopped: true})
	if err := Wait(t.Context(), f, "job", cond); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("stopped: %v", err)
	}
	write(Record{Member: "job"})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := Wait(ctx, f, "job", cond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ending, not recorded yet: %v, want to be waiting still", err)
	}
}

// TestOverlayKept: the disk is made once over its image; made again over
// the same image it is kept; over another image (the file's image:
// changed) it is kept too, and the image it was made from is returned, for
// up to say so.
func TestOverlayKept(t *testing.T) {
	systest.Command(t, "qemu-img")
	dir := t.TempDir()
	base1, base2, disk := filepath.Join(dir, "one.img"), filepath.Join(dir, "two.img"), filepath.Join(dir, "disk.qcow2")
	for _, b := range []string{base1, base2} {
		if err := os.WriteFile(b, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	uid, gid := os.Getuid(), os.Getgid()
	if prev, err := Overlay(t.Context(), base1, disk, uid, gid); err != nil || prev != "" {
		t.Fatalf("first overlay: %q, %v", prev, err)
	}
	st, _ := os.Stat(disk)
	if prev, err := Overlay(t.Context(), base1, disk, uid, gid); err != nil || prev != "" {
		t.Errorf("the same image again: %q, %v; want the disk kept, nothing said", prev, err)
	}
	if prev, err := Overlay(t.Context(), base2, disk, uid, gid); err != nil || prev != base1 {
		t.Errorf("another image: %q, %v; want the disk kept and %s named", prev, err, base1)
	}
	if again, _ := os.Stat(disk); !os.SameFile(st, again) {
		t.Error("the disk was made again")
	}
}

// TestRemove: rm of a stopped VM removes its record and console logs and
// keeps its disk; with disk, everything of the VM.
func TestRemove(t *testing.T) {
	d := state.For(t.TempDir(), t.TempDir(), "p")
	f := For(d, "v")
	for _, dir := range []string{f.Run, f.State} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := Remove(d, "v", false); ok || err != nil {
		t.Fatalf("Remove with no record = %v, %v; want nothing done", ok, err)
	}
	for _, p := range []string{f.RecordFile(), f.ConsoleLog(), f.Disk()} {
		if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := Remove(d, "v", false); !ok || err != nil {
		t.Fatalf("Remove = %v, %v", ok, err)
	}
	for _, p := range []string{f.RecordFile(), f.ConsoleLog()} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is left", p)
		}
	}
	if _, err := os.Stat(f.Disk()); err != nil {
		t.Errorf("the disk went without -v: %v", err)
	}
	os.WriteFile(f.RecordFile(), []byte("{}"), 0o644)
	if ok, err := Remove(d, "v", true); !ok || err != nil {
		t.Fatalf("Remove -v = %v, %v", ok, err)
	}
	if _, err := os.Stat(f.State); err == nil {
		t.Error("the VM's state is left after Remove -v")
	}
}
