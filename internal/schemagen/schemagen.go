// Package schemagen builds foldup's JSON schema: the Compose specification's
// schema, as compose-go embeds it, extended with foldup's own sections (vms,
// dns, x-foldup). The result is committed as schema.json at the repository
// root; run `go generate` there after upgrading compose-go.
package schemagen

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"

	composeschema "github.com/compose-spec/compose-go/v2/schema"
)

//go:embed foldup.json
var foldupFragment []byte

// ID is the $id of the generated schema.
const ID = "https://foldup.dev/schema/foldup.schema.json"

// Generate returns the combined schema, indented and with sorted keys, so
// that the output is byte-for-byte stable for a given compose-go version.
func Generate() ([]byte, error) {
	var compose, frag map[string]any
	if err := json.Unmarshal([]byte(composeschema.Schema), &compose); err != nil {
		return nil, fmt.Errorf("compose schema: %w", err)
	}
	if err := json.Unmarshal(foldupFragment, &frag); err != nil {
		return nil, fmt.Errorf("foldup fragment: %w", err)
	}
	compose["$id"] = ID
	compose["title"] = "foldup file"
	compose["description"] = "foldup.yaml: a Compose file (services, networks, volumes, ...) plus vms, dns and x-foldup."

	if err := mergeInto(compose, "properties", frag["properties"]); err != nil {
		return nil, err
	}
	if err := mergeInto(compose, "$defs", frag["$defs"]); err != nil {
		return nil, err
	}
	// A network's x-foldup block gets a schema of its own; other x- keys on
	// networks stay free-form, as Compose has them.
	defs := compose["$defs"].(map[string]any)
	network, ok := defs["network"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("compose schema has no $defs.network")
	}
	if err := mergeInto(network, "properties", map[string]any{
		"x-foldup": map[string]any{"$ref": "#/$defs/foldup_network"},
	}); err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(compose); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// mergeInto adds the keys of add to dst[key], refusing to replace any key
// that Compose already defines: a clash means compose-spec grew a word that
// foldup also uses, and a human has to decide.
func mergeInto(dst map[string]any, key string, add any) error {
	m, ok := add.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: not an object", key)
	}
	target, _ := dst[key].(map[string]any)
	if target == nil {
		target = map[string]any{}
		dst[key] = target
	}
	for k, v := range m {
		if _, clash := target[k]; clash {
			return fmt.Errorf("%s.%s: already defined by the Compose schema", key, k)
		}
		target[k] = v
	}
	return nil
}
