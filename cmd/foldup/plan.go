package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
	"github.com/spf13/cobra"
)

// observer returns what is observed of the host and of a project's
// previous run (nil: nothing can be, off Linux).
type observer func(context.Context, *spec.Project) (planner.Observed, error)

func newPlanCmd(g *globalFlags, observe observer) *cobra.Command {
	var format string
	var in planner.Intent
	cmd := &cobra.Command{
		Use:               "plan [SERVICE|VM...]",
		ValidArgsFunction: completeMembers(g),
		Short:             "Print what up would do, step by step",
		Long: `plan loads the project and prints the steps that bring it up, one a line:
the steps each waits for, what it makes and why. Every subnet, address, MAC
and interface name is decided here. It plans against what runs, as up
would (a host it cannot look at, or an engine that does not answer, is
taken as empty, and said so); up's arguments and flags change the plan as
they change what up does.
--format json prints the whole plan as data.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			in.Services = args
			p, err := g.load(cmd.Context(), cmd.InOrStdin())
			if err != nil {
				return err
			}
			var obs planner.Observed
			if observe != nil {
				if obs, err = observe(cmd.Context(), p); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "foldup: planning as on a host where nothing runs: %v\n", err)
				}
			}
			pl, err := planner.Compute(p, obs, in)
			if err != nil {
				return err
			}
			if err := accelWarnings(cmd.Context(), p, cmd.ErrOrStderr()); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch format {
			case "text":
				_, err = fmt.Fprint(out, pl.String())
				return err
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(pl)
			}
			return fmt.Errorf("unknown format %q: use text or json", format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.Flags().BoolVar(&in.Build, "build", false, "plan as up --build")
	cmd.Flags().BoolVar(&in.ForceRecreate, "force-recreate", false, "plan as up --force-recreate")
	cmd.Flags().BoolVar(&in.RemoveOrphans, "remove-orphans", false, "plan as up --remove-orphans")
	cmd.Flags().BoolVar(&in.Wait, "wait", false, "plan as up --wait")
	cmd.Flags().BoolVar(&in.NoDeps, "no-deps", false, "plan as up --no-deps")
	cmd.Flags().BoolVar(&in.NoRecreate, "no-recreate", false, "plan as up --no-recreate")
	cmd.Flags().BoolVar(&in.AlwaysRecreateDeps, "always-recreate-deps", false, "plan as up --always-recreate-deps")
	return cmd
}
