package spec

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the loader: it may reject them, with
// positioned errors, but never panic or hang.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../planner/testdata/*.yaml")
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b)
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("a: &a {<<: *a, b: 1}\n"))
	f.Add([]byte("a: &a {b: {<<: *a}}\n"))
	f.Add([]byte("services:\n  a: {<<: *x}\n"))
	f.Add([]byte("vms: {v: {kernel: k, dns: [{name: x, txt: [a]}]}}\n"))
	f.Add([]byte("x: &a [1,2]\ny: &b [*a,*a,*a]\nz: [*b,*b,*b]\n"))
	dir := f.TempDir()
	path := filepath.Join(dir, "foldup.yaml")
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := LoadBytes(context.Background(), path, b, nil)
		for _, e := range Errors(err) {
			if e.Msg == "" {
				t.Fatalf("empty error message: %#v", e)
			}
		}
	})
}
