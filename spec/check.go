package spec

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/format"
	"github.com/compose-spec/compose-go/v2/types"
)

// serviceDeps collects the depends_on entries of services that name VMs.
// compose-go never sees them (see stripVMDeps).
func (d *foldupDecoder) serviceDeps(docs []map[string]any) {
	all := d.all
	for _, doc := range docs {
		svcs, _ := doc["services"].(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(svcs)) {
			svc, _ := svcs[name].(map[string]any)
			norm := normalizeVM(map[string]any{"depends_on": svc["depends_on"]})
			deps, _ := norm["depends_on"].(map[string]any)
			for target := range deps {
				if all[target] == nil {
					delete(deps, target)
				}
			}
			if len(deps) == 0 {
				continue
			}
			parsed := d.dependsOn([]string{"services", name, "depends_on"}, deps)
			if d.p.ServiceDeps[name] == nil {
				d.p.ServiceDeps[name] = types.DependsOnConfig{}
			}
			for k, v := range parsed {
				d.p.ServiceDeps[name][k] = v
			}
		}
	}
	// Services disabled by profiles take their dependencies with them.
	for name := range d.p.ServiceDeps {
		if _, ok := d.p.Compose.Services[name]; !ok {
			delete(d.p.ServiceDeps, name)
		}
	}
}

// check runs the checks that span VMs and services.
func (d *foldupDecoder) check() {
	p := d.p
	svc := func(name string) (disabled, ok bool) {
		if _, ok := p.Compose.Services[name]; ok {
			return false, true
		}
		_, ok = p.Compose.DisabledServices[name]
		return true, ok
	}
	for _, name := range slices.Sorted(maps.Keys(d.all)) {
		if !isLabel(name) {
			d.keyErrorf([]string{"vms", name}, "%q is not a VM name: it is the VM's hostname, DNS name and directory, so letters, digits, - and _ (at most 63, no - first or last)", name)
		}
		if _, ok := svc(name); ok {
			d.keyErrorf([]string{"vms", name}, "name already used by service %q: VMs and services share one namespace (and DNS)", name)
		}
	}
	// Docker's rule for container names; it also keeps "." and ".." out of
	// the paths foldup makes from member names.
	names := slices.Concat(slices.Collect(maps.Keys(p.Compose.Services)), slices.Collect(maps.Keys(p.Compose.DisabledServices)))
	slices.Sort(names)
	for _, name := range names {
		if !serviceNameRE.MatchString(name) {
			d.keyErrorf([]string{"services", name}, "%q is not a service name: a letter or digit first, then letters, digits, ., - or _", name)
		}
	}
	usesDefault := false
	for _, name := range p.VMNames() {
		vm := p.VMs[name]
		if len(vm.Networks) == 0 {
			vm.Networks = map[string]*VMNetwork{"default": {}}
			usesDefault = true
		}
		for _, n := range slices.Sorted(maps.Keys(vm.Networks)) {
			path := []string{"vms", name, "networks", n}
			net, ok := p.Compose.Networks[n]
			switch {
			case n == "default" && !ok:
				usesDefault = true
			case !ok:
				d.keyErrorf(path, "undefined network %q", n)
			case bool(net.External):
				d.keyErrorf(path, "network %q is external: foldup attaches VMs only to networks it creates", n)
			case net.Driver != "" && net.Driver != "bridge":
				d.keyErrorf(path, "network %q has driver %q: VMs need a bridge network", n, net.Driver)
			}
		}
		d.checkDeps(name, []string{"vms", name, "depends_on"}, vm.DependsOn)
	}
	if _, ok := p.Compose.Networks["default"]; usesDefault && !ok {
		if p.Compose.Networks == nil {
			p.Compose.Networks = types.Networks{}
		}
		p.Compose.Networks["default"] = types.NetworkConfig{Name: p.Name + "_default"}
		p.Networks["default"] = d.networkExt("default", p.Compose.Networks["default"])
	}
	for _, name := range slices.Sorted(maps.Keys(p.ServiceDeps)) {
		d.checkDeps(name, []string{"services", name, "depends_on"}, p.ServiceDeps[name])
	}
}

func (d *foldupDecoder) checkDeps(from string, path []string, deps types.DependsOnConfig) {
	p := d.p
	for _, target := range slices.Sorted(maps.Keys(deps)) {
		dep := deps[target]
		tp := append(slices.Clip(path), target)
		if target == from {
			d.keyErrorf(tp, "%s depends on itself", from)
			continue
		}
		_, vmOK := p.VMs[target]
		_, svcOK := p.Compose.Services[target]
		_, vmOff := p.Disabled[target]
		_, svcOff := p.Compose.DisabledServices[target]
		switch {
		case vmOK || svcOK:
		case (vmOff || svcOff) && dep.Required:
			d.keyErrorf(tp, "%q is disabled by its profiles; enable one of them or set required: false", target)
		case vmOff || svcOff:
		default:
			d.keyErrorf(tp, "depends on undefined service or VM %q", target)
		}
	}
}

// checkComposeRefs looks, in the raw documents, for the reference errors
// compose-go stops at one at a time, and reports all of them positioned:
// undefined networks, volumes and dependencies, missing env files.
// envFileFormats are the env_file formats compose reads: .env's (the
// default) and raw (docker run --env-file's; see envraw.go).
var envFileFormats = []string{".env", "raw"}

// checkEnvFileFormats reports, positioned, each env_file entry whose
// format compose does not read; compose-go would name neither the service
// nor the file.
func (d *foldupDecoder) checkEnvFileFormats(docs []map[string]any) {
	for i, doc := range docs {
		services := asMap(doc["services"])
		for _, name := range slices.Sorted(maps.Keys(services)) {
			d.checkServicePorts(d.p.srcs[i], name, asMap(services[name]))
			list, _ := asMap(services[name])["env_file"].([]any)
			for j, e := range list {
				f, ok := asMap(e)["format"].(string)
				if !ok || f == "" || slices.Contains(envFileFormats, f) {
					continue
				}
				path := []string{"services", name, "env_file", strconv.Itoa(j), "format"}
				pos, _ := d.p.srcs[i].locate(path)
				d.errs.Add(pos, joinPath(path), "unsupported format %q: compose reads raw (docker run --env-file's) and .env's, the default", f)
			}
		}
	}
}

// checkServicePorts reports, positioned, each port of a service that
// compose-go would refuse naming neither the service nor the file
// ("invalid hostPort: 99999").
func (d *foldupDecoder) checkServicePorts(src *source, name string, svc map[string]any) {
	ports, _ := svc["ports"].([]any)
	for j, p := range ports {
		var err error
		if long, ok := p.(map[string]any); ok {
			_, err = longPort(long)
		} else {
			_, err = types.ParsePortConfig(fmt.Sprint(p))
		}
		if err != nil {
			path := []string{"services", name, "ports", strconv.Itoa(j)}
			pos, _ := src.locate(path)
			d.errs.Add(pos, joinPath(path), "%v", err)
		}
	}
}

func (d *foldupDecoder) checkComposeRefs(docs []map[string]any, vmNames map[string]bool) {
	declared := func(section string) map[string]bool {
		out := map[string]bool{}
		for _, doc := range docs {
			m, _ := doc[section].(map[string]any)
			for k := range m {
				out[k] = true
			}
		}
		return out
	}
	networks, volumes, services := declared("networks"), declared("volumes"), declared("services")
	networks["default"] = true
	for i, doc := range docs {
		src := d.p.srcs[i]
		vms, _ := doc["vms"].(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(vms)) {
			vm := normalizeVM(asMap(vms[name]))
			if services[name] {
				pos, _ := src.locateKey([]string{"vms", name})
				d.errs.Add(pos, "vms."+name, "name already used by service %q: VMs and services share one namespace (and DNS)", name)
			}
			for _, n := range slices.Sorted(maps.Keys(asMap(vm["networks"]))) {
				if !networks[n] {
					path := []string{"vms", name, "networks", n}
					pos, _ := src.locateKey(path)
					d.errs.Add(pos, joinPath(path), "undefined network %q", n)
				}
			}
			for _, t := range slices.Sorted(maps.Keys(asMap(vm["depends_on"]))) {
				if !services[t] && !vmNames[t] {
					path := []string{"vms", name, "depends_on", t}
					pos, _ := src.locateKey(path)
					d.errs.Add(pos, joinPath(path), "depends on undefined service or VM %q", t)
				}
			}
		}
		add := func(keyPos bool, path []string, format string, args ...any) {
			var pos Pos
			if keyPos {
				pos, _ = src.locateKey(path)
			} else {
				pos, _ = src.locate(path)
			}
			d.errs.Add(pos, joinPath(path), format, args...)
		}
		svcs, _ := doc["services"].(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(svcs)) {
			svc, _ := svcs[name].(map[string]any)
			at := func(f ...string) []string { return append([]string{"services", name}, f...) }
			nets := svc["networks"]
			if l, ok := nets.([]any); ok {
				for j, n := range l {
					if !networks[fmt.Sprint(n)] {
						add(false, at("networks", strconv.Itoa(j)), "undefined network %q", n)
					}
				}
			}
			if m, ok := nets.(map[string]any); ok {
				for _, n := range slices.Sorted(maps.Keys(m)) {
					if !networks[n] {
						add(true, at("networks", n), "undefined network %q", n)
					}
				}
			}
			deps := normalizeVM(map[string]any{"depends_on": svc["depends_on"]})["depends_on"]
			if m, ok := deps.(map[string]any); ok {
				for _, t := range slices.Sorted(maps.Keys(m)) {
					if !services[t] && !vmNames[t] {
						add(true, at("depends_on", t), "depends on undefined service or VM %q", t)
					}
				}
			}
			if _, named := svc["container_name"]; named {
				scale := svc["scale"]
				if dep, ok := svc["deploy"].(map[string]any); ok && scale == nil {
					scale = dep["replicas"]
				}
				if n, err := strconv.Atoi(fmt.Sprint(scale)); err == nil && n > 1 {
					add(false, at("container_name"), "a container name is unique, so it cannot name %d replicas", n)
				}
			}
			vols, _ := svc["volumes"].([]any)
			for j, v := range vols {
				src := ""
				switch v := v.(type) {
				case string:
					if _, err := format.ParseVolume(v); err != nil {
						add(false, at("volumes", strconv.Itoa(j)), "%q: %v", v, err)
						continue
					}
					src, _, _ = strings.Cut(v, ":")
					if !strings.Contains(v, ":") {
						src = "" // anonymous volume
					}
				case map[string]any:
					if t, _ := v["type"].(string); t == "volume" {
						src, _ = v["source"].(string)
					}
				}
				if src != "" && !strings.ContainsAny(src[:1], "./~$") && !volumes[src] {
					add(false, at("volumes", strconv.Itoa(j)), "undefined volume %q", src)
				}
			}
			for j, f := range envFiles(svc["env_file"]) {
				if !f.required {
					continue
				}
				p := f.path
				if !filepath.IsAbs(p) {
					p = filepath.Join(d.p.WorkingDir, p)
				}
				if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
					path := at("env_file")
					if _, isList := svc["env_file"].([]any); isList {
						path = at("env_file", strconv.Itoa(j))
					}
					add(false, path, "env file %s not found", f.path)
				}
			}
		}
	}
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

type envFile struct {
	path     string
	required bool
}

func envFiles(v any) []envFile {
	switch v := v.(type) {
	case string:
		return []envFile{{v, true}}
	case []any:
		var out []envFile
		for _, e := range v {
			switch e := e.(type) {
			case string:
				out = append(out, envFile{e, true})
			case map[string]any:
				f := envFile{required: true}
				f.path, _ = e["path"].(string)
				if r, ok := e["required"].(bool); ok {
					f.required = r
				}
				out = append(out, f)
			}
		}
		return out
	}
	return nil
}

// composeMessages map compose-go's error wordings to the field they are
// about, so that even its errors get a position.
var composeMessages = []struct {
	re   *regexp.Regexp
	path func(m []string) []string
}{
	{regexp.MustCompile(`^service "([^"]+)" refers to undefined network ([^:]+)`), func(m []string) []string { return []string{"services", m[1], "networks", m[2]} }},
	{regexp.MustCompile(`^service "([^"]+)" depends on undefined service "?([^":]+)"?`), func(m []string) []string { return []string{"services", m[1], "depends_on", m[2]} }},
	{regexp.MustCompile(`^service "([^"]+)" refers to undefined volume ([^:]+)`), func(m []string) []string { return []string{"services", m[1], "volumes", m[2]} }},
	{regexp.MustCompile(`^service "([^"]+)" refers to undefined (?:build )?secret ([^:]+)`), func(m []string) []string { return []string{"services", m[1], "secrets", m[2]} }},
	{regexp.MustCompile(`^service "([^"]+)" refers to undefined config ([^:]+)`), func(m []string) []string { return []string{"services", m[1], "configs", m[2]} }},
	{regexp.MustCompile(`^dependency cycle detected: ([^ ]+) -> ([^ ]+)`), func(m []string) []string { return []string{"services", m[1], "depends_on", m[2]} }},
	{regexp.MustCompile(`^service "?([^" ]+)"? `), func(m []string) []string { return []string{"services", m[1]} }},
	{regexp.MustCompile(`^(services\.[^: ]+):`), func(m []string) []string { return []string{m[1]} }},
}

// composeError positions an error from compose-go. Its messages name a
// field by dotted path or by service name, never by line.
func composeError(srcs []*source, err error) *Error {
	msg := err.Error()
	msg = strings.TrimSuffix(msg, ": invalid compose project")
	for _, cm := range composeMessages {
		m := cm.re.FindStringSubmatch(msg)
		if m == nil {
			continue
		}
		path := cm.path(m)
		if len(path) == 1 { // a dotted path from compose-go
			path = srcs[len(srcs)-1].splitDotted(path[0])
			msg = strings.TrimSpace(strings.TrimPrefix(msg, m[0]))
		}
		return &Error{Pos: locate(srcs, path, true), Field: joinPath(path), Msg: msg}
	}
	return &Error{Pos: Pos{File: srcs[0].display}, Msg: msg}
}
