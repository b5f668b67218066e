package kube

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// Marshal is one object as YAML, its keys as the API writes them.
func Marshal(o Object) ([]byte, error) {
	b, err := yaml.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
	}
	return b, nil
}

// Write writes the objects as one YAML stream, a document each, in order.
func Write(w io.Writer, objs []Object) error {
	var buf bytes.Buffer
	for i, o := range objs {
		b, err := Marshal(o)
		if err != nil {
			return err
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(b)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// FileName is where WriteDir puts the i-th object: its order, kind and
// name, so that kubectl apply -f DIR applies them in order.
func FileName(i int, o Object) string {
	return fmt.Sprintf("%02d-%s-%s.yaml", i, strings.ToLower(o.GetObjectKind().GroupVersionKind().Kind), o.GetName())
}

// WriteDir writes each object to a file of its own in dir (made if
// missing), named by FileName.
func WriteDir(dir string, objs []Object) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i, o := range objs {
		b, err := Marshal(o)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, FileName(i, o)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
