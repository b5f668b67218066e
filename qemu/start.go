package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Start runs qemu for c detached from the caller (its own session, so it
// outlives the foldup command that started it), as the user cred names
// (nil: the caller's), its stdout and stderr appended to logFile, and
// waits until its QMP socket answers. The files qemu opens must be
// readable (and the run files' directory writable) by that user, and its
// taps owned by it, as libvirt arranges for its qemu user. It returns
// qemu's pid; an exit before QMP answers is an error carrying qemu's
// last words. files are passed to qemu as descriptors 3, 4, ... (for
// paths such as /proc/self/fd/3 in c).
func Start(ctx context.Context, c Config, cred *syscall.Credential, files []*os.File, logFile string) (int, error) {
	args := Args(c)
	bin, err := exec.LookPath(args[0])
	if err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	os.Remove(c.QMP)
	os.Remove(c.Console)
	cmd := &exec.Cmd{
		Path: bin, Args: args, Stdout: logf, Stderr: logf, ExtraFiles: files,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true, Credential: cred},
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", args[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		if _, err := os.Stat(c.QMP); err == nil {
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			q, err := DialQMP(dctx, c.QMP)
			cancel()
			if err == nil {
				q.Close()
				return cmd.Process.Pid, nil
			}
		}
		select {
		case err := <-exited:
			return 0, fmt.Errorf("qemu exited at start (%w): %s", err, lastLines(logFile, 5))
		case <-ctx.Done():
			cmd.Process.Kill()
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// ErrNotRunning is returned by Stop when no qemu runs at the pid.
var ErrNotRunning = errors.New("qemu is not running")

// Stop stops the qemu whose QMP socket is qmpPath and whose pid is pid,
// the way a guest expects: the ACPI power button, up to grace for the
// guest to power off, then QMP quit, then SIGKILL. It reports whether the
// guest powered off by itself within grace (false: it was forced off).
func Stop(ctx context.Context, qmpPath string, pid int, grace time.Duration) (bool, error) {
	if pid <= 0 || syscall.Kill(pid, 0) != nil || isZombie(pid) {
		return false, ErrNotRunning
	}
	gone := func(limit time.Duration) bool {
		deadline := time.Now().Add(limit)
		for {
			if syscall.Kill(pid, 0) != nil || isZombie(pid) {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	q, err := DialQMP(dctx, qmpPath)
	cancel()
	if err == nil {
		defer q.Close()
		if grace > 0 && q.Powerdown(ctx) == nil && gone(grace) {
			return true, nil
		}
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		q.Quit(qctx)
		cancel()
		if gone(3 * time.Second) {
			return false, nil
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	if !gone(5 * time.Second) {
		return false, fmt.Errorf("qemu %d survived SIGKILL", pid)
	}
	return false, nil
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z'
	}
	return false
}
