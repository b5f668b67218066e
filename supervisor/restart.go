//go:build linux

package supervisor

import (
	"context"
	"strconv"
	"time"

	"github.com/foldup/foldup/qemu"
	"github.com/foldup/foldup/vm"
)

// The supervisor follows each VM's qemu on its events socket, a QMP
// monitor of its own, and learns from the last SHUTDOWN event how qemu
// ended: the guest powered off, a signal, a quit, or nothing at all (a
// crash, or SIGKILL). It applies the VM's restart policy then, with
// Docker's rules and backoff. qemu does not belong to the supervisor: a
// supervisor started again while VMs run finds them through the same
// sockets and follows them from there, killing none.

// Restart backoff, as Docker's: 100 ms, doubling up to a minute, back to
// the start after a run of 10 s.
const (
	restartFirst = 100 * time.Millisecond
	restartMax   = time.Minute
	restartReset = 10 * time.Second
)

// watchVM follows one VM until ctx ends.
func (s *server) watchVM(ctx context.Context, name string, recChanged <-chan struct{}) {
	f := vm.For(s.dirs, name)
	delay := restartFirst
	for ctx.Err() == nil {
		rec, err := vm.ReadRecord(f)
		if err != nil {
			waitSignal(ctx, recChanged, 0) // until up writes it
			continue
		}
		if pid := vm.Running(f); pid != 0 {
			if pid != rec.PID {
				// up or start is starting it and has not written its
				// record yet.
				sleepCtx(ctx, 100*time.Millisecond)
				continue
			}
			code, how := followVM(ctx, f, pid)
			if ctx.Err() != nil {
				return
			}
			if rec := s.recordExit(f, pid, code, how); rec != nil {
				s.log.Info("vm exited", "vm", name, "exit", how, "code", code, "stopped", rec.Stopped)
				if rec.Exited.Sub(rec.Started) >= restartReset {
					delay = restartFirst
				}
			}
			continue
		}
		if rec.Exited.IsZero() && !rec.Stopped {
			// It ended while no supervisor watched: how is unknown.
			if rec = s.recordExit(f, rec.PID, vm.ExitUnknown, "unknown"); rec == nil {
				continue
			}
		}
		if !vm.WantsRestart(rec) {
			waitSignal(ctx, recChanged, 0) // until start or up starts it
			continue
		}
		if !sleepCtx(ctx, delay) {
			return
		}
		delay = min(2*delay, restartMax)
		s.restartVM(ctx, f, rec.PID)
	}
}

// recordExit notes in the VM's record how its qemu at pid ended, under
// the VM's lock, unless up or start has since put another qemu there. It
// returns the record written, or nil.
func (s *server) recordExit(f vm.Files, pid, code int, how string) *vm.Record {
	unlock, err := vm.Lock(f)
	if err != nil {
		s.log.Error("vm exit", "err", err)
		return nil
	}
	defer unlock()
	rec, err := vm.ReadRecord(f)
	if err != nil || rec.PID != pid || vm.Running(f) != 0 {
		return nil
	}
	if !rec.Exited.IsZero() {
		return rec // stop recorded it, knowing what QMP's quit does not say (vm.StopQemu)
	}
	rec.Exited, rec.ExitCode, rec.Exit = time.Now(), code, how
	if err := vm.WriteRecord(f, rec); err != nil {
		s.log.Error("vm exit", "err", err)
		return nil
	}
	vm.LogEvent(f, "die", map[string]string{"exitCode": strconv.Itoa(code), "exit": how})
	return rec
}

// restartVM starts a VM's qemu again by its restart policy, unless, under
// the VM's lock, someone else has acted meanwhile.
func (s *server) restartVM(ctx context.Context, f vm.Files, oldPID int) {
	unlock, err := vm.Lock(f)
	if err != nil {
		s.log.Error("vm restart", "err", err)
		return
	}
	defer unlock()
	rec, err := vm.ReadRecord(f)
	if err != nil || rec.PID != oldPID || vm.Running(f) != 0 || !vm.WantsRestart(rec) {
		return
	}
	rec.Restarts++
	name := rec.Member
	if err := vm.Start(ctx, s.host, f, rec); err != nil {
		s.log.Error("vm restart failed", "vm", name, "err", err)
		rec.Exited, rec.Exit = time.Now(), "restart failed: "+err.Error()
		vm.WriteRecord(f, rec)
		return
	}
	s.log.Info("vm restarted", "vm", name, "pid", rec.PID, "restarts", rec.Restarts)
}

// followVM waits until the qemu at pid has ended and says how, from the
// last SHUTDOWN event its events socket delivered.
func followVM(ctx context.Context, f vm.Files, pid int) (int, string) {
	reason := ""
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	q, err := qemu.DialQMP(dctx, f.Events())
	cancel()
	if err == nil {
		defer q.Close()
	events:
		for {
			select {
			case <-ctx.Done():
				return 0, ""
			case ev, ok := <-q.Events():
				if !ok {
					break events
				}
				if ev.Event == "SHUTDOWN" {
					reason = ev.Reason()
				}
			}
		}
	}
	// The connection ends as qemu exits, or could not be made (an older
	// qemu without the socket): wait for the process itself.
	for vm.Running(f) == pid {
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return 0, ""
		}
	}
	switch reason {
	case "guest-shutdown":
		return vm.ExitGuest, reason
	case "host-qmp-quit":
		return vm.ExitQuit, reason
	case "host-signal":
		return vm.ExitSignal, reason
	case "guest-panic":
		return vm.ExitPanic, reason
	case "":
		return vm.ExitCrashed, "crashed"
	}
	return vm.ExitCrashed, reason
}

// sleepCtx sleeps for d, or until ctx ends; it reports whether ctx lasts.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
