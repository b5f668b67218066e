package graph

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/foldup/foldup/internal/golden"
	"github.com/foldup/foldup/internal/systest"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
)

func plan(t *testing.T, file string) *planner.Plan {
	t.Helper()
	p, err := spec.Load(t.Context(), spec.Options{Files: []string{file}, NameOnly: true, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := planner.Compute(p, planner.Observed{}, planner.Intent{})
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// TestGolden: the example and a two-network project, as DOT and Mermaid,
// planned and (the example) with live states.
func TestGolden(t *testing.T) {
	for name, file := range map[string]string{
		"webapp":        "../examples/webapp-with-db/foldup.yaml",
		"multi-network": "../planner/testdata/multi-network.yaml",
	} {
		pl := plan(t, file)
		golden.Check(t, filepath.Join("testdata", name+".dot"), DOT(pl, nil))
		golden.Check(t, filepath.Join("testdata", name+".mmd"), Mermaid(pl, nil))
	}
	pl := plan(t, "../examples/webapp-with-db/foldup.yaml")
	live := Live{"db": {State: "running", Health: "healthy"}, "web": {State: "running", Health: "starting"}}
	golden.Check(t, filepath.Join("testdata", "webapp-live.dot"), DOT(pl, live))
	golden.Check(t, filepath.Join("testdata", "webapp-live.mmd"), Mermaid(pl, live))
}

// TestDOTRenders: Graphviz takes the DOT of every planner input, where it
// is installed.
func TestDOTRenders(t *testing.T) {
	systest.Command(t, "dot")
	dot, _ := exec.LookPath("dot")
	files, _ := filepath.Glob("../planner/testdata/*.yaml")
	for _, f := range append(files, "../examples/webapp-with-db/foldup.yaml") {
		pl := plan(t, f)
		c := exec.Command(dot, "-Tsvg")
		c.Stdin = strings.NewReader(DOT(pl, Live{}))
		out, err := c.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "<svg") {
			t.Errorf("%s: dot -Tsvg: %v\n%s", f, err, out)
		}
	}
}

func TestLiveWords(t *testing.T) {
	m := &planner.Member{Name: "x"}
	for _, c := range []struct {
		s           State
		words, fill string
	}{
		{State{}, "not created", "grey"},
		{State{State: "running"}, "running", "green"},
		{State{State: "running", Health: "healthy"}, "running (healthy)", "green"},
		{State{State: "running", Health: "unhealthy"}, "running (unhealthy)", "red"},
		{State{State: "running", Health: "starting"}, "running (starting)", "orange"},
		{State{State: "exited"}, "exited", "red"},
	} {
		if w, f := (Live{"x": c.s}).words(m); w != c.words || f != c.fill {
			t.Errorf("%+v: %q %q, want %q %q", c.s, w, f, c.words, c.fill)
		}
	}
	if w, _ := Live(nil).words(m); w != "" {
		t.Errorf("no live states: %q, want nothing", w)
	}
}
