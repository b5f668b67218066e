// Package spec loads foldup files: a Compose file (services, networks,
// volumes, ...) plus foldup's own vms, dns and x-foldup sections.
//
// Load reads every file with yaml.v3, so that each key and value keeps its
// line and column; interpolates ${VARS} from the environment and .env;
// validates every document against schema.json; hands the Compose part to
// compose-go (merge, profiles, normalisation, its own checks); and decodes
// and checks foldup's part itself. Every problem is reported, sorted, as
// FILE:LINE:COL: field.path: message, and nothing is created.
package spec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

// Options say which files to load and how, as docker compose's global flags
// do. The zero value looks up a file in the current directory.
type Options struct {
	// Files are loaded and merged in order (-f). "-" reads Stdin. Empty:
	// COMPOSE_FILE, else the first of FileNames found in the working
	// directory or its parents, plus its override file.
	Files []string
	// WorkingDir is the project directory (--project-directory): relative
	// paths in the files are resolved against it and .env is read from it.
	// Default: the directory of the first file.
	WorkingDir string
	// ProjectName (-p). Default: COMPOSE_PROJECT_NAME, else the files'
	// name:, else the project directory's base name.
	ProjectName string
	// EnvFiles replace the project directory's .env (--env-file).
	EnvFiles []string
	// Profiles to activate (--profile). Default: COMPOSE_PROFILES.
	Profiles []string
	// Environ is the process environment, KEY=VALUE. Nil: os.Environ().
	Environ []string
	// Stdin is read for the file "-". Nil: os.Stdin.
	Stdin io.Reader
	// NameOnly is for commands that need only the project's identity
	// (down, ps, logs, stop, ...): the files the project names (kernels,
	// initrds, cloud-init files) are not checked, so that a project whose
	// images were deleted can still be taken down.
	NameOnly bool
	// AllResources keeps the networks, volumes, secrets and configs that
	// no active service or VM uses (config --all-resources).
	AllResources bool
}

// FileNames are looked up, in this order, when no file is named.
var FileNames = []string{"foldup.yaml", "foldup.yml", "compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"}

// overrideNames maps a file name to the override files loaded after it.
var overrideNames = map[string][]string{
	"foldup.yaml":         {"foldup.override.yaml", "foldup.override.yml"},
	"foldup.yml":          {"foldup.override.yml", "foldup.override.yaml"},
	"compose.yaml":        {"compose.override.yaml", "compose.override.yml"},
	"compose.yml":         {"compose.override.yml", "compose.override.yaml"},
	"docker-compose.yml":  {"docker-compose.override.yml", "docker-compose.override.yaml"},
	"docker-compose.yaml": {"docker-compose.override.yaml", "docker-compose.override.yml"},
}

// ErrNoFile is returned when no file is named and none is found.
var ErrNoFile = errors.New("no foldup.yaml, compose.yaml or docker-compose.yml found in this directory or any parent")

// Load reads, merges, interpolates and validates the files opts names. On
// failure it returns an ErrorList with every problem found.
func Load(ctx context.Context, opts Options) (*Project, error) {
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}
	env := types.NewMapping(environ)

	files, err := findFiles(opts, env)
	if err != nil {
		return nil, err
	}
	wd := opts.WorkingDir
	if wd == "" {
		wd = filepath.Dir(files[0])
		if files[0] == "-" {
			wd, _ = os.Getwd()
		}
	}
	if wd, err = filepath.Abs(wd); err != nil {
		return nil, err
	}
	if env, err = dotEnv(env, wd, opts.EnvFiles); err != nil {
		return nil, err
	}

	var srcs []*source
	var errs ErrorList
	for _, f := range files {
		content, display, err := readFile(f, opts.Stdin)
		if err != nil {
			return nil, err
		}
		ss, err := parseSources(f, display, content)
		if err != nil {
			errs = append(errs, Errors(err)...)
			continue
		}
		srcs = append(srcs, ss...)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	profiles := opts.Profiles
	if len(profiles) == 0 && env["COMPOSE_PROFILES"] != "" {
		profiles = strings.Split(env["COMPOSE_PROFILES"], ",")
	}
	return load(ctx, srcs, loadConfig{
		workingDir:   wd,
		env:          env,
		name:         opts.ProjectName,
		profiles:     profiles,
		nameOnly:     opts.NameOnly,
		allResources: opts.AllResources,
	})
}

// LoadBytes loads one file's content as if it were at path. It is for
// tests and fuzzing; referenced files are still looked up on disk.
func LoadBytes(ctx context.Context, path string, content []byte, environ []string) (*Project, error) {
	srcs, err := parseSources(path, filepath.Base(path), content)
	if err != nil {
		return nil, err
	}
	return load(ctx, srcs, loadConfig{workingDir: filepath.Dir(path), env: types.NewMapping(environ)})
}

func findFiles(opts Options, env types.Mapping) ([]string, error) {
	if len(opts.Files) > 0 {
		var out []string
		for _, f := range opts.Files {
			if f == "-" {
				out = append(out, f)
				continue
			}
			if !filepath.IsAbs(f) && opts.WorkingDir != "" && !fileExists(f) {
				f = filepath.Join(opts.WorkingDir, f)
			}
			abs, err := filepath.Abs(f)
			if err != nil {
				return nil, err
			}
			out = append(out, abs)
		}
		return out, nil
	}
	if cf := env["COMPOSE_FILE"]; cf != "" {
		sep := env["COMPOSE_PATH_SEPARATOR"]
		if sep == "" {
			sep = string(os.PathListSeparator)
		}
		return findFiles(Options{Files: strings.Split(cf, sep), WorkingDir: opts.WorkingDir}, nil)
	}
	dir := opts.WorkingDir
	if dir == "" {
		var err error
		if dir, err = os.Getwd(); err != nil {
			return nil, err
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for {
		for _, name := range FileNames {
			f := filepath.Join(dir, name)
			if !fileExists(f) {
				continue
			}
			out := []string{f}
			for _, o := range overrideNames[name] {
				if of := filepath.Join(dir, o); fileExists(of) {
					out = append(out, of)
					break
				}
			}
			return out, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir || opts.WorkingDir != "" {
			return nil, ErrNoFile
		}
		dir = parent
	}
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

func readFile(f string, stdin io.Reader) ([]byte, string, error) {
	if f == "-" {
		if stdin == nil {
			stdin = os.Stdin
		}
		b, err := io.ReadAll(stdin)
		return b, "-", err
	}
	display := displayName(f)
	b, err := os.ReadFile(f)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, "", &Error{Pos: Pos{File: display}, Msg: "no such file"}
		}
		return nil, "", &Error{Pos: Pos{File: display}, Msg: err.Error()}
	}
	return b, display, nil
}

// dotEnv adds the variables of the env files (default: wd/.env, when it
// exists) to env. Variables already set in the process environment win, as
// in docker compose.
func dotEnv(env types.Mapping, wd string, files []string) (types.Mapping, error) {
	if len(files) == 0 {
		if v := env["COMPOSE_DISABLE_ENV_FILE"]; v == "1" || strings.EqualFold(v, "true") {
			return env, nil
		}
		if f := filepath.Join(wd, ".env"); fileExists(f) {
			files = []string{f}
		}
	}
	for i, f := range files {
		if !filepath.IsAbs(f) {
			files[i] = filepath.Join(wd, f)
		}
		if !fileExists(files[i]) {
			return nil, &Error{Pos: Pos{File: displayName(files[i])}, Msg: "env file not found"}
		}
	}
	vars, err := dotenv.GetEnvFromFile(env, files)
	if err != nil {
		return nil, fmt.Errorf("reading env file: %w", err)
	}
	return env.Clone().Merge(vars), nil
}

type loadConfig struct {
	workingDir   string
	env          types.Mapping
	name         string
	profiles     []string
	nameOnly     bool // Options.NameOnly
	allResources bool // Options.AllResources
}

// load runs the pipeline over parsed sources: interpolate, validate, hand
// Compose's part to compose-go, decode foldup's part, check the whole.
func load(ctx context.Context, srcs []*source, cfg loadConfig) (*Project, error) {
	var errs ErrorList
	docs := make([]map[string]any, len(srcs))
	for i, src := range srcs {
		docs[i] = interpolate(src, src.raw, nil, cfg.env, &errs).(map[string]any)
	}
	compose := usesCompose(docs)
	if compose {
		warmComposeSchema() // compiles while foldup's does
	}
	if sch, err := compiled(docs); err != nil {
		errs = append(errs, &Error{Pos: Pos{File: srcs[0].display}, Msg: "schema: " + err.Error()})
	} else {
		for i, src := range srcs {
			errs = append(errs, validateSchema(sch, src, docs[i])...)
		}
	}

	p := &Project{
		WorkingDir:  cfg.workingDir,
		ServiceDeps: map[string]types.DependsOnConfig{},
		Environment: cfg.env,
		Variables:   map[string]template.Variable{},
		srcs:        srcs,
		cfg:         cfg,
	}
	for _, src := range srcs {
		maps.Copy(p.Variables, template.ExtractVariables(src.raw, template.DefaultPattern))
	}
	for _, s := range srcs {
		if len(p.Files) == 0 || p.Files[len(p.Files)-1] != s.path {
			p.Files = append(p.Files, s.path)
		}
	}
	name, err := projectName(srcs, docs, cfg)
	if err != nil {
		errs = append(errs, Errors(err)...)
	}
	p.Name = name

	// foldup's own sections are decoded even when the schema found
	// problems, so that one run reports everything it can.
	d := &foldupDecoder{p: p, errs: &errs, env: cfg.env, noFileChecks: cfg.nameOnly}
	vmNames := d.vmNames(docs)
	d.decodeOwn(docs)
	if len(errs) > 0 {
		d.checkComposeRefs(docs, vmNames)
		return nil, errs.Err()
	}

	d.checkEnvFileFormats(docs)
	if len(errs) > 0 {
		return nil, errs.Err()
	}
	composeProject, err := loadCompose(ctx, p, srcs, vmNames, cfg, compose)
	if err != nil {
		// Explain compose-go's one error with foldup's own checks, which
		// find them all and know where they are; fall back to compose-go's
		// message, positioned as well as its wording allows.
		d.checkComposeRefs(docs, vmNames)
		if len(errs) == 0 {
			errs = append(errs, composeError(srcs, err))
		}
		return nil, errs.Err()
	}
	for k := range composeProject.Extensions {
		if strings.HasPrefix(k, hiddenPrefix) {
			delete(composeProject.Extensions, k)
		}
	}
	p.Compose = composeProject
	d.decodeWithCompose(docs, cfg.profiles)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	if !cfg.allResources {
		p.withoutUnused()
	}
	return p, nil
}

// withoutUnused drops the networks, volumes, secrets and configs that no
// active service or VM uses, as compose does: a project whose services
// are all in profiles not enabled makes no network (nor DNS server on
// it). Options.AllResources keeps them (config --all-resources).
func (p *Project) withoutUnused() {
	all := p.Compose.Networks
	p.Compose = p.Compose.WithoutUnnecessaryResources()
	for _, vm := range p.VMs {
		for name := range vm.Networks {
			if n, ok := all[name]; ok {
				if p.Compose.Networks == nil {
					p.Compose.Networks = types.Networks{}
				}
				p.Compose.Networks[name] = n
			}
		}
	}
}

func projectName(srcs []*source, docs []map[string]any, cfg loadConfig) (string, error) {
	name, where := cfg.name, Pos{}
	if name == "" {
		name = cfg.env["COMPOSE_PROJECT_NAME"]
	}
	if name == "" {
		for i := len(docs) - 1; i >= 0; i-- {
			if n, ok := docs[i]["name"].(string); ok && n != "" {
				name = n
				where, _ = srcs[i].locate([]string{"name"})
				break
			}
		}
	}
	if name == "" {
		name = loader.NormalizeProjectName(filepath.Base(cfg.workingDir))
	}
	if name != loader.NormalizeProjectName(name) || name == "" {
		return name, &Error{Pos: where, Field: "name", Msg: fmt.Sprintf("project name %q must contain only lowercase letters, digits, dashes and underscores, and start with a letter or digit", name)}
	}
	return name, nil
}

// interpolate substitutes ${VAR} forms in every string of v, as compose
// does, recording errors at their exact position (compose-go's own
// interpolation loses list indexes).
func interpolate(src *source, v any, path []string, env types.Mapping, errs *ErrorList) any {
	switch v := v.(type) {
	case string:
		// compose-go interpolates the same text again and warns of unset
		// variables then; warning here too would say everything twice.
		out, err := template.SubstituteWithOptions(v, func(k string) (string, bool) {
			val, ok := env[k]
			return val, ok
		}, template.WithoutLogging)
		if err != nil {
			pos, _ := src.locate(path)
			var ite *template.InvalidTemplateError
			if errors.As(err, &ite) {
				errs.Add(pos, joinPath(path), "invalid interpolation %q (write $$ for a literal $)", ite.Template)
			} else {
				errs.Add(pos, joinPath(path), "%v", err)
			}
			return v
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = interpolate(src, e, append(path, k), env, errs)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = interpolate(src, e, append(path, fmt.Sprint(i)), env, errs)
		}
		return out
	}
	return v
}

// loadCompose hands the Compose part of the sources to compose-go. foldup's
// top-level keys are renamed to x- extensions, which Compose ignores, and
// depends_on entries naming VMs are taken out, since compose-go would call
// them undefined services. Without a Compose section (validate false)
// compose-go is not asked to validate: its checks, schema and semantic,
// have nothing to look at then but the name, which foldup has checked, and
// x- extensions.
func loadCompose(ctx context.Context, p *Project, srcs []*source, vmNames map[string]bool, cfg loadConfig, validate bool) (*types.Project, error) {
	details := types.ConfigDetails{
		WorkingDir:  cfg.workingDir,
		Environment: cfg.env,
	}
	for i, src := range srcs {
		content, err := composeContent(src, i, vmNames)
		if err != nil {
			return nil, err
		}
		details.ConfigFiles = append(details.ConfigFiles, types.ConfigFile{Filename: src.path, Content: content})
	}
	return loader.LoadWithContext(ctx, details, func(o *loader.Options) {
		o.SetProjectName(p.Name, true)
		o.SkipValidation = !validate
		o.Profiles = cfg.profiles
		if len(o.Profiles) == 0 {
			o.Profiles = nil
		}
	})
}

// usesCompose reports whether docs have a section for compose-go to
// validate: a top-level key other than the project's name, foldup's own
// sections and x- extensions.
func usesCompose(docs []map[string]any) bool {
	for _, doc := range docs {
		for k := range doc {
			switch {
			case k == "name" || isFoldupSection(k) || strings.HasPrefix(k, "x-"):
			default:
				return true
			}
		}
	}
	return false
}

// isFoldupSection reports whether k is one of the top-level sections
// foldup adds to the Compose format (x-foldup is an extension already).
func isFoldupSection(k string) bool { return k == "vms" || k == "dns" }

// hiddenPrefix names the extensions that carry foldup's own sections
// through compose-go: one key per document, so that compose-go never tries
// to merge them (foldup merges VMs itself, with its own rules).
const hiddenPrefix = "x-foldup-hidden-"

func composeContent(src *source, index int, vmNames map[string]bool) ([]byte, error) {
	// Work on a fresh parse: src.doc keeps the user's tree for positions.
	root := findDoc(src.content, src.doc.Line)
	if root == nil {
		return nil, fmt.Errorf("%s: document at line %d vanished on re-reading", src.display, src.doc.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch k := root.Content[i]; {
		case isFoldupSection(k.Value):
			k.Value = fmt.Sprintf("%s%s-%d", hiddenPrefix, k.Value, index)
		case k.Value == "services":
			stripVMDeps(root.Content[i+1], vmNames)
		}
	}
	return yaml.Marshal(root)
}

// findDoc re-parses content and returns the root mapping of the document
// that starts at line.
func findDoc(content []byte, line int) *yaml.Node {
	dec := yaml.NewDecoder(strings.NewReader(string(content)))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			return nil
		}
		if len(doc.Content) > 0 && doc.Content[0].Line == line {
			return doc.Content[0]
		}
	}
}

func stripVMDeps(services *yaml.Node, vmNames map[string]bool) {
	if services.Kind != yaml.MappingNode {
		return
	}
	for i := 1; i < len(services.Content); i += 2 {
		svc := services.Content[i]
		if svc.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(svc.Content); j += 2 {
			if svc.Content[j].Value != "depends_on" {
				continue
			}
			deps := svc.Content[j+1]
			var kept []*yaml.Node
			switch deps.Kind {
			case yaml.SequenceNode:
				for _, c := range deps.Content {
					if !vmNames[c.Value] {
						kept = append(kept, c)
					}
				}
			case yaml.MappingNode:
				for k := 0; k+1 < len(deps.Content); k += 2 {
					if !vmNames[deps.Content[k].Value] {
						kept = append(kept, deps.Content[k], deps.Content[k+1])
					}
				}
			default:
				continue
			}
			deps.Content = kept
		}
	}
}

// hostArch is the qemu name of the host's architecture.
func hostArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "riscv64":
		return "riscv64"
	}
	return runtime.GOARCH
}
