package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

func newConfigCmd(g *globalFlags) *cobra.Command {
	var (
		format, output, hash                string
		services, vms, quiet, all           bool
		images, networks, volumes, profiles bool
		environment, variables              bool
		mo                                  spec.ModelOptions
	)
	cmd := &cobra.Command{
		Use:   "config [SERVICE|VM...]",
		Short: "Validate the project and print it normalised",
		Long: `config loads the project (files merged, variables interpolated, defaults
filled, relative paths resolved) and prints it: the Compose part as
docker compose config does, then vms and dns. Errors name file, line and
column, all of them at once. With SERVICE or VM names, only those, what
they depend on, and what those use. --services, --vms, --images,
--networks, --volumes and --profiles print names, one a line; --hash the
configuration hash of each service and VM ("*" for all), as up compares
them. --no-interpolate and --no-normalize print the files merged, with
${VAR} as written or without the defaults normalising adds (the project
is checked as it is loaded for up all the same).`,
		Example: `  foldup config -q && echo valid
  foldup config web --images
  foldup config | foldup -f - config`,
		ValidArgsFunction: completeMembers(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := g.options(cmd.InOrStdin())
			o.AllResources = all
			p, err := spec.Load(cmd.Context(), o)
			if err != nil {
				return err
			}
			if len(args) > 0 {
				if err := p.Select(args); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			if output != "" {
				f, err := os.Create(output)
				if err != nil {
					return err
				}
				defer f.Close()
				out = f
			}
			lines := func(names []string) error {
				slices.Sort(names)
				for _, n := range slices.Compact(names) {
					fmt.Fprintln(out, n)
				}
				return nil
			}
			switch {
			case quiet:
				return nil
			case services || vms:
				var names []string
				if services {
					names = append(names, p.ServiceNames()...)
				}
				if vms {
					names = append(names, p.VMNames()...)
				}
				return lines(names)
			case images:
				var names []string
				for _, s := range p.Compose.Services {
					names = append(names, cmpOrImage(s.Image, p.Compose.Name+"-"+s.Name))
				}
				for _, v := range p.VMs {
					names = append(names, cmpOrImage(v.Image, v.Kernel))
				}
				return lines(names)
			case networks:
				return lines(slices.Collect(maps.Keys(p.Compose.Networks)))
			case volumes:
				return lines(slices.Collect(maps.Keys(p.Compose.Volumes)))
			case profiles:
				var names []string
				for _, s := range p.Compose.Services {
					names = append(names, s.Profiles...)
				}
				for _, s := range p.Compose.DisabledServices {
					names = append(names, s.Profiles...)
				}
				for _, v := range p.VMs {
					names = append(names, v.Profiles...)
				}
				for _, v := range p.Disabled {
					names = append(names, v.Profiles...)
				}
				return lines(names)
			case environment:
				for _, k := range slices.Sorted(maps.Keys(p.Environment)) {
					fmt.Fprintf(out, "%s=%s\n", k, p.Environment[k])
				}
				return nil
			case variables:
				tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
				fmt.Fprintln(tw, "NAME\tREQUIRED\tDEFAULT VALUE\tALTERNATE VALUE")
				for _, k := range slices.Sorted(maps.Keys(p.Variables)) {
					v := p.Variables[k]
					fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", v.Name, v.Required, v.DefaultValue, v.PresenceValue)
				}
				return tw.Flush()
			case hash != "":
				pl, err := planner.Compute(p, planner.Observed{}, planner.Intent{})
				if err != nil {
					return err
				}
				want := strings.Split(hash, ",")
				for _, m := range pl.Members {
					if slices.Contains(want, "*") || slices.Contains(want, m.Service) {
						fmt.Fprintf(out, "%s %s\n", m.Name, m.ConfigHash)
					}
				}
				return nil
			}
			if mo.NoInterpolate || mo.NoNormalize {
				model, err := p.Model(cmd.Context(), mo)
				if err != nil {
					return err
				}
				b, err := renderModel(model, format)
				if err != nil {
					return err
				}
				if !mo.NoInterpolate {
					b = bytes.ReplaceAll(b, []byte("$"), []byte("$$"))
				}
				_, err = out.Write(b)
				return err
			}
			b, err := render(p, format)
			if err != nil {
				return err
			}
			// Interpolation turned $$ into $: escape every $ again, as
			// compose does, so that the output means the same when it is
			// loaded again (foldup config | foldup -f - config).
			_, err = out.Write(bytes.ReplaceAll(b, []byte("$"), []byte("$$")))
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "yaml", "output format: yaml or json")
	f.BoolVar(&services, "services", false, "print the service names, one a line")
	f.BoolVar(&vms, "vms", false, "print the VM names, one a line")
	f.BoolVar(&images, "images", false, "print the services' images and the VMs' images or kernels, one a line")
	f.BoolVar(&networks, "networks", false, "print the network names, one a line")
	f.BoolVar(&volumes, "volumes", false, "print the volume names, one a line")
	f.BoolVar(&profiles, "profiles", false, "print the profile names, one a line")
	f.StringVar(&hash, "hash", "", `print the configuration hash of these services and VMs ("*": all)`)
	f.StringVarP(&output, "output", "o", "", "write to this file instead of the standard output")
	f.BoolVar(&environment, "environment", false, "print the environment variables are interpolated from, KEY=VALUE")
	f.BoolVar(&variables, "variables", false, "print the variables the files use, whether required, and their defaults")
	f.BoolVar(&mo.NoInterpolate, "no-interpolate", false, "print ${VAR} as the files have it (the project is still checked with it interpolated)")
	f.BoolVar(&mo.NoNormalize, "no-normalize", false, "print the files merged, without the defaults and long forms normalising adds")
	f.BoolVarP(&quiet, "quiet", "q", false, "only validate, print nothing")
	f.BoolVar(&all, "all-resources", false, "keep the networks, volumes, secrets and configs no active service or VM uses")
	return cmd
}

// renderModel prints a model (spec.Project.Model) in compose's key order
// at the top: name, services, networks, volumes, secrets, configs, then
// the others, vms and dns last.
func renderModel(model map[string]any, format string) ([]byte, error) {
	if format == "json" {
		b, err := json.MarshalIndent(model, "", "  ")
		return append(b, '\n'), err
	}
	if format != "yaml" {
		return nil, fmt.Errorf("--format %q: yaml or json", format)
	}
	rank := func(k string) int {
		if i := slices.Index([]string{"name", "services", "networks", "volumes", "secrets", "configs"}, k); i >= 0 {
			return i
		}
		if i := slices.Index([]string{"vms", "dns"}, k); i >= 0 {
			return 100 + i
		}
		return 50
	}
	keys := slices.SortedFunc(maps.Keys(model), func(a, b string) int {
		if c := rank(a) - rank(b); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	root := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range keys {
		var kn, vn yaml.Node
		kn.SetString(k)
		if err := vn.Encode(model[k]); err != nil {
			return nil, err
		}
		root.Content = append(root.Content, &kn, &vn)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

func cmpOrImage(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// render prints the normalised project: compose-go's own rendering of the
// Compose part, with vms and dns added as top-level keys.
func render(p *spec.Project, format string) ([]byte, error) {
	switch format {
	case "yaml":
		b, err := p.Compose.MarshalYAML()
		if err != nil {
			return nil, err
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return nil, err
		}
		root := doc.Content[0]
		for _, kv := range foldupSections(p) {
			var k, v yaml.Node
			k.SetString(kv.key)
			if err := v.Encode(kv.value); err != nil {
				return nil, err
			}
			root.Content = append(root.Content, &k, &v)
		}
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(&doc); err != nil {
			return nil, err
		}
		return buf.Bytes(), enc.Close()
	case "json":
		b, err := p.Compose.MarshalJSON()
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		for _, kv := range foldupSections(p) {
			m[kv.key] = kv.value
		}
		b, err = json.MarshalIndent(m, "", "  ")
		return append(b, '\n'), err
	}
	return nil, fmt.Errorf("unknown format %q: use yaml or json", format)
}

type section struct {
	key   string
	value any
}

func foldupSections(p *spec.Project) []section {
	var out []section
	if len(p.VMs) > 0 {
		out = append(out, section{"vms", p.VMs})
	}
	if len(p.DNS) > 0 {
		out = append(out, section{"dns", p.DNS})
	}
	return out
}
