//go:build linux

package executor

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/foldup/foldup/containers"
	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/spec"
	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/supervisor"
	"github.com/foldup/foldup/vmimage"
)

// Options say where a project's state lives and how to reach the engine.
// The zero value is the system's defaults.
type Options struct {
	StateRoot  string // default DefaultStateRoot
	RunRoot    string // default DefaultRunRoot
	ImageCache string // downloaded VM images; default vmimage.DefaultCacheDir()
	DockerHost string // default DOCKER_HOST, else the engine's default socket
	// Host is the network namespace to make the segment in (nil: the
	// calling process's).
	Host *network.Host
	// Parallel, when > 0, bounds how many of up's steps run at once
	// (--parallel).
	Parallel int
	// DryRun: down and the lifecycle verbs (stop, start, restart, kill,
	// pause, unpause, rm) report what they would act on and change
	// nothing (--dry-run).
	DryRun bool
	// SupervisorCommand is how to run foldup, for `up -d` to start a
	// detached supervisor as `<cmd> supervise ...`. Default: this
	// executable.
	SupervisorCommand []string
	// Events receives what up, down and the verbs do, one event at a
	// time (internal/progress draws them); nil discards them.
	Events func(Event)
	// Out receives what the engine's builder and image downloads print;
	// nil discards it.
	Out    io.Writer
	Logger *slog.Logger
	// Engine is the container engine's client; nil: one dialled at
	// DockerHost when first needed.
	Engine containers.Engine
}

func (o Options) withDefaults() Options {
	o.StateRoot = cmp.Or(o.StateRoot, DefaultStateRoot)
	o.RunRoot = cmp.Or(o.RunRoot, DefaultRunRoot)
	if o.ImageCache == "" {
		o.ImageCache = vmimage.DefaultCacheDir()
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.SupervisorCommand == nil {
		if exe, err := os.Executable(); err == nil {
			o.SupervisorCommand = []string{exe}
		}
	}
	return o
}

func (o Options) dirs(project string) state.Dirs {
	return state.For(o.StateRoot, o.RunRoot, project)
}

// Default roots of a project's state and of its run-time files.
const (
	DefaultStateRoot = state.DefaultStateRoot
	DefaultRunRoot   = state.DefaultRunRoot
)

// Executor runs up, down and the verbs with one set of options and one
// engine client.
type Executor struct {
	o Options

	mu     sync.Mutex
	eng    containers.Engine
	dialed bool // eng is ours to close
}

// New returns an executor with options o, the system's defaults where o
// has none.
func New(o Options) *Executor { return &Executor{o: o.withDefaults(), eng: o.Engine} }

// engine returns the engine's client: Options.Engine, or one dialled the
// first time it is needed.
func (x *Executor) engine() (containers.Engine, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.eng == nil {
		eng, err := containers.Dial(x.o.DockerHost)
		if err != nil {
			return nil, err
		}
		x.eng, x.dialed = eng, true
	}
	return x.eng, nil
}

// Close closes the engine client the executor dialled.
func (x *Executor) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.dialed {
		x.dialed = false
		return x.eng.Close()
	}
	return nil
}

// Warning is something in the file that foldup does not act on, or a
// choice it made for the user (the KVM fallback): spec's.
type Warning = spec.Warning

// Supervise runs the project's supervisor in this process until ctx ends
// or a client asks it to stop (`foldup supervise`, and a foreground up).
// ready, if not nil, is called once it answers on its socket.
func (x *Executor) Supervise(ctx context.Context, project string, ready func()) error {
	o := x.o
	return supervisor.Run(ctx, supervisor.Config{Project: project, Dirs: o.dirs(project), Host: o.Host, Logger: o.Logger, DockerHost: o.DockerHost}, ready)
}

// spawnSupervisor starts a detached supervisor for the project and waits
// until it answers.
func spawnSupervisor(ctx context.Context, o Options, project string) error {
	return supervisor.Spawn(ctx, supervisor.SpawnConfig{Project: project, Command: o.SupervisorCommand,
		StateRoot: o.StateRoot, RunRoot: o.RunRoot, DockerHost: o.DockerHost})
}
