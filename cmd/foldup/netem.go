package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/foldup/foldup/executor"
	"github.com/foldup/foldup/spec"
	"github.com/spf13/cobra"
)

func newNetemCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var (
		net, loss, rate, duplicate, corrupt, direction string
		delay, jitter                                  time.Duration
		clear                                          bool
	)
	cmd := &cobra.Command{
		Use:   "netem MEMBER [--network N] [--delay D] [--jitter D] [--loss P] [--rate R] [--duplicate P] [--corrupt P] [--direction to|from|both] | --clear",
		Short: "Impair a running member's links: delay, jitter, loss, rate, duplication, corruption",
		Long: `netem impairs a running member's port on one network (--network), or on
all of its networks, live, as tc's netem does: --delay and --jitter add
latency, --loss drops, --duplicate sends twice and --corrupt flips a bit
in a share of the frames (1%, or a bare number), --rate caps the bandwidth
(10mbit, 1mbps: tc's units). --direction says which frames: to the member
(the default: its port's egress), from it (the port's ingress, through an
ifb device foldup makes and down removes), or both. The settings replace
the member's earlier ones; --clear takes them all away. ps shows what
applies. The next up applies the file's x-foldup.netem again.`,
		Example: `  foldup netem web --delay 100ms --jitter 10ms
  foldup netem db --network back --loss 5% --direction both
  foldup netem web --rate 1mbit
  foldup netem web --clear`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeMembers(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			var n *spec.Netem
			if !clear {
				n = &spec.Netem{Delay: delay, Jitter: jitter, Direction: direction}
				var err error
				for _, p := range []struct {
					flag, v string
					dst     *float64
				}{{"loss", loss, &n.Loss}, {"duplicate", duplicate, &n.Duplicate}, {"corrupt", corrupt, &n.Corrupt}} {
					if p.v == "" {
						continue
					}
					if *p.dst, err = spec.ParsePercent(p.v); err != nil {
						return fmt.Errorf("--%s: %w", p.flag, err)
					}
				}
				if rate != "" {
					if n.Rate, err = spec.ParseRate(rate); err != nil {
						return fmt.Errorf("--rate %s: %w", rate, err)
					}
				}
				switch {
				case direction != spec.NetemTo && direction != spec.NetemFrom && direction != spec.NetemBoth:
					return fmt.Errorf("--direction %q: to, from or both", direction)
				case jitter > 0 && delay == 0:
					return errors.New("--jitter needs a --delay to vary")
				case *n == spec.Netem{Direction: direction}:
					return errors.New("nothing to impair: give --delay, --loss, --rate, --duplicate or --corrupt, or --clear")
				}
			}
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			x := executor.New(rf.quietOptions(cmd.ErrOrStderr()))
			defer x.Close()
			return x.Netem(cmd.Context(), name, args[0], net, n)
		},
	}
	f := cmd.Flags()
	f.StringVar(&net, "network", "", "the network whose port (default: all of the member's)")
	f.DurationVar(&delay, "delay", 0, "added latency, as 100ms")
	f.DurationVar(&jitter, "jitter", 0, "variation of the delay, as 10ms")
	f.StringVar(&loss, "loss", "", "frames dropped, as 1%")
	f.StringVar(&rate, "rate", "", "bandwidth, as 10mbit")
	f.StringVar(&duplicate, "duplicate", "", "frames sent twice, as 1%")
	f.StringVar(&corrupt, "corrupt", "", "frames with a bit flipped, as 1%")
	f.StringVar(&direction, "direction", spec.NetemTo, "to (the member), from (it), or both")
	f.BoolVar(&clear, "clear", false, "take the member's impairments away")
	return cmd
}
