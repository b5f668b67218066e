package spec

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// ModelOptions say what Model leaves as the files have it, as docker
// compose config's --no-interpolate and --no-normalize do.
type ModelOptions struct {
	NoInterpolate bool // ${VAR} stays as written
	NoNormalize   bool // no defaults added, short forms kept
}

// Model is the loaded project as a document, the files merged: the
// Compose part as compose-go's model (interpolated and normalised unless
// o says not), and foldup's vms and dns merged as Load merges them
// (interpolated unless o says not; a VM's short forms are made long only
// where two files must merge them). Only the active services and VMs that
// p has (after Select) are in it. Interpolation having been skipped or
// not, Load has checked the project already.
func (p *Project) Model(ctx context.Context, o ModelOptions) (map[string]any, error) {
	details := types.ConfigDetails{WorkingDir: p.cfg.workingDir, Environment: p.cfg.env}
	vmNames := map[string]bool{}
	for name := range p.VMs {
		vmNames[name] = true
	}
	for name := range p.Disabled {
		vmNames[name] = true
	}
	for i, src := range p.srcs {
		content, err := composeContent(src, i, vmNames)
		if err != nil {
			return nil, err
		}
		details.ConfigFiles = append(details.ConfigFiles, types.ConfigFile{Filename: src.path, Content: content})
	}
	model, err := loader.LoadModelWithContext(ctx, details, func(lo *loader.Options) {
		lo.SetProjectName(p.Name, true)
		lo.SkipValidation = true
		lo.SkipInterpolation = o.NoInterpolate
		lo.SkipNormalization = o.NoNormalize
		lo.Profiles = p.cfg.profiles
		if len(lo.Profiles) == 0 {
			lo.Profiles = nil
		}
	})
	if err != nil {
		return nil, err
	}
	for k := range model {
		if strings.HasPrefix(k, hiddenPrefix) {
			delete(model, k)
		}
	}
	if services, ok := model["services"].(map[string]any); ok {
		for name := range services {
			if _, active := p.Compose.Services[name]; !active {
				delete(services, name)
			}
		}
		if o.NoInterpolate {
			templatedBinds(services, model["volumes"])
		}
	}

	var vms map[string]any
	var records []any
	var errs ErrorList
	for _, src := range p.srcs {
		doc := src.raw
		if !o.NoInterpolate {
			doc, _ = interpolate(src, src.raw, nil, p.cfg.env, &errs).(map[string]any)
		}
		if l, ok := doc["dns"].([]any); ok {
			records = append(records, l...)
		}
		these, _ := doc["vms"].(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(these)) {
			if _, active := p.VMs[name]; !active {
				continue
			}
			vm, _ := these[name].(map[string]any)
			if vms == nil {
				vms = map[string]any{}
			}
			prev, ok := vms[name].(map[string]any)
			if !ok {
				vms[name] = vm
				continue
			}
			merged := mergeMaps(normalizeVM(prev), normalizeVM(vm))
			for _, k := range appended {
				a, _ := prev[k].([]any)
				b, _ := vm[k].([]any)
				if len(a)+len(b) > 0 {
					merged[k] = append(slices.Clone(a), b...)
				}
			}
			vms[name] = merged
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	if vms != nil {
		model["vms"] = vms
	}
	if records != nil {
		model["dns"] = records
	}
	return model, nil
}

// templatedBinds corrects compose-go's reading of a short volume whose
// source is a variable (${DATA}:/data): not interpolated, the source looks
// like a volume's name, not a path, and compose-go makes it a named volume
// that no top-level volume defines, which reloads as an error. A source
// with a $ that names no top-level volume is a bind mount's path.
func templatedBinds(services map[string]any, volumes any) {
	declared, _ := volumes.(map[string]any)
	for _, s := range services {
		svc, _ := s.(map[string]any)
		mounts, _ := svc["volumes"].([]any)
		for _, m := range mounts {
			v, _ := m.(map[string]any)
			src, _ := v["source"].(string)
			if v["type"] != types.VolumeTypeVolume || !strings.Contains(src, "$") {
				continue
			}
			if _, ok := declared[src]; ok {
				continue
			}
			v["type"] = types.VolumeTypeBind
			delete(v, "volume")
			v["bind"] = map[string]any{"create_host_path": true}
		}
	}
}
