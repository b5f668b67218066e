//go:build linux

package runtime

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"os"

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

func (o Options) docker() (containers.Engine, error) { return containers.Dial(o.DockerHost) }

// Warning is something in the file that foldup does not act on, or a
// choice it made for the user (the KVM fallback): spec's.
type Warning = spec.Warning

// Supervise runs the project's supervisor in this process until ctx ends
// or a client asks it to stop (`foldup supervise`, and a foreground up).
// ready, if not nil, is called once it answers on its socket.
func Supervise(ctx context.Context, project string, opts Options, ready func()) error {
	o := opts.withDefaults()
	return supervisor.Run(ctx, supervisor.Config{Project: project, Dirs: o.dirs(project), Host: o.Host, Logger: o.Logger, DockerHost: o.DockerHost}, ready)
}

// spawnSupervisor starts a detached supervisor for the project and waits
// until it answers.
func spawnSupervisor(ctx context.Context, o Options, project string) error {
	return supervisor.Spawn(ctx, supervisor.SpawnConfig{Project: project, Command: o.SupervisorCommand,
		StateRoot: o.StateRoot, RunRoot: o.RunRoot, DockerHost: o.DockerHost})
}
