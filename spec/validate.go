package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	composeschema "github.com/compose-spec/compose-go/v2/schema"
	"github.com/foldup/foldup"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// The schema a load validates against covers the top-level sections its
// files use and nothing more. Compiling all of schema.json takes ~30 ms of a
// new process (checking it against its metaschema is half of that), and
// Compose's service schema is most of it: a project of VMs alone does not
// need it. A section's schema is the same whichever others come with it,
// and unknown keys are refused by the root's additionalProperties as
// before, so the errors are those the whole schema gives
// (TestSchemaSubsets).

var (
	schemaDocOnce sync.Once
	schemaDoc     map[string]any
	schemaDocErr  error

	schemasMu sync.Mutex
	schemas   = map[string]*subsetSchema{} // by sorted, comma-joined sections
)

type subsetSchema struct {
	once sync.Once
	sch  *jsonschema.Schema
	err  error
}

// schemaRoot is schema.json as jsonschema reads it, parsed once per
// process and never changed: compiled builds its subsets from it, and
// allowedKeys reads it for the keys an object allows.
func schemaRoot() (map[string]any, error) {
	schemaDocOnce.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(foldup.Schema))
		schemaDoc, _ = doc.(map[string]any)
		if schemaDoc == nil && err == nil {
			err = errors.New("schema.json is not an object")
		}
		schemaDocErr = err
	})
	return schemaDoc, schemaDocErr
}

// compiled returns the schema for docs: that of the top-level sections
// they use, compiled once per process for each set of sections.
func compiled(docs []map[string]any) (*jsonschema.Schema, error) {
	root, err := schemaRoot()
	if err != nil {
		return nil, err
	}
	known, _ := root["properties"].(map[string]any)
	var sections []string
	for _, doc := range docs {
		for k := range doc {
			if _, ok := known[k]; ok && !slices.Contains(sections, k) {
				sections = append(sections, k)
			}
		}
	}
	slices.Sort(sections)
	key := strings.Join(sections, ",")
	schemasMu.Lock()
	e := schemas[key]
	if e == nil {
		e = &subsetSchema{}
		schemas[key] = e
	}
	schemasMu.Unlock()
	e.once.Do(func() { e.sch, e.err = compileSubset(subsetDoc(root, sections)) })
	return e.sch, e.err
}

func compileSubset(doc map[string]any) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	c.RegisterFormat(&jsonschema.Format{Name: "duration", Validate: func(v any) error {
		s, ok := v.(string)
		if !ok {
			return nil
		}
		_, err := time.ParseDuration(s)
		return err
	}})
	if err := c.AddResource("foldup.schema.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("foldup.schema.json")
}

// subsetDoc is the schema document root with only the given sections'
// properties and the $defs they reach. The values are shared with root,
// never copied or changed.
func subsetDoc(root map[string]any, sections []string) map[string]any {
	out := make(map[string]any, len(root))
	for k, v := range root {
		out[k] = v
	}
	all, _ := root["properties"].(map[string]any)
	props := map[string]any{}
	for _, s := range sections {
		if v, ok := all[s]; ok {
			props[s] = v
		}
	}
	out["properties"] = props
	defs, _ := root["$defs"].(map[string]any)
	kept := map[string]any{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				// schema.json's references are all local, #/$defs/NAME...
				name, _, _ := strings.Cut(strings.TrimPrefix(ref, "#/$defs/"), "/")
				if _, done := kept[name]; !done && defs[name] != nil {
					kept[name] = defs[name]
					walk(defs[name])
				}
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	delete(out, "$defs")
	walk(out)
	out["$defs"] = kept
	return out
}

// warmComposeSchema starts compiling compose-go's JSON schema, on a
// goroutine of its own, so that it compiles while foldup's does; it is
// behind compose-go's sync.Once, where its loader waits for it.
func warmComposeSchema() { warmComposeOnce.Do(func() { go composeschema.Validate(map[string]any{}) }) }

var warmComposeOnce sync.Once

// validateSchema checks one interpolated document against sch, compiled
// for it, and returns every violation, positioned.
func validateSchema(sch *jsonschema.Schema, src *source, doc map[string]any) ErrorList {
	// The validator wants plain JSON values (float64, not int); JSON has no
	// infinities or NaN, so those (.inf, .nan in YAML) go in as text.
	b, err := json.Marshal(jsonSafe(doc))
	if err != nil {
		return ErrorList{{Pos: Pos{File: src.display}, Msg: err.Error()}}
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return ErrorList{{Pos: Pos{File: src.display}, Msg: err.Error()}}
	}
	err = sch.Validate(inst)
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		if err != nil {
			return ErrorList{{Pos: Pos{File: src.display}, Msg: err.Error()}}
		}
		return nil
	}
	var errs ErrorList
	for _, leaf := range leaves(verr) {
		errs = append(errs, schemaError(src, leaf)...)
	}
	return errs
}

// leaves flattens a validation error into the errors worth showing: every
// independent failure, and for a oneOf/anyOf only its most specific branch
// (the one that got deepest into the value), all of its failures, as
// docker compose does.
func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	switch e.ErrorKind.(type) {
	case *kind.OneOf, *kind.AnyOf:
		if len(e.Causes) > 0 {
			return leaves(bestBranch(e.Causes))
		}
	}
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

// bestBranch picks the branch whose deepest failure is most specific. Ties
// go to the branch whose deepest failure sorts first by location, so the
// choice does not depend on the validator's (map) order.
func bestBranch(branches []*jsonschema.ValidationError) *jsonschema.ValidationError {
	var best, bestLeaf *jsonschema.ValidationError
	for _, b := range branches {
		leaf := deepest(b)
		if best == nil || better(leaf, bestLeaf) {
			best, bestLeaf = b, leaf
		}
	}
	return best
}

func deepest(e *jsonschema.ValidationError) *jsonschema.ValidationError {
	best := e
	for _, c := range e.Causes {
		if d := deepest(c); better(d, best) {
			best = d
		}
	}
	return best
}

func better(a, b *jsonschema.ValidationError) bool {
	sa, sb := specificity(a), specificity(b)
	return sa > sb || (sa == sb && joinPath(a.InstanceLocation) < joinPath(b.InstanceLocation))
}

func specificity(e *jsonschema.ValidationError) int {
	n := 2 * len(e.InstanceLocation)
	switch e.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		n++
	case *kind.Type:
		// A type mismatch says least about which branch was meant.
		n--
	}
	return n
}

var printer = message.NewPrinter(language.English)

func schemaError(src *source, e *jsonschema.ValidationError) ErrorList {
	path := e.InstanceLocation
	switch k := e.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		// One error per unknown key, at the key, naming it.
		var errs ErrorList
		for _, p := range k.Properties {
			kp := append(slices.Clip(path), p)
			pos, _ := src.locateKey(kp)
			errs = append(errs, &Error{Pos: pos, Field: joinPath(kp), Msg: unknownKey(p, e.SchemaURL)})
		}
		return errs
	case *kind.FalseSchema:
		// unevaluatedProperties: false (Compose's service) reports each
		// unknown key as a false schema at the key itself.
		if len(path) == 0 {
			break
		}
		// A known key that failed its own schema is "unevaluated" too;
		// that failure is reported where it happened.
		if slices.Contains(allowedKeys(e.SchemaURL), path[len(path)-1]) {
			return nil
		}
		pos, _ := src.locateKey(path)
		return ErrorList{{Pos: pos, Field: joinPath(path), Msg: unknownKey(path[len(path)-1], e.SchemaURL)}}
	case *kind.Required:
		pos, _ := src.locate(path)
		missing := slices.Clone(k.Missing)
		slices.Sort(missing)
		quoted := make([]string, len(missing))
		for i, m := range missing {
			quoted[i] = strconv.Quote(m)
		}
		word := "key"
		if len(missing) > 1 {
			word = "keys"
		}
		return ErrorList{{Pos: pos, Field: joinPath(path), Msg: fmt.Sprintf("missing required %s %s", word, strings.Join(quoted, ", "))}}
	}
	pos, _ := src.locate(path)
	return ErrorList{{Pos: pos, Field: joinPath(path), Msg: kindMessage(e.ErrorKind)}}
}

func kindMessage(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Type:
		return fmt.Sprintf("must be a %s, not %s", typeNames(k.Want), typeName(k.Got))
	case *kind.Enum:
		var want []string
		for _, w := range k.Want {
			want = append(want, fmt.Sprintf("%v", w))
		}
		return "must be one of: " + strings.Join(want, ", ")
	case *kind.Format:
		return fmt.Sprintf("%v is not a valid %s", k.Got, k.Want)
	case *kind.Minimum:
		return fmt.Sprintf("must be greater than or equal to %s", k.Want.Num())
	case *kind.Maximum:
		return fmt.Sprintf("must be less than or equal to %s", k.Want.Num())
	case *kind.UniqueItems:
		return fmt.Sprintf("items %d and %d are equal", k.Duplicates[0], k.Duplicates[1])
	}
	return k.LocalizedString(printer)
}

func typeName(t string) string {
	switch t {
	case "object":
		return "mapping"
	case "array":
		return "list"
	}
	return t
}

func typeNames(want []string) string {
	names := make([]string, len(want))
	for i, w := range want {
		names[i] = typeName(w)
	}
	slices.Sort(names)
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// unknownKey says that key is not allowed, suggesting the closest allowed
// key when one is near enough to be a typo.
func unknownKey(key, schemaURL string) string {
	msg := fmt.Sprintf("unknown key %q", key)
	best, bestDist := "", 3
	for _, k := range allowedKeys(schemaURL) {
		if d := editDistance(key, k); d < bestDist || (d == bestDist && k < best) {
			best, bestDist = k, d
		}
	}
	if best != "" && bestDist <= len(key)/2 {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	}
	return msg
}

// allowedKeys lists the properties of the schema object whose
// additionalProperties or unevaluatedProperties keyword is at schemaURL,
// following $ref and allOf as the validator does.
func allowedKeys(schemaURL string) []string {
	root, err := schemaRoot()
	_, ptr, ok := strings.Cut(schemaURL, "#")
	if err != nil || !ok {
		return nil
	}
	var parts []string
	for _, p := range strings.Split(ptr, "/") {
		if u, err := url.PathUnescape(p); err == nil {
			p = u // patternProperties keys come percent-escaped
		}
		if p != "" {
			parts = append(parts, p)
		}
	}
	if n := len(parts); n > 0 && (parts[n-1] == "additionalProperties" || parts[n-1] == "unevaluatedProperties") {
		parts = parts[:n-1]
	}
	var keys []string
	collectKeys(root, resolvePointer(root, parts), &keys, 0)
	return keys
}

func resolvePointer(root map[string]any, parts []string) map[string]any {
	var cur any = root
	for _, p := range parts {
		p = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	m, _ := cur.(map[string]any)
	return m
}

func collectKeys(root, obj map[string]any, keys *[]string, depth int) {
	if obj == nil || depth > 8 {
		return
	}
	if props, ok := obj["properties"].(map[string]any); ok {
		for k := range props {
			*keys = append(*keys, k)
		}
	}
	if ref, ok := obj["$ref"].(string); ok && strings.HasPrefix(ref, "#/") {
		collectKeys(root, resolvePointer(root, strings.Split(ref[2:], "/")), keys, depth+1)
	}
	if all, ok := obj["allOf"].([]any); ok {
		for _, a := range all {
			m, _ := a.(map[string]any)
			collectKeys(root, m, keys, depth+1)
		}
	}
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// jsonSafe returns v with non-finite floats replaced by their YAML text.
func jsonSafe(v any) any {
	switch v := v.(type) {
	case float64:
		switch {
		case math.IsInf(v, 1):
			return ".inf"
		case math.IsInf(v, -1):
			return "-.inf"
		case math.IsNaN(v):
			return ".nan"
		}
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = jsonSafe(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = jsonSafe(e)
		}
		return out
	}
	return v
}
