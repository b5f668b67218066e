//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/foldup/foldup/state"
)

// SpawnConfig says how to start a detached supervisor.
type SpawnConfig struct {
	Project string
	// Command is how to run foldup: the supervisor is
	// `<Command> supervise --project-name P --state-root S --run-root R`.
	Command            []string
	StateRoot, RunRoot string
	DockerHost         string
}

// Spawn starts a detached supervisor (its own session, output to the
// project's supervisor.log) and waits until it answers.
func Spawn(ctx context.Context, o SpawnConfig) error {
	project := o.Project
	d := state.For(o.StateRoot, o.RunRoot, project)
	if len(o.Command) == 0 {
		return errors.New("no supervisor command: this program cannot start a detached supervisor")
	}
	logf, err := os.OpenFile(d.LogFile(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := append(slices.Clone(o.Command[1:]), "supervise", "--project-name", project,
		"--state-root", o.StateRoot, "--run-root", o.RunRoot)
	cmd := &exec.Cmd{
		Path:        o.Command[0],
		Args:        append([]string{"foldup"}, args...),
		Stdout:      logf,
		Stderr:      logf,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if o.DockerHost != "" {
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+o.DockerHost)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the supervisor: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c := NewClient(d)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Status(ctx); err == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the supervisor exited at start (%v); its log is %s:\n%s", err, d.LogFile(), tail(d.LogFile(), 20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("the supervisor did not answer in 15 s; its log is %s", d.LogFile())
}

func tail(path string, lines int) string {
	b, _ := os.ReadFile(path)
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
