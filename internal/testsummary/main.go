// Command testsummary reads `go test -json` on standard input, prints the
// tests' output as go test would, and ends with one line counting the
// tests: "N passed, N failed, N skipped". It lists the skipped tests with
// their reasons, so that a run that quietly skipped the system tests shows
// it, and exits 1 when anything failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	if !summarize(os.Stdin, os.Stdout) {
		os.Exit(1)
	}
}

// summarize copies the test run from r to w as go test prints it, plus the
// summary; it returns false when a test or a build failed.
func summarize(r io.Reader, w io.Writer) bool {
	var passed, failed, skipped int
	var skips, failures []string
	reason := map[string]string{}     // test -> last output line, for skips
	buffered := map[string][]string{} // test -> its output, shown if it fails
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	buildFailed := false
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintln(w, sc.Text()) // build errors are not JSON
			if strings.HasPrefix(sc.Text(), "FAIL") || strings.Contains(sc.Text(), "build failed") {
				buildFailed = true
			}
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			if e.Test == "" {
				fmt.Fprint(w, e.Output) // ok/FAIL lines of packages, build errors
			} else {
				buffered[key] = append(buffered[key], e.Output)
			}
			if e.Test != "" && strings.TrimSpace(e.Output) != "" && !strings.HasPrefix(strings.TrimSpace(e.Output), "---") {
				reason[key] = strings.TrimSpace(e.Output)
			}
		case "pass":
			if e.Test != "" {
				passed++
				delete(buffered, key)
			}
		case "fail":
			if e.Test != "" {
				failed++
				failures = append(failures, key)
				fmt.Fprint(w, strings.Join(buffered[key], ""))
				delete(buffered, key)
			}
		case "skip":
			if e.Test != "" {
				skipped++
				skips = append(skips, key+": "+reason[key])
				delete(buffered, key)
			}
		}
	}
	sort.Strings(skips)
	if len(skips) > 0 {
		fmt.Fprintln(w, "\nskipped:")
		for _, s := range skips {
			fmt.Fprintln(w, "  "+s)
		}
	}
	if len(failures) > 0 {
		fmt.Fprintln(w, "\nfailed:")
		for _, f := range failures {
			fmt.Fprintln(w, "  "+f)
		}
	}
	fmt.Fprintf(w, "\n%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	return failed == 0 && !buildFailed
}
