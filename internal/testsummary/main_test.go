package main

import (
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: needs root\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestB"}`,
		`{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:3: boom\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestC"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t0.1s\n"}`,
		`{"Action":"fail","Package":"p"}`,
	}, "\n")
	var out strings.Builder
	if summarize(strings.NewReader(in), &out) {
		t.Error("a failed test must fail the run")
	}
	got := out.String()
	for _, want := range []string{"c_test.go:3: boom", "p TestB: b_test.go:9: needs root", "1 passed, 1 failed, 1 skipped\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "=== RUN   TestA") {
		t.Error("a passing test's output is shown")
	}
	if !summarize(strings.NewReader(`{"Action":"pass","Package":"p","Test":"TestA"}`), &out) {
		t.Error("a passing run must pass")
	}
	if summarize(strings.NewReader("# p\n./x.go:1: syntax error\nFAIL\tp [build failed]\n"), &out) {
		t.Error("a build failure must fail the run")
	}
}
