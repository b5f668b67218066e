package schemagen

import (
	"bytes"
	"os"
	"testing"
)

// TestCommittedSchemaIsCurrent fails when schema.json at the repository root
// no longer matches what Generate produces (after editing foldup.json or
// upgrading compose-go). Fix: go generate ./... at the repository root.
func TestCommittedSchemaIsCurrent(t *testing.T) {
	want, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("schema.json is stale: run `go generate ./...` at the repository root")
	}
}

func TestMergeRefusesClash(t *testing.T) {
	dst := map[string]any{"properties": map[string]any{"services": map[string]any{}}}
	err := mergeInto(dst, "properties", map[string]any{"services": map[string]any{}})
	if err == nil || err.Error() != "properties.services: already defined by the Compose schema" {
		t.Fatalf("got %v", err)
	}
}
