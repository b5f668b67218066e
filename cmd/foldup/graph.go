package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/foldup/foldup/executor"
	"github.com/foldup/foldup/graph"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
	"github.com/spf13/cobra"
)

func newGraphCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var format, output string
	cmd := &cobra.Command{
		Use:   "graph [--format dot|mermaid|svg] [-o FILE]",
		Short: "Draw the project: networks, members, addresses, ports, dependencies",
		Long: `graph draws the project as a picture: its networks (with their subnets),
its members (VMs as 3-D boxes, containers as boxes) with their addresses on
each network and their forwarded ports, and the dependencies between
members with their conditions. When the project is up, the picture is of
the plan up applied, each member filled by its live state (green running,
and healthy if it has a check; orange starting; red exited or unhealthy;
grey not created); otherwise it is of the plan up would make.

--format dot (the default) writes Graphviz's DOT and mermaid a Mermaid
flowchart, both text, needing nothing; svg renders the DOT with Graphviz's
dot, which must be installed (apt-get install graphviz).`,
		Example: `  foldup graph | dot -Tpng > project.png
  foldup graph --format svg -o project.svg
  foldup graph --format mermaid >> README.md`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := g.options(cmd.InOrStdin())
			o.NameOnly = true // a picture needs no kernel or disk
			p, err := spec.Load(cmd.Context(), o)
			if err != nil {
				return err
			}
			x := executor.New(rf.quietOptions(io.Discard))
			defer x.Close()
			plan, err := x.Applied(p.Name)
			if err != nil {
				return err
			}
			var live graph.Live
			if plan != nil {
				statuses, err := x.Ps(cmd.Context(), p.Name, true)
				if err != nil {
					return err
				}
				live = graph.Live{}
				for _, s := range statuses {
					live[s.Member] = graph.State{State: s.State, Health: s.Health}
				}
			} else if plan, err = planner.Compute(p, planner.Observed{}, planner.Intent{}); err != nil {
				return err
			}
			var out []byte
			switch format {
			case "dot":
				out = []byte(graph.DOT(plan, live))
			case "mermaid":
				out = []byte(graph.Mermaid(plan, live))
			case "svg":
				if out, err = svg(graph.DOT(plan, live)); err != nil {
					return err
				}
			default:
				return fmt.Errorf("--format %q: dot, mermaid or svg", format)
			}
			if output == "" || output == "-" {
				_, err = cmd.OutOrStdout().Write(out)
				return err
			}
			return os.WriteFile(output, out, 0o644)
		},
	}
	cmd.Flags().StringVar(&format, "format", "dot", "dot, mermaid or svg (svg needs Graphviz's dot)")
	cmd.Flags().StringVarP(&output, "output", "o", "-", `the file to write, or "-" for the standard output`)
	return cmd
}

// svg renders DOT with Graphviz.
func svg(dot string) ([]byte, error) {
	bin, err := exec.LookPath("dot")
	if err != nil {
		return nil, errors.New("--format svg needs Graphviz's dot, which is not installed (apt-get install graphviz); --format dot and mermaid need nothing")
	}
	var out, errb bytes.Buffer
	c := exec.Command(bin, "-Tsvg")
	c.Stdin, c.Stdout, c.Stderr = bytes.NewReader([]byte(dot)), &out, &errb
	if err := c.Run(); err != nil {
		return nil, fmt.Errorf("dot -Tsvg: %v: %s", err, errb.String())
	}
	return out.Bytes(), nil
}
