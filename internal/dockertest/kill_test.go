package dockertest

import (
	"errors"
	"os/exec"
	"syscall"
	"testing"
)

// TestKillCommandsWith: a process whose command line names a path in the
// engine's directory is killed; one naming a directory whose name only
// begins with the engine's is left alone.
func TestKillCommandsWith(t *testing.T) {
	dir := t.TempDir()
	named := exec.Command("sleep", "60")
	named.Args[0] = dir + "/conmon" // what ps shows; the binary is still sleep
	other := exec.Command("sleep", "60")
	other.Args[0] = dir + "x/conmon"
	for _, c := range []*exec.Cmd{named, other} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	if err := killCommandsWith(dir + "/"); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := named.Wait(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("the process naming the directory: %v, want killed", err)
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the other process: %v, want it still running", err)
	}
}
