//go:build linux

package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/foldup/foldup/executor"
	"github.com/foldup/foldup/internal/term"
	"github.com/spf13/cobra"
)

// foreground streams the project's logs until Ctrl-C (or SIGTERM), until
// every container has ended, or, with fo.abort, until one member has; then
// it stops the project's containers and VMs and the supervisor this
// process runs. With fo.exitCodeFrom it exits with that service's code.
func foreground(ctx context.Context, cmd *cobra.Command, project string, res *executor.Result, x *executor.Executor, fo foregroundOptions) error {
	logCtx, stopLogs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLogs()
	lo := executor.LogOptions{Follow: true, NoColor: fo.noColor || !fo.colors(term.Is(cmd.OutOrStdout())), NoPrefix: fo.noPrefix, Timestamps: fo.timestamps}
	if len(fo.attach) > 0 || len(fo.noAttach) > 0 {
		for _, m := range res.Plan.Members {
			attached := len(fo.attach) == 0 || slices.Contains(fo.attach, m.Service) || slices.Contains(fo.attach, m.Name)
			if attached && !slices.Contains(fo.noAttach, m.Service) && !slices.Contains(fo.noAttach, m.Name) {
				lo.Members = append(lo.Members, m.Name)
			}
		}
	}
	logsDone := make(chan error, 1)
	go func() {
		if len(lo.Members) == 0 && (len(fo.attach) > 0 || len(fo.noAttach) > 0) {
			<-logCtx.Done() // nothing attached
			logsDone <- nil
			return
		}
		logsDone <- x.Logs(logCtx, project, lo, cmd.OutOrStdout())
	}()
	var supDone <-chan error
	if res.Supervisor != nil {
		supDone = res.Supervisor.Done()
	}
	exited := make(chan string, 1)
	if fo.abort {
		go watchExit(logCtx, x, project, exited)
	}
	select {
	case <-ctx.Done(): // Ctrl-C or SIGTERM (see interruptible)
	case err := <-supDone:
		return fmt.Errorf("the supervisor stopped: %v", err)
	case name := <-exited:
		fmt.Fprintf(cmd.ErrOrStderr(), "%s exited: aborting\n", name)
	case err := <-logsDone:
		// Every container has ended: as Compose, stop there.
		if err != nil {
			return err
		}
	}
	fmt.Fprintln(cmd.ErrOrStderr(), "Gracefully stopping... (press Ctrl+C again to force)")
	forceOnInterrupt.Store(true)
	stopLogs()
	err := x.Stop(context.WithoutCancel(ctx), project, nil, fo.timeout)
	if res.Supervisor != nil {
		res.Supervisor.Stop()
	}
	if err != nil || fo.exitCodeFrom == "" {
		return err
	}
	list, err := x.Ps(context.WithoutCancel(ctx), project, true)
	if err != nil {
		return err
	}
	for _, m := range list {
		if m.Service == fo.exitCodeFrom || m.Member == fo.exitCodeFrom {
			if m.ExitCode != 0 {
				return exitError(m.ExitCode)
			}
			return nil
		}
	}
	return fmt.Errorf("--exit-code-from: %s not found", fo.exitCodeFrom)
}

// watchExit sends the name of the first of the project's containers and
// VMs seen stopped (up --abort-on-container-exit), looking twice a second.
func watchExit(ctx context.Context, x *executor.Executor, project string, exited chan<- string) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		list, err := x.Ps(ctx, project, true)
		if err != nil {
			continue
		}
		for _, m := range list {
			if m.State == "exited" || m.State == "dead" {
				exited <- m.Name
				return
			}
		}
	}
}
