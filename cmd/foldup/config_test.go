package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigFixedPoint: what config prints, loaded again, prints the
// same (foldup config | foldup -f - config), for every project of the
// corpus of Compose files written by others and every input of the
// planner's golden tests.
func TestConfigFixedPoint(t *testing.T) {
	dirs, _ := filepath.Glob("../../../shared/corpus/awesome-compose/*")
	var inputs [][2]string // dir, file ("" for the directory's default)
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			inputs = append(inputs, [2]string{d, ""})
		}
	}
	if len(inputs) == 0 && os.Getenv("FOLDUP_REQUIRE_SYSTEM") == "1" {
		t.Fatal("no corpus beside the repository (shared/corpus)")
	}
	goldens, _ := filepath.Glob("../../planner/testdata/*.yaml")
	for _, f := range goldens {
		inputs = append(inputs, [2]string{filepath.Dir(f), f})
	}
	if len(goldens) == 0 {
		t.Fatal("no golden inputs in planner/testdata")
	}
	t.Setenv("PLEX_MEDIA_PATH", "/srv/media")
	for _, in := range inputs {
		name := filepath.Base(in[0])
		if in[1] != "" {
			name = filepath.Base(in[1])
		}
		t.Run(name, func(t *testing.T) {
			dir, err := filepath.Abs(in[0])
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"--project-directory", dir}
			if in[1] != "" {
				f, _ := filepath.Abs(in[1])
				args = append(args, "-f", f)
			}
			first := runConfig(t, nil, append(args, "config")...)
			second := runConfig(t, strings.NewReader(first), "--project-directory", dir, "-f", "-", "config")
			if first != second {
				t.Errorf("config of config differs:\nfirst:\n%s\nsecond:\n%s", first, second)
			}
			// The files merged but not interpolated, or not normalised,
			// load as the same project.
			for _, flag := range []string{"--no-interpolate", "--no-normalize"} {
				raw := runConfig(t, nil, append(args, "config", flag)...)
				if again := runConfig(t, strings.NewReader(raw), "--project-directory", dir, "-f", "-", "config"); again != first {
					t.Errorf("config of config %s differs:\nconfig:\n%s\nconfig %s:\n%s\nits config:\n%s", flag, first, flag, raw, again)
				}
			}
		})
	}
}

func runConfig(t *testing.T, stdin *strings.Reader, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	var in = strings.NewReader("")
	if stdin != nil {
		in = stdin
	}
	if code := run(t.Context(), args, in, &out, &errb); code != 0 {
		t.Fatalf("foldup %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
	}
	return out.String()
}
