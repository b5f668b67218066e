//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/foldup/foldup/executor"
	"github.com/foldup/foldup/internal/progress"
	"github.com/foldup/foldup/internal/term"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
	"github.com/spf13/cobra"
)

// runtimeCommands are the verbs that act on a running project.
func runtimeCommands(root *cobra.Command, g *globalFlags) ([]*cobra.Command, observer) {
	var rf runtimeFlags
	rf.register(root)
	observe := func(ctx context.Context, p *spec.Project) (planner.Observed, error) {
		x := executor.New(rf.quietOptions(io.Discard))
		defer x.Close()
		return x.Observe(ctx, p)
	}
	return []*cobra.Command{
		newConsoleCmd(g, &rf),
		newDownCmd(g, &rf),
		newExecCmd(g, &rf),
		newLifecycleCmd(g, &rf, "restart", "Restart the project's containers and VMs"),
		newLifecycleCmd(g, &rf, "start", "Start the project's stopped containers and VMs"),
		newLifecycleCmd(g, &rf, "stop", "Stop the project's containers and VMs without removing them"),
		newLogsCmd(g, &rf),
		newKillCmd(g, &rf),
		newPauseCmd(g, &rf, true),
		newPauseCmd(g, &rf, false),
		newRmCmd(g, &rf),
		newWaitCmd(g, &rf),
		newTopCmd(g, &rf),
		newPortCmd(g, &rf),
		newLsCmd(&rf),
		newSSHCmd(g, &rf),
		newCpCmd(g, &rf),
		newImagesCmd(g, &rf),
		newBuildCmd(g, &rf),
		newStatsCmd(g, &rf),
		newRunCmd(g, &rf),
		newAttachCmd(g, &rf),
		newEventsCmd(g, &rf),
		newPullCmd(g, &rf),
		newCreateCmd(g, &rf),
		newPsCmd(g, &rf),
		newSuperviseCmd(g, &rf),
		newUpCmd(g, &rf),
		newKubeCmd(g, &rf),
		newGraphCmd(g, &rf),
		newCaptureCmd(g, &rf),
		newNetemCmd(g, &rf),
	}, observe
}

// runtimeFlags are the flags of the verbs that act on a running project.
type runtimeFlags struct {
	dockerHost string
	stateRoot  string
	runRoot    string
	progress   string
	parallel   int
	ansi       string
	dryRun     bool
	operation  string // the verb running: progress's header names it
}

// colors says whether output to a terminal (or not) is coloured, as
// --ansi says.
func (rf *runtimeFlags) colors(terminal bool) bool {
	switch rf.ansi {
	case "never":
		return false
	case "always":
		return true
	}
	return terminal
}

func (rf *runtimeFlags) register(cmd *cobra.Command) {
	// --dry-run changes nothing: a verb that cannot show what it would do
	// refuses it rather than act.
	cmd.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		rf.operation = c.Name()
		if rf.dryRun && slices.Contains([]string{"run", "create", "build", "pull", "exec", "cp", "ssh", "attach", "console"}, c.Name()) {
			return fmt.Errorf("--dry-run: %s cannot show what it would do, and would act; leave --dry-run out", c.Name())
		}
		return nil
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&rf.dockerHost, "docker-host", "", "Docker engine to use (default: $DOCKER_HOST, else the engine's socket)")
	pf.StringVar(&rf.stateRoot, "state-root", envOr("FOLDUP_STATE_ROOT", executor.DefaultStateRoot), "where projects keep their journal, plan and leases")
	pf.StringVar(&rf.runRoot, "run-root", envOr("FOLDUP_RUN_ROOT", executor.DefaultRunRoot), "where supervisors keep their sockets")
	rf.progress = "auto"
	pf.Var((*progressMode)(&rf.progress), "progress", "progress output: auto (tty on a terminal, else plain), tty, plain, json or quiet")
	pf.BoolVar(&rf.dryRun, "dry-run", false, "show what up, down, start, stop, restart, kill, pause, unpause and rm would do, and change nothing (kube apply and delete: a server dry run)")
	pf.IntVar(&rf.parallel, "parallel", -1, "how many of up's steps run at once (-1: as many as the graph allows)")
	rf.ansi = "auto"
	pf.Var(&oneOf{&rf.ansi, []string{"never", "always", "auto"}}, "ansi", "control characters: never, always or auto (on a terminal)")
	pf.MarkHidden("state-root")
	pf.MarkHidden("run-root")
}

// oneOf is a flag that takes one of a few words.
type oneOf struct {
	v     *string
	words []string
}

func (o *oneOf) String() string { return *o.v }
func (o *oneOf) Type() string   { return "string" }
func (o *oneOf) Set(v string) error {
	if !slices.Contains(o.words, v) {
		return fmt.Errorf("must be one of %s", strings.Join(o.words, ", "))
	}
	*o.v = v
	return nil
}

// progressMode is --progress's value: one of the modes docker compose has.
type progressMode string

func (m *progressMode) String() string { return string(*m) }
func (m *progressMode) Type() string   { return "string" }

func (m *progressMode) Set(v string) error {
	if !slices.Contains(progress.Modes, v) {
		return fmt.Errorf("must be one of %s", strings.Join(progress.Modes, ", "))
	}
	*m = progressMode(v)
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// options are the runtime's options from the flags: progress drawn on
// out as --progress says, until done is called (which draws tty mode's
// final frame). Warnings of what runs in this process (a foreground up's
// supervisor) go to out too.
func (rf *runtimeFlags) options(out io.Writer) (o executor.Options, done func()) {
	mode := rf.progress
	if mode == "auto" && rf.ansi == "never" {
		mode = "plain"
	} else if mode == "auto" && rf.ansi == "always" {
		mode = "tty"
	}
	r := progress.New(out, mode)
	r.Operation = rf.operation
	return executor.Options{
		Parallel:   max(rf.parallel, 0),
		DryRun:     rf.dryRun,
		StateRoot:  rf.stateRoot,
		RunRoot:    rf.runRoot,
		DockerHost: rf.dockerHost,
		Events:     r.Event,
		Out:        out,
		Logger:     slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, r.Close
}

// quietOptions are the options of a verb that reports no progress.
func (rf *runtimeFlags) quietOptions(out io.Writer) executor.Options {
	o, _ := rf.options(out)
	o.Events = nil
	return o
}

// projectName is the project a verb acts on: -p, else the file's.
func (g *globalFlags) projectName(cmd *cobra.Command) (string, error) {
	if g.project != "" {
		return g.project, nil
	}
	o := g.options(cmd.InOrStdin())
	o.NameOnly = true // down works after the VMs' images are gone
	p, err := spec.Load(cmd.Context(), o)
	if err != nil {
		return "", err
	}
	return p.Name, nil
}

func newUpCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var uo executor.UpOptions
	var fo foregroundOptions
	var detach, dryRun, quietPull bool
	var pull string
	var scale []string
	var waitTimeout int
	cmd := &cobra.Command{
		Use:   "up [SERVICE|VM...]",
		Short: "Create and start the project's networks, DNS/DHCP server and members",
		Long: `up plans the project against what runs, then makes what is missing and
recreates what changed, in dependency order and in parallel where the graph
allows. In the foreground it streams the members' output and stops them on
Ctrl-C (a second Ctrl-C exits at once); with -d it leaves a supervisor
process running the project's DNS/DHCP server and returns.

As in docker compose, --abort-on-container-exit stops everything when a
container or VM stops, and --exit-code-from SERVICE then exits with that
service's code: a test suite in a container against a server in a VM.`,
		Example: `  foldup up -d --wait
  foldup up --build --abort-on-container-exit --exit-code-from tests
  foldup up -d --no-deps --force-recreate web
  foldup up --dry-run`,
		ValidArgsFunction: completeMembers(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.load(cmd.Context(), cmd.InOrStdin())
			if err != nil {
				return err
			}
			if err := applyScale(p, scale); err != nil {
				return err
			}
			if pull != "" {
				if !slices.Contains([]string{"always", "missing", "never"}, pull) {
					return fmt.Errorf("--pull %q: use always, missing or never", pull)
				}
				for name, s := range p.Compose.Services {
					s.PullPolicy = pull
					p.Compose.Services[name] = s
				}
			}
			if fo.exitCodeFrom != "" {
				fo.abort = true
				if _, ok := p.Compose.Services[fo.exitCodeFrom]; !ok && p.VMs[fo.exitCodeFrom] == nil {
					return fmt.Errorf("--exit-code-from: no such service or VM: %s", fo.exitCodeFrom)
				}
			}
			if detach && (fo.abort || len(fo.attach) > 0) {
				return fmt.Errorf("-d cannot be combined with --abort-on-container-exit, --exit-code-from or --attach")
			}
			if uo.NoStart {
				if fo.abort || uo.Wait {
					return fmt.Errorf("--no-start cannot be combined with --wait or --abort-on-container-exit")
				}
				detach = true // nothing runs to follow
			}
			if uo.NoBuild && uo.Build {
				return fmt.Errorf("--no-build cannot be combined with --build")
			}
			if uo.NoRecreate && (uo.ForceRecreate || uo.AlwaysRecreateDeps) {
				return fmt.Errorf("--no-recreate cannot be combined with --force-recreate or --always-recreate-deps")
			}
			uo.Services = args
			uo.InProcess = !detach
			uo.WaitTimeout = time.Duration(waitTimeout) * time.Second
			if dryRun || rf.dryRun {
				return printUpPlan(cmd, rf, p, uo)
			}
			o, drawn := rf.options(cmd.ErrOrStderr())
			ctx := cmd.Context()
			x := executor.New(o)
			defer x.Close()
			res, err := x.Up(ctx, p, uo) // prints its warnings
			drawn()
			if err != nil {
				if res != nil && res.Supervisor != nil {
					res.Supervisor.Stop()
				}
				return err
			}
			if detach {
				return nil
			}
			if cmd.Flags().Changed("timeout") {
				fo.timeout = &fo.timeoutValue
			}
			fo.colors = rf.colors
			return foreground(ctx, cmd, p.Name, res, x, fo)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&detach, "detach", "d", false, "run in the background")
	f.BoolVar(&uo.Build, "build", false, "build images before starting containers")
	f.BoolVar(&uo.NoBuild, "no-build", false, "build no image: a service with build: runs the image it has, or up fails")
	f.BoolVar(&uo.ForceRecreate, "force-recreate", false, "recreate containers even if nothing changed")
	f.BoolVar(&uo.NoRecreate, "no-recreate", false, "start what exists as it is, even if its configuration changed")
	f.BoolVar(&uo.AlwaysRecreateDeps, "always-recreate-deps", false, "recreate the members others depend on")
	f.BoolVar(&uo.NoDeps, "no-deps", false, "leave what the named services depend on alone")
	f.BoolVar(&uo.NoStart, "no-start", false, "create the members and start none")
	f.BoolVarP(&uo.RenewAnonVolumes, "renew-anon-volumes", "V", false, "give recreated containers new anonymous volumes (the old ones removed) instead of keeping the old ones'")
	f.BoolVar(&uo.RemoveOrphans, "remove-orphans", false, "remove containers of services not in the file")
	f.BoolVar(&uo.Wait, "wait", false, "wait until members are running, and healthy if they have a health check")
	f.IntVar(&waitTimeout, "wait-timeout", 0, "seconds --wait waits at most (0: no limit)")
	f.StringVar(&pull, "pull", "", "pull images: always, missing or never (each service's pull_policy otherwise)")
	f.BoolVar(&quietPull, "quiet-pull", false, "accepted for compose's scripts (pulls draw no progress of their own)")
	f.StringArrayVar(&scale, "scale", nil, "SERVICE=N: run N replicas of a service (overrides scale:)")
	f.BoolVar(&dryRun, "dry-run", false, "print what up would do (as foldup plan) and do nothing")
	f.BoolVar(&fo.abort, "abort-on-container-exit", false, "stop everything when a container or VM stops")
	f.StringVar(&fo.exitCodeFrom, "exit-code-from", "", "exit with this service's exit code (implies --abort-on-container-exit)")
	f.StringArrayVar(&fo.attach, "attach", nil, "show only these members' output")
	f.StringArrayVar(&fo.noAttach, "no-attach", nil, "do not show these members' output")
	f.BoolVar(&fo.noColor, "no-color", false, "no colours in the output")
	f.BoolVar(&fo.noPrefix, "no-log-prefix", false, "no member name before each line")
	f.BoolVar(&fo.timestamps, "timestamps", false, "show timestamps")
	f.IntVarP(&fo.timeoutValue, "timeout", "t", 10, "seconds to wait for members to stop when up ends")
	return cmd
}

// applyScale sets --scale SERVICE=N on the project.
func applyScale(p *spec.Project, scale []string) error {
	for _, s := range scale {
		name, n, ok := strings.Cut(s, "=")
		count, err := strconv.Atoi(n)
		if !ok || err != nil || count < 0 {
			return fmt.Errorf("--scale %q: want SERVICE=N", s)
		}
		svc, ok := p.Compose.Services[name]
		if !ok {
			return fmt.Errorf("--scale: no such service: %s", name)
		}
		svc.Scale = &count
		if svc.Deploy != nil {
			svc.Deploy.Replicas = &count
		}
		p.Compose.Services[name] = svc
	}
	return nil
}

// foregroundOptions are what up in the foreground shows and when it ends.
type foregroundOptions struct {
	abort                         bool
	exitCodeFrom                  string
	attach, noAttach              []string
	noColor, noPrefix, timestamps bool
	timeoutValue                  int
	timeout                       *int
	colors                        func(terminal bool) bool // --ansi
}

func newDownCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var do executor.DownOptions
	var timeout int
	var rmi string
	cmd := &cobra.Command{
		Use:   "down [SERVICE|VM...]",
		Short: "Stop and remove everything up made",
		Long: `down stops the supervisor and removes the project's containers, Docker
networks, bridges and firewall: exactly what up recorded in the project's
journal, even after a crash halfway through up, and never anything without the
project's label. Named volumes stay unless -v. With SERVICE or VM names,
as compose's down, only those are stopped and removed (a VM's disk too with
-v); the networks and the rest stay.`,
		ValidArgsFunction: completeMembers(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("timeout") {
				do.Timeout = &timeout
			}
			o, drawn := rf.options(cmd.ErrOrStderr())
			defer drawn()
			x := executor.New(o)
			defer x.Close()
			var images []string
			if rmi != "" {
				o := g.options(cmd.InOrStdin())
				o.NameOnly = true
				p, err := spec.Load(cmd.Context(), o)
				if err != nil {
					return fmt.Errorf("--rmi needs the project's file: %w", err)
				}
				for _, svc := range p.Compose.Services {
					if len(args) > 0 && !slices.Contains(args, svc.Name) {
						continue
					}
					if rmi == "all" || svc.Image == "" { // local: those up built and named
						images = append(images, planner.ImageName(p, svc))
					}
				}
				slices.Sort(images)
				images = slices.Compact(images)
			}
			if len(args) > 0 {
				if err := x.Stop(cmd.Context(), name, args, do.Timeout); err != nil {
					return err
				}
				if err := x.Rm(cmd.Context(), name, args, executor.RmOptions{Volumes: do.Volumes}); err != nil {
					return err
				}
			} else if err := x.Down(cmd.Context(), name, do); err != nil {
				return err
			}
			return x.RemoveImages(cmd.Context(), images)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&do.Volumes, "volumes", "v", false, "also remove named volumes and the project's state")
	f.BoolVar(&do.RemoveOrphans, "remove-orphans", false, "remove containers of services not in the file (down always does)")
	f.IntVarP(&timeout, "timeout", "t", 10, "seconds to wait for containers to stop")
	f.BoolVar(&do.Force, "force", false, "remove by labels and names even when the journal is unreadable")
	f.Var(&oneOf{&rmi, []string{"local", "all"}}, "rmi", "also remove images: local (those up built, with no image: name) or all")
	return cmd
}

func newLogsCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var lo executor.LogOptions
	var since, until string
	cmd := &cobra.Command{
		Use:               "logs [SERVICE|VM...]",
		ValidArgsFunction: completeMembers(g),
		Short:             "Show the output of the project's members",
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			lo.Members = args
			now := time.Now()
			if lo.Since, err = executor.ParseLogTime(since, now); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if lo.Until, err = executor.ParseLogTime(until, now); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			if !rf.colors(term.Is(cmd.OutOrStdout())) {
				lo.NoColor = true
			}
			return executor.New(rf.quietOptions(cmd.ErrOrStderr())).Logs(cmd.Context(), name, lo, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	// -f is follow here, as in docker compose logs: --file keeps its
	// long form (a local flag of the same name hides the global one).
	f.StringArrayVar(&g.files, "file", nil, "foldup or Compose file (repeatable; merged in order)")
	f.BoolVarP(&lo.Follow, "follow", "f", false, "follow the output")
	f.StringVarP(&lo.Tail, "tail", "n", "all", "lines to show from the end of each log")
	f.BoolVarP(&lo.Timestamps, "timestamps", "t", false, "show timestamps")
	f.BoolVar(&lo.NoColor, "no-color", false, "no colours")
	f.BoolVar(&lo.NoPrefix, "no-log-prefix", false, "no member name before each line")
	f.StringVar(&since, "since", "", "only lines since this time: a duration before now (10m), an RFC 3339 time, or Unix seconds")
	f.StringVar(&until, "until", "", "only lines before this time, written as --since")
	f.IntVar(&lo.Index, "index", 0, "only this replica of each service")
	return cmd
}

func newLifecycleCmd(g *globalFlags, rf *runtimeFlags, verb, short string) *cobra.Command {
	var timeout, waitTimeout int
	var wait bool
	cmd := &cobra.Command{
		Use:               verb + " [SERVICE...]",
		ValidArgsFunction: completeMembers(g),
		Short:             short,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			var t *int
			if cmd.Flags().Changed("timeout") {
				t = &timeout
			}
			o, drawn := rf.options(cmd.ErrOrStderr())
			defer drawn()
			x := executor.New(o)
			defer x.Close()
			switch verb {
			case "start":
				if err := x.Start(cmd.Context(), name, args); err != nil || !wait {
					return err
				}
				ctx := cmd.Context()
				if waitTimeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, time.Duration(waitTimeout)*time.Second)
					defer cancel()
				}
				return x.WaitReady(ctx, name, args)
			case "stop":
				return x.Stop(cmd.Context(), name, args, t)
			}
			return x.Restart(cmd.Context(), name, args, t)
		},
	}
	if verb != "start" {
		cmd.Flags().IntVarP(&timeout, "timeout", "t", 10, "seconds to wait for each container to stop")
	} else {
		cmd.Flags().BoolVar(&wait, "wait", false, "wait until they run, and are healthy if they have a health check")
		cmd.Flags().IntVar(&waitTimeout, "wait-timeout", 0, "seconds --wait waits at most (0: no limit)")
	}
	return cmd
}

func newExecCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var eo executor.ExecOptions
	var noTTY, interactive bool
	cmd := &cobra.Command{
		Use:   "exec SERVICE|VM COMMAND [ARG...]",
		Short: "Run a command in a running container or VM",
		Long: `exec runs a command in a service's running container, as docker compose
exec does, or in a running VM. A VM is reached over SSH as the user foldup,
which foldup's cloud-init seed adds to the guest with the project's key and
passwordless sudo (see foldup ssh): -u and --privileged become sudo, -e
env, -w a cd. Without a seed of foldup's, a guest that runs
qemu-guest-agent (qemu-ga) is reached through it, on the virtio-serial
channel org.qemu.guest_agent.0 every VM gets: the command runs as root (-u
through su), its input is read whole before it starts and its output comes
when it ends (up to 16 MiB), with no terminal. A guest with neither (a
kernel and initrd with a shell on its serial console) is reached through
that console: the command is typed there between two markers, and its
output (stdout and stderr together, as a terminal shows them) and exit
status read back; no input, no -u. A guest with none of these gets an
error saying what it needs.`,
		Example: `  foldup exec db psql -U postgres -c 'select 1'
  foldup exec web uname -a
  foldup exec -u root web cat /etc/shadow`,
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveDefault // the command's own arguments
			}
			return completeMembers(g)(cmd, args, toComplete)
		},
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			in, isFile := cmd.InOrStdin().(*os.File)
			eo.Tty = !noTTY && isFile && term.Is(in) && term.Is(cmd.OutOrStdout())
			if interactive {
				eo.Stdin = cmd.InOrStdin()
			}
			eo.Stdout, eo.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			return exitStatus(executor.New(rf.quietOptions(cmd.ErrOrStderr())).Exec(cmd.Context(), name, args[0], args[1:], eo))
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&noTTY, "no-TTY", "T", false, "do not allocate a terminal")
	f.BoolVarP(&interactive, "interactive", "i", true, "keep stdin attached")
	f.StringArrayVarP(&eo.Env, "env", "e", nil, "environment variable KEY=VALUE")
	f.StringVarP(&eo.User, "user", "u", "", "run as this user")
	f.StringVarP(&eo.Workdir, "workdir", "w", "", "working directory")
	f.BoolVar(&eo.Privileged, "privileged", false, "give the command extended privileges")
	f.IntVar(&eo.Index, "index", 1, "which replica of the service")
	f.BoolVarP(&eo.Detach, "detach", "d", false, "start the command and return")
	return cmd
}

func newSuperviseCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "supervise",
		Short:  "Run a project's supervisor (started by up -d)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := rf.quietOptions(cmd.ErrOrStderr())
			o.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			if g.project == "" {
				return fmt.Errorf("supervise needs --project-name")
			}
			err := executor.New(o).Supervise(cmd.Context(), g.project, nil)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s supervisor: %v\n", time.Now().Format(time.RFC3339), err)
			}
			return err
		},
	}
	return cmd
}

// printUpPlan is up --dry-run: the plan up would carry out, against what
// runs, as foldup plan prints it.
func printUpPlan(cmd *cobra.Command, rf *runtimeFlags, p *spec.Project, uo executor.UpOptions) error {
	x := executor.New(rf.quietOptions(io.Discard))
	defer x.Close()
	obs, err := x.Observe(cmd.Context(), p)
	if err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "foldup: planning as on a host where nothing runs: %v\n", err)
	}
	pl, err := planner.Compute(p, obs, uo.Intent())
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(cmd.OutOrStdout(), pl.String())
	return err
}
