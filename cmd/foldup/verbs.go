//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/docker/go-units"
	"github.com/foldup/foldup/executor"
	"github.com/foldup/foldup/internal/term"
	"github.com/foldup/foldup/spec"
	"github.com/mattn/go-shellwords"
	"github.com/spf13/cobra"
)

// newMembersCmd is a verb that acts on the project's members (all, or
// those named) through one executor method, drawing its progress.
func newMembersCmd(g *globalFlags, rf *runtimeFlags, use, short, long, example string, act func(*cobra.Command, *executor.Executor, string, []string) error) *cobra.Command {
	return &cobra.Command{
		Use:               use,
		Short:             short,
		Long:              long,
		Example:           example,
		ValidArgsFunction: completeMembers(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			o, drawn := rf.options(cmd.ErrOrStderr())
			defer drawn()
			x := executor.New(o)
			defer x.Close()
			return act(cmd, x, name, args)
		},
	}
}

func newKillCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var signal string
	var removeOrphans bool
	cmd := newMembersCmd(g, rf, "kill [SERVICE|VM...]", "Force the project's containers and VMs to stop",
		`kill sends a signal (default SIGKILL) to the project's running containers,
as docker compose kill does, and to its VMs' qemu: SIGKILL turns a VM off at
once (QMP quit), and ps shows it exited 137; SIGTERM or SIGINT end qemu
(exit 143). A VM killed with one of those stays off whatever its restart
policy, until start or up.`,
		`  foldup kill web
  foldup kill -s SIGTERM vm1`,
		func(cmd *cobra.Command, x *executor.Executor, project string, args []string) error {
			return x.Kill(cmd.Context(), project, args, signal)
		})
	cmd.Flags().StringVarP(&signal, "signal", "s", "SIGKILL", "signal to send")
	cmd.Flags().BoolVar(&removeOrphans, "remove-orphans", false, "accepted for compose's scripts; orphans are left alone")
	return cmd
}

func newPauseCmd(g *globalFlags, rf *runtimeFlags, pause bool) *cobra.Command {
	use, short, long := "pause [SERVICE|VM...]", "Pause the project's containers and VMs",
		`pause freezes the project's running containers (docker pause) and VMs
(QMP stop: the guest's CPUs stop, its memory and devices stay); ps shows
them paused. unpause lets them go on.`
	if !pause {
		use, short, long = "unpause [SERVICE|VM...]", "Unpause the project's containers and VMs",
			`unpause lets the project's paused containers (docker unpause) and VMs (QMP
cont) go on.`
	}
	return newMembersCmd(g, rf, use, short, long, "  foldup pause vm1\n  foldup unpause vm1",
		func(cmd *cobra.Command, x *executor.Executor, project string, args []string) error {
			if pause {
				return x.Pause(cmd.Context(), project, args)
			}
			return x.Unpause(cmd.Context(), project, args)
		})
}

func newRmCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var ro executor.RmOptions
	var force bool
	cmd := newMembersCmd(g, rf, "rm [SERVICE|VM...]", "Remove the project's stopped containers and VMs",
		`rm removes the project's stopped containers, as docker compose rm does, and
its stopped VMs: their records and console logs, so that ps -a no longer
lists them; a VM's disk stays unless -v. Running members are left alone
unless --stop. foldup never asks, so -f changes nothing.`,
		"  foldup stop web && foldup rm web\n  foldup rm -s -v vm1",
		func(cmd *cobra.Command, x *executor.Executor, project string, args []string) error {
			return x.Rm(cmd.Context(), project, args, ro)
		})
	f := cmd.Flags()
	// -f is --force here, as in docker compose rm: --file keeps its long
	// form (a local flag of the same name hides the global one).
	f.StringArrayVar(&g.files, "file", nil, "foldup or Compose file (repeatable; merged in order)")
	f.BoolVarP(&ro.Stop, "stop", "s", false, "stop running members first")
	f.BoolVarP(&ro.Volumes, "volumes", "v", false, "also a container's anonymous volumes and a VM's disk")
	f.BoolVarP(&force, "force", "f", false, "do not ask (foldup never does)")
	return cmd
}

func newWaitCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var downProject bool
	cmd := &cobra.Command{
		Use:   "wait [SERVICE|VM...]",
		Short: "Wait until the first of the members stops, and exit with its code",
		Long: `wait blocks until the first of the named containers and VMs (or of all)
has stopped and exits with its exit code, as docker compose wait does; a
VM's is 0 when its guest powered off. --down-project takes the project down
then.`,
		Example:           "  foldup up -d && foldup wait tests",
		ValidArgsFunction: completeMembers(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			o, drawn := rf.options(cmd.ErrOrStderr())
			defer drawn()
			x := executor.New(o)
			defer x.Close()
			code, err := x.Wait(cmd.Context(), name, args)
			if err != nil {
				return err
			}
			if downProject {
				if err := x.Down(cmd.Context(), name, executor.DownOptions{}); err != nil {
					return err
				}
			}
			return exitStatus(code, nil)
		},
	}
	cmd.Flags().BoolVar(&downProject, "down-project", false, "take the project down once one has stopped")
	return cmd
}

func newTopCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	return &cobra.Command{
		Use:               "top [SERVICE|VM...]",
		Short:             "Show the processes of the project's containers and VMs",
		Long:              `top shows each running container's processes (docker top) and each running VM's qemu.`,
		ValidArgsFunction: completeMembers(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			x := executor.New(rf.quietOptions(cmd.ErrOrStderr()))
			defer x.Close()
			return x.Top(cmd.Context(), name, args, cmd.OutOrStdout())
		},
	}
}

func newPortCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var protocol string
	var index int
	cmd := &cobra.Command{
		Use:   "port SERVICE|VM PRIVATE_PORT",
		Short: "Print the host address a member's port is published on",
		Example: `  foldup port web 80
  foldup port vm1 22`,
		Args: cobra.ExactArgs(2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return completeMembers(g)(cmd, args, toComplete)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			port, err := strconv.Atoi(args[1])
			if err != nil || port < 1 || port > 65535 {
				return fmt.Errorf("invalid port %q", args[1])
			}
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			x := executor.New(rf.quietOptions(cmd.ErrOrStderr()))
			defer x.Close()
			list, err := x.Ps(cmd.Context(), name, true)
			if err != nil {
				return err
			}
			n := 0
			for _, m := range list {
				if m.Service != args[0] && m.Member != args[0] {
					continue
				}
				if n++; m.Kind == "container" && n != index {
					continue
				}
				for _, p := range m.Publishers {
					if p.TargetPort == port && p.Protocol == protocol && p.PublishedPort != 0 {
						fmt.Fprintf(cmd.OutOrStdout(), "%s:%d\n", p.URL, p.PublishedPort)
						return nil
					}
				}
				return fmt.Errorf("no port %d/%s published for %s", port, protocol, m.Name)
			}
			return fmt.Errorf("no container or VM found for %s", args[0])
		},
	}
	cmd.Flags().StringVar(&protocol, "protocol", "tcp", "tcp or udp")
	cmd.Flags().IntVar(&index, "index", 1, "which replica of the service")
	return cmd
}

func newLsCmd(rf *runtimeFlags) *cobra.Command {
	var all, quiet bool
	var format string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the projects up on this host",
		Long: `ls lists the projects foldup runs on this host, as docker compose ls does:
with -a those whose members are all stopped too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			x := executor.New(rf.quietOptions(cmd.ErrOrStderr()))
			defer x.Close()
			list, err := x.Projects(cmd.Context(), all)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case quiet:
				for _, p := range list {
					fmt.Fprintln(out, p.Name)
				}
			case format == "json":
				if list == nil {
					list = []executor.ProjectStatus{}
				}
				return json.NewEncoder(out).Encode(list)
			case format == "table":
				tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSTATUS\tCONFIG FILES")
				for _, p := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, p.Status, p.ConfigFiles)
				}
				return tw.Flush()
			default:
				return fmt.Errorf("unknown format %q: use table or json", format)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "also projects whose members are all stopped")
	f.BoolVarP(&quiet, "quiet", "q", false, "only the names")
	f.StringVar(&format, "format", "table", "table or json")
	return cmd
}

// versionLine is what version and --version print.
func versionLine(short bool) string {
	if short {
		return strings.TrimPrefix(version, "v")
	}
	return "foldup version " + version
}

func newSSHCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "ssh VM [-- COMMAND [ARG...]]",
		Short: "Log in to a VM over SSH, or run a command there",
		Long: `ssh runs the host's ssh client to a VM as the user foldup, which foldup's
cloud-init seed adds to the guest with the project's key (made by up, kept
in the project's state) and passwordless sudo, as Vagrant and Lima do: no
key in the file, no host key to accept (the VM is on the project's own
network, and its host key is new with each instance). The guest needs
cloud-init and sshd; one without them has its serial console (foldup
console).`,
		Example: `  foldup ssh web
  foldup ssh web -- uname -a`,
		Args: cobra.MinimumNArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveDefault
			}
			return completeMembers(g)(cmd, args, toComplete)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			x := executor.New(rf.quietOptions(cmd.ErrOrStderr()))
			defer x.Close()
			sshArgs, err := x.SSHArgs(name, args[0])
			if err != nil {
				return err
			}
			if len(args) > 1 {
				sshArgs = append(sshArgs, "--")
				sshArgs = append(sshArgs, args[1:]...)
			}
			c := exec.CommandContext(cmd.Context(), "ssh", sshArgs...)
			c.Stdin, c.Stdout, c.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			if err := c.Run(); err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return exitError(ee.ExitCode())
				}
				return fmt.Errorf("ssh: %w (foldup ssh runs the host's OpenSSH client)", err)
			}
			return nil
		},
	}
}

func newCpCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var archive, follow bool
	cmd := &cobra.Command{
		Use:   "cp SRC VM:DST | VM:SRC DST",
		Short: "Copy files or directories between the host and a VM",
		Long: `cp copies a file or a directory between the host and a VM, as docker
compose cp does for a container: when the destination is a directory the
copy goes into it under the source's name, else it becomes the
destination. It goes as a tar stream over SSH, as the user foldup of
foldup's cloud-init seed (see foldup ssh); the guest needs tar. Files that
come back are written only under the destination, whatever their names or
links say.`,
		Example: `  foldup cp ./app.conf web:/tmp/
  foldup cp web:/var/log/app.log ./`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			x := executor.New(rf.quietOptions(cmd.ErrOrStderr()))
			defer x.Close()
			return x.Copy(cmd.Context(), name, args[0], args[1])
		},
	}
	cmd.Flags().BoolVarP(&archive, "archive", "a", false, "accepted for compose's scripts; owners are not kept")
	cmd.Flags().BoolVarP(&follow, "follow-link", "L", false, "accepted for compose's scripts; links are copied as links")
	return cmd
}

func newImagesCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var quiet bool
	var format string
	cmd := &cobra.Command{
		Use:   "images [SERVICE|VM...]",
		Short: "List the images the project's containers and VMs run from",
		Long: `images lists each container's image, as docker compose images does, and
each VM's disk image or kernel, with its file's size.`,
		ValidArgsFunction: completeMembers(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			x := executor.New(rf.quietOptions(cmd.ErrOrStderr()))
			defer x.Close()
			rows, err := x.Images(cmd.Context(), name, args)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case quiet:
				for _, r := range rows {
					fmt.Fprintln(out, cmpOr(r.ID, r.Repository))
				}
				return nil
			case format == "json":
				if rows == nil {
					rows = []executor.ImageRow{}
				}
				return json.NewEncoder(out).Encode(rows)
			case format != "table":
				return fmt.Errorf("unknown format %q: use table or json", format)
			}
			tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "CONTAINER\tREPOSITORY\tTAG\tIMAGE ID\tSIZE")
			for _, r := range rows {
				id := r.ID
				if len(id) > 12 {
					id = id[:12]
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Container, r.Repository, r.Tag, id, units.HumanSizeWithPrecision(float64(r.Size), 3))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only IDs (a VM's: its image file)")
	cmd.Flags().StringVar(&format, "format", "table", "table or json")
	return cmd
}

func newBuildCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	return newProjectCmd(g, rf, "build [SERVICE...]", "Build the images of services that have build:",
		`build builds the images of the project's services that have build:, as
docker compose build does, and creates or starts nothing; up then uses
them.`,
		func(cmd *cobra.Command, x *executor.Executor, p *spec.Project, args []string) error {
			return x.Build(cmd.Context(), p, args)
		})
}

// newProjectCmd is a verb that loads the whole project and acts on it
// through one executor method, drawing its progress.
func newProjectCmd(g *globalFlags, rf *runtimeFlags, use, short, long string, act func(*cobra.Command, *executor.Executor, *spec.Project, []string) error) *cobra.Command {
	return &cobra.Command{
		Use:               use,
		Short:             short,
		Long:              long,
		ValidArgsFunction: completeMembers(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.load(cmd.Context(), cmd.InOrStdin())
			if err != nil {
				return err
			}
			o, drawn := rf.options(cmd.ErrOrStderr())
			defer drawn()
			x := executor.New(o)
			defer x.Close()
			return act(cmd, x, p, args)
		},
	}
}

func newStatsCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var noStream bool
	var format string
	cmd := &cobra.Command{
		Use:   "stats [SERVICE|VM...]",
		Short: "Show the resources the project's containers and VMs use",
		Long: `stats shows each running container's CPU and memory, as docker compose
stats does, and each running VM's: its qemu's CPU over a second, resident
memory against the guest's memory, and threads. Without --no-stream it
samples again until Ctrl-C.`,
		ValidArgsFunction: completeMembers(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			x := executor.New(rf.quietOptions(cmd.ErrOrStderr()))
			defer x.Close()
			out := cmd.OutOrStdout()
			for {
				list, err := x.Stats(cmd.Context(), name, args)
				if err != nil {
					if cmd.Context().Err() != nil {
						return nil
					}
					return err
				}
				if format == "json" {
					enc := json.NewEncoder(out)
					for _, s := range list {
						enc.Encode(s)
					}
				} else {
					tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
					fmt.Fprintln(tw, "NAME\tKIND\tCPU %\tMEM USAGE / LIMIT\tPIDS")
					for _, s := range list {
						limit := "-"
						if s.MemLimit > 0 {
							limit = units.BytesSize(float64(s.MemLimit))
						}
						fmt.Fprintf(tw, "%s\t%s\t%.2f%%\t%s / %s\t%d\n", s.Name, s.Kind, s.CPU, units.BytesSize(float64(s.Memory)), limit, s.PIDs)
					}
					tw.Flush()
				}
				if noStream {
					return nil
				}
			}
		},
	}
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "one sample, then exit")
	cmd.Flags().StringVar(&format, "format", "table", "table or json (one object a line)")
	return cmd
}

func newRunCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var ro executor.RunOptions
	var entrypoint string
	var noTTY, interactive bool
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] SERVICE [COMMAND] [ARG...]",
		Short: "Run a one-off command in a new container of a service",
		Long: `run starts a new container of a service with a command, on the project's
networks, as docker compose run does: what the service depends on comes up
first (unless --no-deps), the networks and foldup's DNS server always, the
service's own container not. The container finds the members by name; it
has Docker's address on each network rather than the plan's, no alias and
no published port (unless --service-ports), and foldup's firewall holds it
to that address and MAC as it holds a container joined by hand. run exits
with the command's code; --rm removes the container then.`,
		Example: `  foldup run --rm web python manage.py migrate
  foldup run --rm -T db psql -h db -U postgres -c 'select 1'
  foldup run -d --name debug web sleep 3600`,
		Args: cobra.MinimumNArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveDefault
			}
			return completeMembers(g)(cmd, args, toComplete)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.load(cmd.Context(), cmd.InOrStdin())
			if err != nil {
				return err
			}
			if len(args) > 1 {
				ro.Command = args[1:]
			}
			if cmd.Flags().Changed("entrypoint") {
				if ro.Entrypoint, err = shellwords.Parse(entrypoint); err != nil {
					return fmt.Errorf("--entrypoint: %w", err)
				}
			}
			in, isFile := cmd.InOrStdin().(*os.File)
			ro.Tty = !noTTY && !ro.Detach && isFile && term.Is(in) && term.Is(cmd.OutOrStdout())
			if interactive && !ro.Detach {
				ro.Stdin = cmd.InOrStdin()
			}
			ro.Stdout, ro.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			o, drawn := rf.options(cmd.ErrOrStderr())
			x := executor.New(o)
			defer x.Close()
			code, err := x.Run(cmd.Context(), p, args[0], ro)
			drawn()
			return exitStatus(code, err)
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVar(&ro.Rm, "rm", false, "remove the container when it ends")
	f.BoolVarP(&ro.Detach, "detach", "d", false, "start it in the background and print its name")
	f.StringArrayVarP(&ro.Env, "env", "e", nil, "environment variable KEY=VALUE")
	f.StringVar(&entrypoint, "entrypoint", "", "replace the image's entrypoint")
	f.StringVar(&ro.Name, "name", "", "the container's name")
	f.StringVarP(&ro.User, "user", "u", "", "run as this user")
	f.StringVarP(&ro.Workdir, "workdir", "w", "", "working directory")
	f.BoolVar(&ro.NoDeps, "no-deps", false, "start nothing the service depends on")
	f.BoolVar(&ro.ServicePorts, "service-ports", false, "publish the service's ports")
	f.BoolVarP(&noTTY, "no-TTY", "T", false, "do not allocate a terminal")
	f.BoolVarP(&interactive, "interactive", "i", true, "keep stdin attached")
	return cmd
}

func newAttachCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var noStdin bool
	var index int
	cmd := &cobra.Command{
		Use:   "attach SERVICE|VM",
		Short: "Attach to a container's streams or a VM's serial console",
		Long: `attach attaches to a service's running container, as docker compose attach
does: its output, and your input when it takes input (stdin_open); it
returns when the container ends, or on Ctrl-C, which leaves it running. For
a VM it is foldup console: the serial console, Ctrl-] to detach.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeMembers(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			var in io.Reader
			if !noStdin {
				in = cmd.InOrStdin()
			}
			x := executor.New(rf.quietOptions(cmd.ErrOrStderr()))
			defer x.Close()
			return x.Attach(cmd.Context(), name, args[0], index, in, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "do not attach the input")
	cmd.Flags().IntVar(&index, "index", 1, "which replica of the service")
	return cmd
}

func newEventsCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "events [SERVICE|VM...]",
		Short: "Stream what happens to the project's containers and VMs",
		Long: `events prints what happens to the project's containers (the engine's
events) and VMs (start, pause, unpause, die) as it happens, as docker
compose events does, until Ctrl-C; --json prints one object a line with
compose's keys: time, type, action, id, service, attributes.`,
		ValidArgsFunction: completeMembers(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			x := executor.New(rf.quietOptions(cmd.ErrOrStderr()))
			defer x.Close()
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			return x.Events(cmd.Context(), name, args, func(ev executor.MemberEvent) {
				if asJSON {
					enc.Encode(ev)
					return
				}
				var attrs []string
				for _, k := range slices.Sorted(maps.Keys(ev.Attributes)) {
					attrs = append(attrs, k+"="+ev.Attributes[k])
				}
				fmt.Fprintf(out, "%s %s %s %s (%s)\n", ev.Time.Format("2006-01-02 15:04:05.000000"), ev.Type, ev.Action, ev.ID, strings.Join(attrs, ", "))
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object a line")
	return cmd
}

func newPullCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	return newProjectCmd(g, rf, "pull [SERVICE|VM...]", "Pull the services' images and download the VMs' images",
		`pull pulls each service's image whatever its pull_policy, as docker compose
pull does (a service that only builds is skipped), and downloads each VM's
image from its URL into the image cache, verified against its sha256:,
unless the cache has it. It creates and starts nothing.`,
		func(cmd *cobra.Command, x *executor.Executor, p *spec.Project, args []string) error {
			return x.Pull(cmd.Context(), p, args)
		})
}

func newCreateCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var uo executor.UpOptions
	cmd := newProjectCmd(g, rf, "create [SERVICE|VM...]", "Create the project's networks and members without starting them",
		`create is up --no-start, as docker compose create is: the networks, the
firewall and the DNS server, the containers created and the VMs' disks,
seeds and taps made, none of them started; start (or up) starts them.`,
		func(cmd *cobra.Command, x *executor.Executor, p *spec.Project, args []string) error {
			uo.Services, uo.NoStart = args, true
			_, err := x.Up(cmd.Context(), p, uo)
			return err
		})
	f := cmd.Flags()
	f.BoolVar(&uo.Build, "build", false, "build images first")
	f.BoolVar(&uo.ForceRecreate, "force-recreate", false, "recreate containers even if nothing changed")
	f.BoolVar(&uo.NoRecreate, "no-recreate", false, "leave what exists as it is")
	f.BoolVar(&uo.RemoveOrphans, "remove-orphans", false, "remove containers of services not in the file")
	return cmd
}
