package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	goyaml "github.com/goccy/go-yaml"
	goyamlparser "github.com/goccy/go-yaml/parser"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds how many nodes decoding one document may visit, aliases
// expanded. It stops "billion laughs" documents long before memory runs out
// while leaving room for any real project.
const maxNodes = 1_000_000

// source is one parsed input document. Its yaml.v3 node tree keeps the
// line and column of every key and value, so that an error found anywhere
// later (schema, compose-go, foldup's own checks, the planner) can be traced
// back to where the user wrote the offending field.
type source struct {
	path    string // absolute
	display string // how errors name the file
	content []byte
	doc     *yaml.Node // the document's root mapping
	raw     map[string]any
}

// displayName is how errors name path: relative to the working directory
// when the file is below it, as compilers print names, else absolute.
func displayName(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return path
	}
	return rel
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseSources parses every YAML document in content. Syntax errors come
// back positioned.
func parseSources(path, display string, content []byte) ([]*source, error) {
	dec := yaml.NewDecoder(bytes.NewReader(content))
	var out []*source
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, yamlError(display, content, err)
		}
		s := &source{path: path, display: display, content: content}
		if len(doc.Content) == 0 {
			continue // an empty document
		}
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			return nil, &Error{Pos: Pos{File: display, Line: root.Line, Column: root.Column}, Msg: "top-level object must be a mapping"}
		}
		s.doc = root
		var errs ErrorList
		d := decoder{src: s, errs: &errs}
		v := d.decode(root, nil)
		if err := errs.Err(); err != nil {
			return nil, err
		}
		s.raw, _ = v.(map[string]any)
		if s.raw == nil {
			s.raw = map[string]any{}
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, &Error{Pos: Pos{File: display}, Msg: "empty file"}
	}
	return out, nil
}

func yamlError(display string, content []byte, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs ErrorList
		for _, m := range te.Errors {
			errs = append(errs, lineError(display, m))
		}
		return errs.Err()
	}
	return syntaxError(display, content, err.Error())
}

func lineError(display, msg string) *Error {
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{Pos: Pos{File: display, Line: line}, Msg: m[2]}
	}
	return &Error{Pos: Pos{File: display}, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// syntaxError positions a YAML syntax error. yaml.v3 gives a line only,
// and for a parser error (an unclosed [ or {, a key out of place) the
// line before the one where the enclosing collection begins, not where
// the text breaks. goccy/go-yaml's parser says where it breaks, line and
// column; the error keeps yaml.v3's words, and for an unclosed flow
// collection also says where it opened.
func syntaxError(display string, content []byte, msg string) *Error {
	e := lineError(display, msg)
	_, gerr := goyamlparser.ParseBytes(content, 0)
	var se *goyaml.SyntaxError
	if !errors.As(gerr, &se) || se.Token == nil || se.Token.Position == nil {
		return e
	}
	at := se.Token.Position
	e.Pos.Line, e.Pos.Column = at.Line, at.Column
	if c := charAt(content, at.Line, at.Column); c == '[' || c == '{' {
		// the collection goccy's parser saw opening and never closing
		e.Msg += fmt.Sprintf(" (the flow %s %c opened here is not closed before the end of the file)", flowKind(c), c)
	} else if open, ok := unclosedFlow(content, at.Line, at.Column); ok {
		e.Msg += fmt.Sprintf(" (the flow %s %c opened at %d:%d is not closed)", flowKind(open.char), open.char, open.line, open.col)
	}
	return e
}

func flowKind(c byte) string {
	if c == '{' {
		return "mapping"
	}
	return "sequence"
}

// charAt is the byte at line:col (1-based), or 0.
func charAt(content []byte, line, col int) byte {
	lines := strings.Split(string(content), "\n")
	if line < 1 || line > len(lines) || col < 1 || col > len(lines[line-1]) {
		return 0
	}
	return lines[line-1][col-1]
}

type flowOpen struct {
	char      byte
	line, col int
}

// unclosedFlow finds the innermost [ or { still open at line:col (both
// 1-based): a flow collection begins with one as a block value (after
// "key:", "- " or at a line's start), and anywhere inside another; quoted
// text and comments are skipped.
func unclosedFlow(content []byte, line, col int) (flowOpen, bool) {
	var stack []flowOpen
	lines := strings.Split(string(content), "\n")
	for i := 0; i < len(lines) && i < line; i++ {
		l := lines[i]
		end := len(l)
		if i == line-1 {
			end = min(col-1, len(l))
		}
		valueStart := true // at a line's start, a value may begin
		for j := 0; j < end; j++ {
			c := l[j]
			switch {
			case c == '#' && (j == 0 || l[j-1] == ' ' || l[j-1] == '\t'):
				j = end
			case (c == '"' || c == '\'') && (len(stack) > 0 || valueStart):
				for j++; j < end; j++ {
					if l[j] == '\\' && c == '"' {
						j++
					} else if l[j] == c {
						break
					}
				}
				valueStart = false
			case (c == '[' || c == '{') && (len(stack) > 0 || valueStart):
				stack = append(stack, flowOpen{c, i + 1, j + 1})
				valueStart = true
			case (c == ']' || c == '}') && len(stack) > 0:
				stack = stack[:len(stack)-1]
			case c == ' ' || c == '\t':
			case (c == ':' || c == '-' || c == ',') && (j+1 == len(l) || l[j+1] == ' '):
				valueStart = true
			default:
				valueStart = false
			}
		}
	}
	if len(stack) == 0 {
		return flowOpen{}, false
	}
	return stack[len(stack)-1], true
}

// decoder turns a node tree into the map[string]any form that compose-go's
// interpolation and the JSON schema validator take, resolving aliases and
// merge keys like yaml.v3 would.
type decoder struct {
	src       *source
	errs      *ErrorList
	nodes     int
	stopped   bool                // a limit was hit and reported: decode no further
	expanding map[*yaml.Node]bool // aliases being expanded, to catch cycles
}

// maxDepth bounds nesting, aliases expanded.
const maxDepth = 1000

func (d *decoder) pos(n *yaml.Node) Pos {
	return Pos{File: d.src.display, Line: n.Line, Column: n.Column}
}

func (d *decoder) decode(n *yaml.Node, path []string) any {
	d.nodes++
	switch {
	case d.stopped:
		return nil
	case len(path) > maxDepth:
		d.errs.Add(d.pos(n), "", "nested deeper than %d levels", maxDepth)
		d.stopped = true
		return nil
	case d.nodes > maxNodes:
		d.errs.Add(d.pos(n), joinPath(path), "document too large: more than %d nodes after alias expansion", maxNodes)
		d.stopped = true
		return nil
	}
	switch n.Kind {
	case yaml.AliasNode:
		if d.expanding[n.Alias] {
			d.errs.Add(d.pos(n), joinPath(path), "alias *%s refers to itself", n.Value)
			return nil
		}
		if d.expanding == nil {
			d.expanding = map[*yaml.Node]bool{}
		}
		d.expanding[n.Alias] = true
		defer delete(d.expanding, n.Alias)
		return d.decode(n.Alias, path)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		d.mapping(n, path, m, map[string]bool{})
		return m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			if c.Tag == "!reset" {
				continue
			}
			s = append(s, d.decode(c, append(path, strconv.Itoa(i))))
		}
		return s
	case yaml.ScalarNode:
		var v any
		if n.Tag == "!reset" || n.Tag == "!override" {
			return n.Value
		}
		if err := n.Decode(&v); err != nil {
			d.errs.Add(d.pos(n), joinPath(path), "%v", strings.TrimPrefix(err.Error(), "yaml: "))
			return nil
		}
		return v
	}
	return nil
}

// mapping fills m from mapping node n. Explicit keys win over merged ones
// (<<), and the first merge source wins over later ones, as YAML 1.1 says.
func (d *decoder) mapping(n *yaml.Node, path []string, m map[string]any, explicit map[string]bool) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.Tag != "!!str" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errs.Add(d.pos(k), joinPath(path), "mapping keys must be scalars")
			continue
		}
		if explicit[k.Value] {
			d.errs.Add(d.pos(k), joinPath(append(path, k.Value)), "duplicate key")
			continue
		}
		explicit[k.Value] = true
		if v.Tag == "!reset" {
			continue // compose-go: drop what earlier files set
		}
		m[k.Value] = d.decode(v, append(path, k.Value))
	}
	for _, v := range merges {
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		var srcs []*yaml.Node
		switch v.Kind {
		case yaml.MappingNode:
			srcs = []*yaml.Node{v}
		case yaml.SequenceNode:
			for _, c := range v.Content {
				if c.Kind == yaml.AliasNode {
					c = c.Alias
				}
				srcs = append(srcs, c)
			}
		}
		for _, src := range srcs {
			if src.Kind != yaml.MappingNode {
				d.errs.Add(d.pos(v), joinPath(path), "merge key (<<) must refer to a mapping")
				continue
			}
			if d.expanding[src] || src == n {
				d.errs.Add(d.pos(v), joinPath(path), "merge key (<<) refers to the mapping it is in")
				continue
			}
			if d.expanding == nil {
				d.expanding = map[*yaml.Node]bool{}
			}
			d.expanding[src] = true
			// Merging costs like decoding: count it, or merge keys over
			// merge keys would get round the node budget.
			d.nodes += len(src.Content)/2 + 1
			if d.stopped || d.nodes > maxNodes {
				if !d.stopped {
					d.errs.Add(d.pos(v), joinPath(path), "document too large: more than %d nodes after alias expansion", maxNodes)
					d.stopped = true
				}
				delete(d.expanding, src)
				return
			}
			tmp := map[string]any{}
			d.mapping(src, path, tmp, map[string]bool{})
			delete(d.expanding, src)
			for k, val := range tmp {
				if _, ok := m[k]; !ok {
					m[k] = val
				}
			}
		}
	}
}

// locate returns the position of the value at path, or of the deepest part
// of the path that exists. Segments are mapping keys and sequence indexes.
func (s *source) locate(path []string) (Pos, bool) {
	n, found := s.node(path, false)
	if n == nil {
		return Pos{File: s.display}, false
	}
	return Pos{File: s.display, Line: n.Line, Column: n.Column}, found
}

// locateKey is locate, but for a mapping entry it returns the key's position.
func (s *source) locateKey(path []string) (Pos, bool) {
	n, found := s.node(path, true)
	if n == nil {
		return Pos{File: s.display}, false
	}
	return Pos{File: s.display, Line: n.Line, Column: n.Column}, found
}

func (s *source) node(path []string, wantKey bool) (*yaml.Node, bool) {
	if s.doc == nil {
		return nil, false
	}
	n := s.doc
	var last *yaml.Node = n
	for i, seg := range path {
		key, val := child(n, seg)
		if val == nil {
			return last, false
		}
		if i == len(path)-1 && wantKey && key != nil {
			return key, true
		}
		last, n = val, val
		if key != nil && i < len(path)-1 {
			last = val
		}
	}
	return last, true
}

// child finds seg under n: a key of a mapping (merge keys followed), or an
// index of a sequence. For a mapping it also returns the key node.
func child(n *yaml.Node, seg string) (key, val *yaml.Node) {
	return childDepth(n, seg, 0)
}

func childDepth(n *yaml.Node, seg string, depth int) (key, val *yaml.Node) {
	if depth > 16 { // merge keys nested deeper than any real file
		return nil, nil
	}
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil {
		return nil, nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		var merges []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.Tag != "!!str" {
				merges = append(merges, v)
				continue
			}
			if k.Value == seg {
				return k, v
			}
		}
		for _, m := range merges {
			for m.Kind == yaml.AliasNode {
				m = m.Alias
			}
			if m.Kind == yaml.SequenceNode {
				for _, c := range m.Content {
					if k, v := childDepth(c, seg, depth+1); v != nil {
						return k, v
					}
				}
				continue
			}
			if k, v := childDepth(m, seg, depth+1); v != nil {
				return k, v
			}
		}
	case yaml.SequenceNode:
		i, err := strconv.Atoi(seg)
		if err == nil && i >= 0 && i < len(n.Content) {
			return nil, n.Content[i]
		}
		// Not an index: the item that names seg, as in depends_on: [db] or
		// volumes: ["data:/var/lib"], which compose-go's messages name by
		// value.
		for _, c := range n.Content {
			if c.Kind == yaml.ScalarNode && (c.Value == seg || strings.HasPrefix(c.Value, seg+":")) {
				return nil, c
			}
		}
	}
	return nil, nil
}

// splitDotted turns compose-go's dotted field paths into segments against
// the tree: a key that itself contains dots (labels often do) is matched
// whole when the one-segment reading does not exist.
func (s *source) splitDotted(dotted string) []string {
	parts := strings.Split(dotted, ".")
	var out []string
	n := s.doc
	for i := 0; i < len(parts); i++ {
		seg := parts[i]
		_, v := child(n, seg)
		for j := i + 1; v == nil && j < len(parts); j++ {
			cand := strings.Join(parts[i:j+1], ".")
			if _, v2 := child(n, cand); v2 != nil {
				seg, v, i = cand, v2, j
			}
		}
		out = append(out, seg)
		n = v
	}
	return out
}

func joinPath(path []string) string { return strings.Join(path, ".") }

// depth is how many leading segments of path exist in s.
func (s *source) depth(path []string) int {
	n := s.doc
	for i, seg := range path {
		_, v := child(n, seg)
		if v == nil {
			return i
		}
		n = v
	}
	return len(path)
}

// mappingKeys returns the keys of mapping n, those brought in by merge keys
// included.
func mappingKeys(n *yaml.Node) []string {
	return mappingKeysDepth(n, 0)
}

func mappingKeysDepth(n *yaml.Node, depth int) []string {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode || depth > 16 {
		return nil
	}
	var keys []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value != "<<" || k.Tag == "!!str" {
			keys = append(keys, k.Value)
			continue
		}
		for v != nil && v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		if v != nil && v.Kind == yaml.SequenceNode {
			for _, c := range v.Content {
				keys = append(keys, mappingKeysDepth(c, depth+1)...)
			}
		} else {
			keys = append(keys, mappingKeysDepth(v, depth+1)...)
		}
	}
	return keys
}
