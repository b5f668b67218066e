//go:build linux

package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJournal checks what down relies on: entries come back in order, an
// entry is written once, a last line cut short by a crash is ignored, and
// any other bad line is an error that points at down --force.
func TestJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range [][2]string{{KindBridge, "br0"}, {KindContainer, "web"}, {KindBridge, "br0"}} {
		if err := j.Record(e[0], e[1]); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	got, err := ReadJournal(path)
	if err != nil || len(got) != 2 || got[0].Name != "br0" || got[1].Kind != KindContainer {
		t.Fatalf("entries %+v (%v), want br0 then container web", got, err)
	}
	// Reopened, it still knows what it has.
	j, _ = OpenJournal(path)
	j.Record(KindBridge, "br0")
	j.Close()
	if got, _ := ReadJournal(path); len(got) != 2 {
		t.Fatalf("reopened journal wrote a repeat: %+v", got)
	}

	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"kind":"volume","na`)
	f.Close()
	if got, err := ReadJournal(path); err != nil || len(got) != 2 {
		t.Fatalf("with a torn last line: %+v, %v; want the 2 whole entries", got, err)
	}

	os.WriteFile(path, []byte("{\"kind\":\"bridge\",\"name\":\"br0\"}\ngarbage\n{\"kind\":\"bridge\",\"name\":\"br1\"}\n"), 0o600)
	if _, err := ReadJournal(path); err == nil || !strings.Contains(err.Error(), ":2: corrupt journal entry") || !strings.Contains(err.Error(), "down --force") {
		t.Fatalf("corrupt middle line: err = %v", err)
	}
}
