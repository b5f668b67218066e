//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/docker/go-units"
	"github.com/foldup/foldup/executor"
	"github.com/spf13/cobra"
)

// psStates are the states ps --status and --filter status= take, compose's.
var psStates = []string{"paused", "restarting", "removing", "running", "dead", "created", "exited"}

func newPsCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var (
		all, quiet, services, noTrunc, orphans bool
		format                                 string
		status, filters                        []string
	)
	cmd := &cobra.Command{
		Use:   "ps [SERVICE|VM...]",
		Short: "List the project's members",
		Long: `ps lists the project's containers and VMs, as docker compose ps lists
containers: running ones, and with -a the stopped ones too.

--format json prints one JSON object a line with compose's keys (Name,
Image, Command, Project, Service, Created, State, Health, ExitCode,
Publishers, CreatedAt, RunningFor, Labels, Networks, Ports, ...), and
foldup's own beside them (Kind, Member, Addresses, Accel). Any other
--format is a Go template over the same fields.`,
		Example: `  foldup ps -a
  foldup ps --format json | jq -r .Name
  foldup ps --status running --services
  foldup ps --format '{{.Name}} {{.State}}'`,
		ValidArgsFunction: completeMembers(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				if !ok || k != "status" {
					return fmt.Errorf("--filter %q: only status=STATE is supported, as in compose", f)
				}
				status = append(status, v)
			}
			for _, s := range status {
				if !slices.Contains(psStates, s) {
					return fmt.Errorf("invalid status %q: use one of %s", s, strings.Join(psStates, ", "))
				}
			}
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			list, err := executor.New(rf.quietOptions(cmd.ErrOrStderr())).Ps(cmd.Context(), name, all || len(status) > 0)
			if err != nil {
				return err
			}
			var known map[string]bool
			if !orphans {
				if p, err := g.load(cmd.Context(), cmd.InOrStdin()); err == nil {
					known = map[string]bool{}
					for _, s := range append(p.ServiceNames(), p.VMNames()...) {
						known[s] = true
					}
				}
			}
			list = slices.DeleteFunc(list, func(m executor.MemberStatus) bool {
				return (len(args) > 0 && !slices.Contains(args, m.Service) && !slices.Contains(args, m.Member)) ||
					(len(status) > 0 && !slices.Contains(status, m.State)) ||
					(known != nil && !known[m.Service])
			})
			rows := make([]psRow, len(list))
			for i, m := range list {
				rows[i] = newPsRow(m, noTrunc)
			}
			out := cmd.OutOrStdout()
			switch {
			case services:
				seen := map[string]bool{}
				for _, r := range rows {
					if !seen[r.Service] {
						seen[r.Service] = true
						fmt.Fprintln(out, r.Service)
					}
				}
				return nil
			case quiet:
				for _, r := range rows {
					fmt.Fprintln(out, cmpOr(r.ID, r.Name))
				}
				return nil
			case format == "json":
				enc := json.NewEncoder(out)
				for _, r := range rows {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			case format == "table" || format == "":
				return psTable(out, rows)
			}
			return psTemplate(out, format, rows)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "also show stopped members")
	f.StringVar(&format, "format", "table", "table, json, or a Go template (--format '{{.Name}}')")
	f.BoolVarP(&quiet, "quiet", "q", false, "only IDs (a VM's: qemu:PID, or its name when it is stopped)")
	f.BoolVar(&services, "services", false, "only the services' and VMs' names")
	f.StringArrayVar(&status, "status", nil, "only members in this state: "+strings.Join(psStates, ", "))
	f.StringArrayVar(&filters, "filter", nil, "filter: status=STATE")
	f.BoolVar(&noTrunc, "no-trunc", false, "do not truncate IDs")
	f.BoolVar(&orphans, "orphans", true, "include containers of services the file no longer has")
	return cmd
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// psRow is one member as ps --format json prints it: compose's keys, then
// foldup's.
type psRow struct {
	ID           string
	Name         string
	Names        string
	Image        string
	Command      string
	Project      string
	Service      string
	Created      int64
	CreatedAt    string
	RunningFor   string
	State        string
	Status       string
	Health       string
	ExitCode     int
	Publishers   []executor.Publisher
	Ports        string
	Labels       string
	LocalVolumes string
	Mounts       string
	Networks     string
	Size         string

	Kind      string
	Member    string
	Addresses []string
	Accel     string `json:",omitempty"`
	Netem     string `json:",omitempty"`
}

func newPsRow(m executor.MemberStatus, noTrunc bool) psRow {
	r := psRow{
		ID: m.ID, Name: m.Name, Names: m.Name, Image: m.Image, Command: strconv.Quote(m.Command), Project: m.Project,
		Service: m.Service, State: m.State, Status: m.Status, Health: m.Health, ExitCode: m.ExitCode,
		Publishers: m.Publishers, Ports: strings.Join(m.Ports, ", "), Networks: strings.Join(m.Networks, ","),
		LocalVolumes: "0", Kind: m.Kind, Member: m.Member, Addresses: m.Addresses, Accel: m.Accel, Netem: m.Netem,
	}
	if m.Command == "" {
		r.Command = ""
	}
	if !noTrunc && len(r.ID) > 12 && !strings.HasPrefix(r.ID, "qemu:") {
		r.ID = r.ID[:12]
	}
	if r.Publishers == nil {
		r.Publishers = []executor.Publisher{}
	}
	if r.Addresses == nil {
		r.Addresses = []string{}
	}
	if !m.Created.IsZero() {
		r.Created = m.Created.Unix()
		r.CreatedAt = m.Created.Format("2006-01-02 15:04:05 -0700 MST")
		r.RunningFor = units.HumanDuration(time.Since(m.Created)) + " ago"
	}
	var labels []string
	for _, k := range slices.Sorted(maps.Keys(m.Labels)) {
		labels = append(labels, k+"="+m.Labels[k])
	}
	r.Labels = strings.Join(labels, ",")
	return r
}

// psTable is ps's table: compose's columns (NAME, IMAGE, SERVICE,
// CREATED, STATUS, PORTS), with foldup's KIND and ADDRESSES. A VM's image
// is its file's base name.
func psTable(out io.Writer, rows []psRow) error {
	tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
	// NETEM, when a member's links are impaired.
	netem := slices.ContainsFunc(rows, func(r psRow) bool { return r.Netem != "" })
	header := "NAME\tIMAGE\tKIND\tSERVICE\tCREATED\tSTATUS\tADDRESSES\tPORTS"
	if netem {
		header += "\tNETEM"
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		kind, image := r.Kind, r.Image
		if r.Accel != "" {
			kind += " (" + r.Accel + ")"
		}
		if kind != "container" && strings.Contains(image, "/") && !strings.Contains(image, "://") {
			image = filepath.Base(image)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", r.Name, image, kind, r.Service, r.RunningFor, r.Status,
			strings.Join(r.Addresses, ","), r.Ports)
		if netem {
			fmt.Fprintf(tw, "\t%s", r.Netem)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// psTemplate prints each row through a Go template, as compose's
// --format does ("table " before it prints no header here).
func psTemplate(out io.Writer, format string, rows []psRow) error {
	format = strings.TrimPrefix(format, "table ")
	t, err := template.New("ps").Funcs(template.FuncMap{
		"json": func(v any) (string, error) { b, err := json.Marshal(v); return string(b), err },
		"join": strings.Join,
	}).Parse(format)
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	for _, r := range rows {
		if err := t.Execute(out, r); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		fmt.Fprintln(out)
	}
	return nil
}
