package main

import (
	"slices"
	"strings"

	"github.com/foldup/foldup/spec"
	"github.com/spf13/cobra"
)

// completeMembers completes a verb's SERVICE/VM arguments with the
// project's service and VM names (the project loaded as -f, -p and
// --profile say, its files unchecked), leaving out those already given.
func completeMembers(g *globalFlags) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		o := g.options(nil)
		o.NameOnly = true
		p, err := spec.Load(cmd.Context(), o)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, n := range append(p.ServiceNames(), p.VMNames()...) {
			if strings.HasPrefix(n, toComplete) && !slices.Contains(args, n) {
				out = append(out, n)
			}
		}
		slices.Sort(out)
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
