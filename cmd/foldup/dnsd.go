package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/foldup/foldup/dnsd"
	"github.com/foldup/foldup/planner"
	"github.com/spf13/cobra"
)

func newDnsdCmd() *cobra.Command {
	var (
		planFile  string
		leaseFile string
		listen    []string
		pools     []string
		noDHCP    bool
		verbose   bool
	)
	cmd := &cobra.Command{
		Use:   "dnsd --plan FILE",
		Short: "Run a plan's DNS and DHCP server alone, for debugging and benchmarks",
		Long: `dnsd runs the server foldup up runs for a project, in the foreground, from a
plan written by foldup plan --format json ("-" reads it from stdin). It
serves DNS on every network's gateway address, port 53, and DHCPv4 on every
network's bridge, which must exist. --listen serves DNS on the given
addresses instead (e.g. 127.0.0.1:5300); --no-dhcp serves no addresses.
Interrupt it to stop.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := readPlan(planFile, cmd.InOrStdin())
			if err != nil {
				return err
			}
			cfg := dnsd.FromPlan(p)
			if noDHCP {
				for i := range cfg.Networks {
					cfg.Networks[i].DHCP4 = false
				}
			}
			for _, p := range pools {
				if err := setPool(cfg.Networks, p); err != nil {
					return fmt.Errorf("--pool %s: %w", p, err)
				}
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			opts := dnsd.Options{
				LeaseFile: leaseFile,
				Logger:    slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})),
			}
			for _, l := range listen {
				ap, err := netip.ParseAddrPort(l)
				if err != nil {
					return fmt.Errorf("--listen %s: %w", l, err)
				}
				opts.DNSListen = append(opts.DNSListen, ap)
			}
			s, err := dnsd.Start(cfg, opts)
			if err != nil {
				return err
			}
			for _, a := range s.DNSAddrs() {
				fmt.Fprintf(cmd.ErrOrStderr(), "dns on %s (udp, tcp)\n", a)
			}
			for _, n := range cfg.Networks {
				if n.DHCP4 {
					fmt.Fprintf(cmd.ErrOrStderr(), "dhcp4 on %s (%s)\n", n.Interface, n.Name)
				}
			}
			<-cmd.Context().Done()
			return s.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&planFile, "plan", "", `plan file from "foldup plan --format json" ("-": stdin)`)
	f.StringVar(&leaseFile, "lease-file", "", "keep leases in this file across restarts")
	f.StringArrayVar(&listen, "listen", nil, "serve DNS on ADDR:PORT instead of the gateways (repeatable)")
	f.StringArrayVar(&pools, "pool", nil, "serve MACs that are no member's on NETWORK from FIRST-LAST (NETWORK=FIRST-LAST, repeatable)")
	f.BoolVar(&noDHCP, "no-dhcp", false, "serve DNS only")
	f.BoolVarP(&verbose, "verbose", "v", false, "log every reply that could not be sent")
	cmd.MarkFlagRequired("plan")
	return cmd
}

func readPlan(path string, stdin io.Reader) (*planner.Plan, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading plan: %w", err)
	}
	var p planner.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("reading plan %s: %w", path, err)
	}
	if p.Domain == "" {
		return nil, fmt.Errorf("reading plan %s: no domain: is it the output of foldup plan --format json?", path)
	}
	return &p, nil
}

// setPool parses NETWORK=FIRST-LAST and sets that network's pool.
func setPool(nets []dnsd.Network, s string) error {
	name, r, ok := strings.Cut(s, "=")
	first, last, ok2 := strings.Cut(r, "-")
	if !ok || !ok2 {
		return errors.New("want NETWORK=FIRST-LAST")
	}
	var rg dnsd.Range
	var err error
	if rg.Start, err = netip.ParseAddr(first); err != nil {
		return err
	}
	if rg.End, err = netip.ParseAddr(last); err != nil {
		return err
	}
	for i := range nets {
		if nets[i].Name != name {
			continue
		}
		if !rg.Valid() || !nets[i].Subnet4.Contains(rg.Start) || !nets[i].Subnet4.Contains(rg.End) {
			return fmt.Errorf("not a range inside %s", nets[i].Subnet4)
		}
		nets[i].Pool4 = rg
		return nil
	}
	return fmt.Errorf("no network %q in the plan", name)
}
