package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/foldup/foldup"
	"github.com/foldup/foldup/internal/testfiles"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// TestSchemaSubsets checks that validating a document against the schema
// of its sections alone (what a load compiles) finds exactly what the
// whole schema finds: the same failures, at the same places, from the same
// schema keywords. The documents are the repository's foldup and Compose
// files, valid and made to fail, the Compose corpus, and, from each, a
// variant with an unknown key and a mistyped value in every section, an
// unknown key in every member (and an x- extension), and every member
// replaced by a string.
func TestSchemaSubsets(t *testing.T) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(foldup.Schema))
	if err != nil {
		t.Fatal(err)
	}
	whole, err := compileSubset(doc.(map[string]any))
	if err != nil {
		t.Fatal(err)
	}

	files, err := testfiles.YAML("..")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("only %d files found", len(files))
	}

	var docs []map[string]any
	var names []string
	add := func(name string, d map[string]any) {
		// Through JSON, as validateSchema does.
		b, err := json.Marshal(jsonSafe(d))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		docs = append(docs, inst.(map[string]any))
		names = append(names, name)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		var d map[string]any
		if err := yaml.Unmarshal(files[name], &d); err != nil || d == nil {
			continue // not a mapping: the loader refuses it before the schema
		}
		add(name, d)
		broken := map[string]any{"unknwn": 1}
		members := map[string]any{"x-extension": map[string]any{"a": 1}}
		for k, v := range d {
			broken[k] = 12 // the wrong type for every section but name
			m, ok := v.(map[string]any)
			if !ok {
				continue
			}
			mm := map[string]any{}
			asString := map[string]any{}
			for mk, mv := range m {
				asString[mk] = "x"
				if mmv, ok := mv.(map[string]any); ok {
					c := map[string]any{"unknwn": true}
					for kk, vv := range mmv {
						c[kk] = vv
					}
					mm[mk] = c
				} else {
					mm[mk] = mv
				}
			}
			members[k] = mm
			add(name+" members as strings in "+k, map[string]any{k: asString})
		}
		add(name+" broken", broken)
		add(name+" unknown member keys", members)
	}

	failing := 0
	for i, d := range docs {
		sub, err := compiled([]map[string]any{d})
		if err != nil {
			t.Fatalf("%s: %v", names[i], err)
		}
		got, want := failures(sub.Validate(d)), failures(whole.Validate(d))
		if len(want) > 0 {
			failing++
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: the schema of its sections finds\n\t%s\nthe whole schema\n\t%s", names[i], strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}
	}
	if len(docs) < 100 || failing < len(docs)/2 {
		t.Fatalf("only %d documents checked, %d of them invalid", len(docs), failing)
	}
	t.Logf("%d documents, %d of them invalid", len(docs), failing)
}

// failures lists a validation error's leaves as foldup reports them:
// where, which keyword of the schema, what.
func failures(err error) []string {
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return []string{err.Error()}
	}
	var out []string
	for _, l := range leaves(verr) {
		// The part of the URL before # is the directory the schema was
		// compiled in (tests change directory).
		_, keyword, _ := strings.Cut(l.SchemaURL, "#")
		out = append(out, fmt.Sprintf("%s #%s: %s", joinPath(l.InstanceLocation), keyword, l.ErrorKind.LocalizedString(printer)))
	}
	slices.Sort(out)
	return out
}

// TestSchemaSubsetLeavesOut checks what the subsets are for: a project of
// VMs compiles no part of Compose's service schema.
func TestSchemaSubsetLeavesOut(t *testing.T) {
	root, err := schemaRoot()
	if err != nil {
		t.Fatal(err)
	}
	all := root["$defs"].(map[string]any)
	defs := subsetDoc(root, []string{"name", "vms"})["$defs"].(map[string]any)
	if defs["foldup_vm"] == nil {
		t.Errorf("the subset for vms lacks foldup_vm: %v", slices.Sorted(maps.Keys(defs)))
	}
	for _, d := range []string{"service", "container_spec", "deployment"} {
		if all[d] == nil {
			t.Fatalf("schema.json has no $defs/%s", d)
		}
		if defs[d] != nil {
			t.Errorf("the subset for name and vms has $defs/%s", d)
		}
	}
	if len(defs) >= len(all)/2 {
		t.Errorf("the subset for name and vms keeps %d of %d $defs", len(defs), len(all))
	}
}

func TestUsesCompose(t *testing.T) {
	for _, c := range []struct {
		doc  string
		want bool
	}{
		{`{name: a, vms: {v: {}}, dns: [], x-foldup: {}, x-any: 1}`, false},
		{`{vms: {v: {}}}`, false},
		{`{vms: {v: {}}, networks: {n: {}}}`, true},
		{`{version: "3"}`, true},
		{`{include: [a.yaml]}`, true},
		{`{services: {}}`, true},
		{`{volumes: {}}`, true},
	} {
		var d map[string]any
		if err := yaml.Unmarshal([]byte(c.doc), &d); err != nil {
			t.Fatal(err)
		}
		if got := usesCompose([]map[string]any{d}); got != c.want {
			t.Errorf("usesCompose(%s) = %v, want %v", c.doc, got, c.want)
		}
	}
}

// TestComposeWithoutValidation checks that compose-go makes the same
// project of files without a Compose section whether it validates them or
// not, so that skipping its validation for them (loadCompose) loses
// nothing.
func TestComposeWithoutValidation(t *testing.T) {
	n := 0
	for _, content := range []string{
		"name: a\nvms:\n  v: {kernel: k, memory: 256m}\n",
		"vms:\n  v: {kernel: k}\n  w: {kernel: k, depends_on: [v]}\ndns:\n  - {name: a.example, a: 10.0.0.1}\nx-foldup: {domain: lab}\nx-other: {a: 1}\n",
	} {
		path := filepath.Join(t.TempDir(), "foldup.yaml")
		srcs, err := parseSources(path, "foldup.yaml", []byte(content))
		if err != nil {
			t.Fatal(err)
		}
		cfg := loadConfig{workingDir: filepath.Dir(path), env: types.Mapping{}}
		p := &Project{Name: "a"}
		vms := map[string]bool{"v": true, "w": true}
		docs := []map[string]any{srcs[0].raw}
		if usesCompose(docs) {
			t.Fatalf("%q has a Compose section", content)
		}
		validated, err := loadCompose(t.Context(), p, srcs, vms, cfg, true)
		if err != nil {
			t.Fatal(err)
		}
		unvalidated, err := loadCompose(t.Context(), p, srcs, vms, cfg, false)
		if err != nil {
			t.Fatal(err)
		}
		if validated.Name != "a" || len(validated.Extensions) == 0 {
			t.Fatalf("compose-go made %#v", validated)
		}
		if !reflect.DeepEqual(validated, unvalidated) {
			t.Errorf("%q: compose-go makes\n%#v\nwithout validation, and\n%#v\nwith", content, unvalidated, validated)
		}
		n++
	}
	if n == 0 {
		t.Fatal("nothing compared")
	}

	// And validate reaches compose-go: a network key its schema refuses
	// (and its decoding ignores) fails with it only.
	path := filepath.Join(t.TempDir(), "foldup.yaml")
	srcs, err := parseSources(path, "foldup.yaml", []byte("networks:\n  n: {bogus: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := loadConfig{workingDir: filepath.Dir(path), env: types.Mapping{}}
	if _, err := loadCompose(t.Context(), &Project{Name: "a"}, srcs, nil, cfg, true); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("compose-go validating: %v, want an error naming bogus", err)
	}
	if _, err := loadCompose(t.Context(), &Project{Name: "a"}, srcs, nil, cfg, false); err != nil {
		t.Errorf("compose-go not validating: %v", err)
	}
}
