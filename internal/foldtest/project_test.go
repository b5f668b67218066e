package foldtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/foldup/foldup/spec"
)

// TestProjectLoads: what the builder writes is a foldup file that loads,
// with every entry where it was put.
func TestProjectLoads(t *testing.T) {
	p := NewProject("built").
		AddNetwork("lan", "{}").
		AddNetwork("six", "enable_ipv6: true").
		AddService("db", "image: foldup-test/busybox:1\nnetworks: [lan]\ncommand: [\"sleep\", \"3600\"]").
		Add("volumes:\n  data: {}")
	file := filepath.Join(t.TempDir(), "foldup.yaml")
	if err := os.WriteFile(file, []byte(p.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := spec.Load(t.Context(), spec.Options{Files: []string{file}, AllResources: true}) // six and data are used by none
	if err != nil {
		t.Fatalf("%v\n%s", err, p)
	}
	if got.Name != "built" || len(got.Compose.Services["db"].Command) != 2 || got.Compose.Networks["six"].EnableIPv6 == nil ||
		got.Compose.Volumes["data"].Name == "" {
		t.Errorf("loaded %+v from:\n%s", got.Compose, p)
	}
}
