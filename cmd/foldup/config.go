package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/foldup/foldup/spec"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

func newConfigCmd(g *globalFlags) *cobra.Command {
	var (
		format   string
		services bool
		vms      bool
		quiet    bool
		all      bool
	)
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Validate the project and print it normalised",
		Long: `config loads the project (files merged, variables interpolated, defaults
filled, relative paths resolved) and prints it: the Compose part as
docker compose config does, then vms and dns. Errors name file, line and
column, all of them at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := g.options(cmd.InOrStdin())
			o.AllResources = all
			p, err := spec.Load(cmd.Context(), o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
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
				slices.Sort(names)
				for _, n := range names {
					fmt.Fprintln(out, n)
				}
				return nil
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
	f.BoolVarP(&quiet, "quiet", "q", false, "only validate, print nothing")
	f.BoolVar(&all, "all-resources", false, "keep the networks, volumes, secrets and configs no active service or VM uses")
	return cmd
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
