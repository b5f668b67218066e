package foldup_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/foldup/foldup"
	"github.com/foldup/foldup/internal/testfiles"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// TestSchemaValidatesFiles checks every example and every valid test file
// of the repository against schema.json, as an editor would: the
// examples, the planner's golden inputs, the foldup files inside the CLI's
// test scripts (but for those made to fail), and the Compose corpus.
func TestSchemaValidatesFiles(t *testing.T) {
	c := jsonschema.NewCompiler()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(foldup.Schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	all, err := testfiles.YAML(".")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for name, b := range all {
		script, file, inScript := strings.Cut(name, ".txtar:")
		if inScript && (strings.HasPrefix(file, "want") || file == "bad.yaml" ||
			(filepath.Base(script) == "errors" && file == "foldup.yaml")) {
			continue // made to fail, or not a foldup file
		}
		files[name] = b
	}
	if len(files) < 20 {
		t.Fatalf("only %d files found", len(files))
	}
	for name, b := range files {
		var v any
		if err := yaml.Unmarshal(b, &v); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(j))
		if err := sch.Validate(inst); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSchemaRejects makes sure the schema says no where it should, so that
// the test above can fail.
func TestSchemaRejects(t *testing.T) {
	c := jsonschema.NewCompiler()
	doc, _ := jsonschema.UnmarshalJSON(bytes.NewReader(foldup.Schema))
	c.AddResource("schema.json", doc)
	sch, err := c.Compile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		`{"vms": {"a": {"cpu": 1}}}`,
		`{"vms": {"a": {"networks": 3}}}`,
		`{"dns": [{"a": "1.2.3.4"}]}`,
		`{"networks": {"n": {"x-foldup": {"isolate": true}}}}`,
		`{"servics": {}}`,
	} {
		inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(bad))
		if sch.Validate(inst) == nil {
			t.Errorf("schema accepts %s", bad)
		}
	}
}
