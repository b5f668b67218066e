package main

import (
	"encoding/json"
	"fmt"

	"github.com/foldup/foldup/planner"
	"github.com/spf13/cobra"
)

func newPlanCmd(g *globalFlags) *cobra.Command {
	var format string
	var in planner.Intent
	cmd := &cobra.Command{
		Use:   "plan [SERVICE|VM...]",
		Short: "Print what up would do, step by step",
		Long: `plan loads the project and prints the steps that bring it up, one a line:
the steps each waits for, what it makes and why. Every subnet, address, MAC
and interface name is decided here; the same file always gives the same
plan. It plans against a host where the project does not run yet; up's
arguments and flags change the plan as they change what up does.
--format json prints the whole plan as data.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			in.Services = args
			p, err := g.load(cmd.Context(), cmd.InOrStdin())
			if err != nil {
				return err
			}
			pl, err := planner.Compute(p, planner.Observed{}, in)
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
	return cmd
}
