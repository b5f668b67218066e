package spec

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestKeys(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	os.WriteFile(file, []byte(`x-base: &base
  restart: always
  labels: {a: b}
services:
  web:
    <<: *base
    image: busybox
    blkio_config: {weight: 300}
`), 0o644)
	p, err := Load(t.Context(), Options{Files: []string{file}})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Keys("services", "web")
	want := []string{"blkio_config", "image", "labels", "restart"}
	if !slices.Equal(got, want) {
		t.Fatalf("Keys = %v, want %v", got, want)
	}
	if pos := p.LocateKey("services", "web", "blkio_config"); pos.Line != 8 || pos.Column != 5 {
		t.Fatalf("blkio_config at %v, want line 8 column 5", pos)
	}
	if got := p.Keys("services", "nothing"); got != nil {
		t.Fatalf("Keys of a missing path = %v", got)
	}
}
