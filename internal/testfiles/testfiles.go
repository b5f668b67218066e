// Package testfiles gathers the repository's foldup and Compose files for
// the tests that check them all: the examples, the planner's golden inputs,
// the YAML files inside the CLI's test scripts, and the Compose corpus that
// sits beside the repository (../shared/corpus).
package testfiles

import (
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/tools/txtar"
)

// YAML returns the content of each file, by name: its path under root (the
// repository's directory, relative to the caller's), or SCRIPT:NAME for a
// file inside a test script.
func YAML(root string) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, pattern := range []string{"examples/*/*.yaml", "planner/testdata/*.yaml", "../shared/corpus/awesome-compose/*/*.yaml", "../shared/corpus/awesome-compose/*/*.yml"} {
		paths, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			files[p] = b
		}
	}
	scripts, _ := filepath.Glob(filepath.Join(root, "cmd/foldup/testdata/script/*.txtar"))
	for _, s := range scripts {
		a, err := txtar.ParseFile(s)
		if err != nil {
			return nil, err
		}
		for _, f := range a.Files {
			if strings.HasSuffix(f.Name, ".yaml") {
				files[s+":"+f.Name] = f.Data
			}
		}
	}
	return files, nil
}
