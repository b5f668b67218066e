package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/foldup/foldup/executor"
	"github.com/foldup/foldup/internal/term"
	"github.com/foldup/foldup/network"
	"github.com/spf13/cobra"
)

func newCaptureCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var file, filterText, net string
	cmd := &cobra.Command{
		Use:   "capture NETWORK|MEMBER [FILTER...]",
		Short: "Capture the frames on a network or a member's port, as pcap",
		Long: `capture writes the frames on a network's bridge (everything its members
send each other and foldup's server) or on one member's port (a VM's tap,
a container's veth: only that member's frames, both ways) as a pcap file,
to -w FILE or to the standard output, for tcpdump -r, Wireshark or tshark.
It reads an AF_PACKET socket itself: no tcpdump is needed. Interrupt it
(Ctrl-C) to stop; it says how many frames it wrote.

A member on several networks needs --network. The filter (--filter, or
the words after the target) is a tcpdump-style expression, of which
foldup knows: arp, ip, ip6, icmp, icmp6, tcp, udp, vlan; [src|dst] host
ADDR; [src|dst] net PREFIX; [tcp|udp] [src|dst] port N; ether [src|dst]
host MAC; and, or, not, parentheses (&&, ||, !).`,
		Example: `  foldup capture lan | wireshark -k -i -
  foldup capture web udp port 67 or udp port 68 -w dhcp.pcap
  foldup capture db --network back | tcpdump -n -r -`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeMembers(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if filterText == "" {
				filterText = strings.Join(args[1:], " ")
			} else if len(args) > 1 {
				return errors.New("a filter with --filter, or after the target, not both")
			}
			filter, err := network.ParseFilter(filterText)
			if err != nil {
				return err
			}
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			var out io.Writer = cmd.OutOrStdout()
			dest := "the standard output"
			if file != "" && file != "-" {
				f, err := os.Create(file)
				if err != nil {
					return err
				}
				defer f.Close()
				out, dest = f, file
			} else if term.Is(out) {
				return errors.New("pcap is not for a terminal: write it to a file (-w FILE) or a pipe (| tcpdump -n -r -)")
			}
			// Unbuffered: a frame a write, so that a reader at the other
			// end of a pipe (wireshark -k -i -) sees each as it comes.
			w := network.NewPcapWriter(out, network.CaptureSnaplen)
			x := executor.New(rf.quietOptions(cmd.ErrOrStderr()))
			defer x.Close()
			t, err := x.CaptureOn(cmd.Context(), name, args[0], net)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "capturing on %s to %s; interrupt to stop\n", t.What, dest)
			n, err := x.Capture(cmd.Context(), t, filter, w)
			fmt.Fprintf(cmd.ErrOrStderr(), "%d frames captured\n", n)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "write", "w", "", `the pcap file to write ("-" or none: the standard output)`)
	f.StringVar(&filterText, "filter", "", "which frames to keep: a tcpdump-style expression")
	f.StringVar(&net, "network", "", "the member's network, for a member on several")
	return cmd
}
