package planner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/foldup/foldup/spec"
)

// corpusDir holds real Compose files written by others (docker's
// awesome-compose), beside the repository as CI checks it out.
const corpusDir = "../../shared/corpus/awesome-compose"

// TestCorpus loads and plans every Compose file of the corpus, as docker
// compose would load it. plex needs PLEX_MEDIA_PATH: without it, it must
// fail with a positioned error, as docker compose fails.
func TestCorpus(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(corpusDir, "*", ""))
	if err != nil || len(dirs) == 0 {
		if os.Getenv("FOLDUP_REQUIRE_SYSTEM") == "1" {
			t.Fatalf("no corpus at %s", corpusDir)
		}
		t.Skipf("no corpus at %s (it sits beside the repository as shared/)", corpusDir)
	}
	n := 0
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		n++
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			var env []string
			if name == "plex" {
				_, err := spec.Load(t.Context(), spec.Options{WorkingDir: dir, Environ: env})
				if err == nil || !strings.Contains(err.Error(), "compose.yaml:10:9: services.plex.volumes.0:") {
					t.Fatalf("plex without PLEX_MEDIA_PATH: %v, want a positioned volume error", err)
				}
				env = []string{"PLEX_MEDIA_PATH=/srv/media"}
			}
			p, err := spec.Load(t.Context(), spec.Options{WorkingDir: dir, Environ: env})
			if err != nil {
				t.Fatal(err)
			}
			plan, err := Compute(p, Observed{}, Intent{})
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Members) == 0 {
				t.Fatal("no members planned")
			}
		})
	}
	if n != 39 {
		t.Errorf("corpus has %d projects, want 39", n)
	}
}
