package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/cobra"

	"github.com/rogpeppe/go-internal/testscript"
)

var update = flag.Bool("update", false, "rewrite the expected output in testdata/script")

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"foldup": func() {
			os.Exit(run(interruptible(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
		},
		// foldup-in-ns is foldup inside the namespace $FOLDUP_TEST_NETNS
		// (the engine scripts'), through `ip netns exec`, in this same
		// process, so that signals reach foldup itself.
		"foldup-in-ns": func() {
			ip, err := exec.LookPath("ip")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			args := append([]string{"ip", "netns", "exec", os.Getenv("FOLDUP_TEST_NETNS"), "foldup"}, os.Args[1:]...)
			fmt.Fprintln(os.Stderr, syscall.Exec(ip, args, os.Environ()))
			os.Exit(2)
		},
	})
}

// TestScripts runs the CLI scenarios in testdata/script. Conditions beside
// testscript's own: [root] (uid 0) and [kvm] (/dev/kvm usable).
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: *update,
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "root":
				return os.Geteuid() == 0, nil
			case "kvm":
				f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
				if err == nil {
					f.Close()
				}
				return err == nil, nil
			}
			return false, nil
		},
	})
}

// TestHelp: every command's --help works (a flag whose shorthand clashes
// with a global one panics only when the command runs) and shows an
// example or a long description.
func TestHelp(t *testing.T) {
	var walk func(prefix []string, c *cobra.Command)
	walk = func(prefix []string, c *cobra.Command) {
		for _, sub := range c.Commands() {
			args := append(append([]string{}, prefix...), sub.Name())
			t.Run(strings.Join(args, "_"), func(t *testing.T) {
				var out, errb bytes.Buffer
				if code := run(t.Context(), append(args, "--help"), strings.NewReader(""), &out, &errb); code != 0 {
					t.Fatalf("exit %d\n%s", code, errb.String())
				}
				if !strings.Contains(out.String(), "Usage:") {
					t.Errorf("no usage:\n%s", out.String())
				}
			})
			walk(args, sub)
		}
	}
	walk(nil, newRoot(strings.NewReader(""), io.Discard, io.Discard))
}
