package main

import (
	"context"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

// forceOnInterrupt, once set, makes the next SIGINT or SIGTERM exit at
// once with 130: up in the foreground sets it as it starts stopping the
// project ("press Ctrl+C again to force").
var forceOnInterrupt atomic.Bool

// interruptible returns a context that the first SIGINT or SIGTERM ends,
// as docker compose takes them: the command then stops, or undoes, what
// it was doing. Later ones are ignored until forceOnInterrupt is set.
//
// Every signal comes through the one channel read here, so none counts
// twice: with a second channel beside signal.NotifyContext's, the first
// Ctrl-C reached both, in either order, and could count as the second.
func interruptible() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		for range sigs {
			if forceOnInterrupt.Load() {
				os.Exit(130)
			}
			cancel()
		}
	}()
	return ctx
}
