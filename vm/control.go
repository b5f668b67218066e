//go:build linux

package vm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/foldup/foldup/qemu"
	"github.com/foldup/foldup/state"
	"golang.org/x/sys/unix"
)

// Kill sends a running VM's qemu a signal, as docker kill sends one to a
// container: SIGKILL turns the VM off at once (QMP quit, then SIGKILL),
// recorded as exit 137; another signal goes to qemu as it is (SIGTERM and
// SIGINT end it, which the supervisor records as 143). Either of those
// marks the VM stopped, so that its restart policy leaves it off, as
// Docker does for a container killed by hand. It reports whether a qemu
// ran.
func Kill(ctx context.Context, d state.Dirs, name string, sig syscall.Signal) (bool, error) {
	f := For(d, name)
	unlock, err := lockMade(f)
	if unlock == nil {
		return false, err
	}
	defer unlock()
	pid := Running(f)
	if pid == 0 {
		return false, nil
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM || sig == syscall.SIGINT {
		if err := MarkStopped(f); err != nil {
			return false, err
		}
	}
	LogEvent(f, "kill", map[string]string{"signal": unix.SignalName(sig)})
	if sig == syscall.SIGKILL {
		err := StopQemu(ctx, f, pid, 0)
		os.Remove(f.PidFile())
		return true, err
	}
	return true, syscall.Kill(pid, sig)
}

// Pause freezes a running VM's CPUs (QMP stop), as docker pause freezes a
// container; Resume lets them run again (QMP cont). Each reports whether
// it changed anything.
func Pause(ctx context.Context, d state.Dirs, name string) (bool, error) {
	return setRunState(ctx, d, name, "stop", "paused")
}

func Resume(ctx context.Context, d state.Dirs, name string) (bool, error) {
	return setRunState(ctx, d, name, "cont", "running")
}

func setRunState(ctx context.Context, d state.Dirs, name, command, want string) (bool, error) {
	f := For(d, name)
	if Running(f) == 0 {
		return false, fmt.Errorf("vm %s is not running", name)
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	q, err := qemu.DialQMP(dctx, f.QMP())
	if err != nil {
		return false, fmt.Errorf("vm %s: %w", name, err)
	}
	defer q.Close()
	if st, err := q.Status(dctx); err == nil && st == want {
		return false, nil
	}
	if err := q.Execute(dctx, command, nil, nil); err != nil {
		return true, err
	}
	LogEvent(f, map[string]string{"stop": "pause", "cont": "unpause"}[command], nil)
	return true, nil
}

// Paused reports whether a running VM's CPUs are stopped by Pause (QMP
// query-status: paused).
func Paused(f Files) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	q, err := qemu.DialQMP(ctx, f.QMP())
	if err != nil {
		return false
	}
	defer q.Close()
	st, err := q.Status(ctx)
	return err == nil && st == "paused"
}

// Remove removes a stopped VM's record, console logs and runtime files, as
// docker rm removes a container, so that ps -a no longer lists it; its
// disk stays unless disk, as a named volume stays. It reports whether
// there was anything to remove.
func Remove(d state.Dirs, name string, disk bool) (bool, error) {
	f := For(d, name)
	if _, err := os.Stat(f.RecordFile()); err != nil {
		return false, nil
	}
	unlock, err := Lock(f)
	if err != nil {
		return false, err
	}
	defer unlock()
	if Running(f) != 0 {
		return false, fmt.Errorf("vm %s is running: stop it first (rm --stop)", name)
	}
	if disk {
		return true, os.RemoveAll(f.State)
	}
	for _, p := range []string{f.RecordFile(), f.ConsoleLog(), f.ConsoleLog() + ".1", f.ConsoleTimes(), f.ConsoleTimes() + ".1", f.QemuLog()} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return true, err
		}
	}
	return true, os.RemoveAll(f.Run)
}

// EventsFile is where a VM's lifecycle events go, one JSON object a line
// (foldup events tails it).
func (f Files) EventsFile() string { return filepath.Join(f.Run, "events.jsonl") }

// VMEvent is one line of a VM's events file.
type VMEvent struct {
	Time       time.Time         `json:"time"`
	Action     string            `json:"action"` // start, pause, unpause, kill, die, stop
	Attributes map[string]string `json:"attributes,omitempty"`
}

// LogEvent appends a lifecycle event to the VM's events file, written by
// whatever caused it (start, stop, pause, the supervisor seeing qemu end),
// so that none is missed however short the state it began.
func LogEvent(f Files, action string, attrs map[string]string) {
	b, err := json.Marshal(VMEvent{Time: time.Now(), Action: action, Attributes: attrs})
	if err != nil {
		return
	}
	w, err := os.OpenFile(f.EventsFile(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer w.Close()
	w.Write(append(b, '\n'))
}
