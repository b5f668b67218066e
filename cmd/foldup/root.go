package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/foldup/foldup/spec"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

// globalFlags are docker compose's project flags, shared by every verb.
type globalFlags struct {
	files      []string
	project    string
	projectDir string
	envFiles   []string
	profiles   []string
}

func (g *globalFlags) load(ctx context.Context, stdin io.Reader) (*spec.Project, error) {
	return spec.Load(ctx, g.options(stdin))
}

func (g *globalFlags) options(stdin io.Reader) spec.Options {
	return spec.Options{
		Files:       g.files,
		WorkingDir:  g.projectDir,
		ProjectName: g.project,
		EnvFiles:    g.envFiles,
		Profiles:    g.profiles,
		Stdin:       stdin,
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// compose-go warns through logrus (unset variables, obsolete version:);
	// print its warnings the way foldup prints its own.
	logrus.SetOutput(stderr)
	logrus.SetFormatter(plainFormatter{})
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var code exitError
		if errors.As(err, &code) {
			return int(code)
		}
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var g globalFlags
	root := &cobra.Command{
		Use:   "foldup",
		Short: "Run virtual machines and containers side by side on one private network",
		Long: `foldup runs the VMs and containers of a foldup.yaml on one private network:
they find each other by name through foldup's DNS, get their addresses from
its DHCP server, and are kept apart from everything else by its firewall.

A foldup.yaml is a Compose file (any docker-compose.yml works as it is) with
vms:, dns: and x-foldup: added. See https://foldup.dev/schema/foldup.schema.json.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Flags before the verb are the root's: `foldup -f x.yaml logs -f`
		// reads the first -f as --file and the second as --follow.
		TraverseChildren: true,
		// With no verb, the help; with one cobra does not know (which
		// TraverseChildren leaves to the root as an argument), an error
		// and exit status 1, as compose, so that a script stops.
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
			}
			return fmt.Errorf("%s\nRun '%s --help' for usage", msg, cmd.CommandPath())
		},
	}
	root.Version = version
	root.SetVersionTemplate("foldup version {{.Version}}\n")
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringArrayVarP(&g.files, "file", "f", nil, "foldup or Compose file (repeatable; merged in order)")
	pf.StringVarP(&g.project, "project-name", "p", "", "project name")
	pf.StringVar(&g.projectDir, "project-directory", "", "project directory (default: the first file's directory)")
	pf.StringArrayVar(&g.envFiles, "env-file", nil, "environment file (default: .env in the project directory)")
	pf.StringArrayVar(&g.profiles, "profile", nil, "profile to enable (repeatable)")

	verbs, observe := runtimeCommands(root, &g)
	root.AddCommand(
		newConfigCmd(&g),
		newDnsdCmd(),
		newPlanCmd(&g, observe),
		newVersionCmd(),
		newManCmd(),
	)
	root.AddCommand(verbs...)
	return root
}

// exitError makes foldup exit with a command's own code (exec's).
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exitStatus is a command's outcome as foldup's: err, else its exit code
// as foldup's own (exec, run, wait).
func exitStatus(code int, err error) error {
	if err == nil && code != 0 {
		return exitError(code)
	}
	return err
}

// version is set by the build (-ldflags "-X main.version=...").
var version = "dev"

func newVersionCmd() *cobra.Command {
	var short bool
	var format string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print foldup's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch format {
			case "json":
				fmt.Fprintf(cmd.OutOrStdout(), "{\"version\":%q}\n", version)
			case "", "pretty":
				fmt.Fprintln(cmd.OutOrStdout(), versionLine(short))
			default:
				return fmt.Errorf("unknown format %q: use pretty or json", format)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&short, "short", false, "only the version number")
	cmd.Flags().StringVar(&format, "format", "pretty", "pretty or json")
	return cmd
}

// plainFormatter prints a logrus entry as foldup prints its own
// messages: "warning: The "i" variable is not set. ...".
type plainFormatter struct{}

func (plainFormatter) Format(e *logrus.Entry) ([]byte, error) {
	return []byte(e.Level.String() + ": " + e.Message + "\n"), nil
}
