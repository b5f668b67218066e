package spec

import (
	"maps"
	"strings"
	"testing"
)

func TestParseRawEnv(t *testing.T) {
	lookup := func(k string) (string, bool) { return map[string]string{"C": "fromenv"}[k], k == "C" }
	vars := map[string]string{}
	in := "\xef\xbb\xbfA=\"q\"\n\n # c\nB=${X}\n\tC\nE\nD= a b \nF==x\n"
	if err := parseRawEnv(strings.NewReader(in), "x.env", vars, lookup); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": `"q"`, "B": "${X}", "C": "fromenv", "D": " a b ", "F": "=x"}
	if !maps.Equal(vars, want) {
		t.Errorf("got %q, want %q", vars, want)
	}
	for _, bad := range []string{"A B=1\n", "=1\n", "A=\xff\n"} {
		if err := parseRawEnv(strings.NewReader(bad), "x.env", map[string]string{}, lookup); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
