package planner

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/foldup/foldup/spec"
)

// FuzzPlan loads arbitrary files and plans those that load: neither may
// panic, and a plan must be deterministic.
func FuzzPlan(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b)
	}
	f.Add([]byte("networks: {a: {ipam: {config: [{subnet: 10.0.0.0/29}]}}}\nvms: {v: {kernel: vmlinuz, networks: [a]}}\n"))
	abs, _ := filepath.Abs("testdata/foldup.yaml")
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := spec.LoadBytes(context.Background(), abs, b, nil)
		if err != nil {
			return
		}
		p1, err1 := Compute(p, Observed{}, Intent{})
		p2, err2 := Compute(p, Observed{}, Intent{})
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("plan errors differ: %v / %v", err1, err2)
		}
		if err1 == nil && p1.String() != p2.String() {
			t.Fatal("two plans of one project differ")
		}
	})
}
