//go:build linux

// Package foldtest is the environment foldup's system tests run in: a
// fresh network namespace with a private container engine, state
// directories of the test's own, the foldup binary, and projects built
// from networks, services and VMs:
//
//	env := foldtest.New(t)
//	p := foldtest.NewProject("shop")
//	p.AddNetwork("lan", "{}")
//	p.AddService("db", "image: foldup-test/busybox:1")
//	p.AddVM(t, "web", foldtest.VM{Memory: "256m"})
//	file := env.Write(t, p)
//
// When a test fails, the tail of every VM console it booted is in its
// log. CheckGoroutines catches goroutines a test leaves running.
package foldtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/dockertest"
	"github.com/foldup/foldup/internal/nstest"
	"github.com/foldup/foldup/network"
)

// Env is one test's world.
type Env struct {
	NS     *nstest.NS
	Engine *dockertest.Engine
	Host   *network.Host // the namespace, for foldup's network calls
	// Dir is the test's directory, traversable by qemu's unprivileged
	// user; StateRoot and RunRoot are foldup's roots under it.
	Dir, StateRoot, RunRoot string
}

// New returns an environment with a private Docker engine. It skips the
// test when root, the engine or its tools are missing (fails with
// FOLDUP_REQUIRE_SYSTEM=1), and removes everything at the end.
func New(t *testing.T) *Env { return NewOn(t, dockertest.Start) }

// NewOn is New with the engine start starts: Docker's or Podman's.
func NewOn(t *testing.T, start func(testing.TB, *nstest.NS) *dockertest.Engine) *Env {
	t.Helper()
	ns := nstest.New(t)
	eng := start(t, ns)
	host, err := network.Open(ns.Handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	dir := t.TempDir()
	// qemu runs as nobody: it must get through to its VM's directories.
	for d := dir; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o711)
	}
	e := &Env{NS: ns, Engine: eng, Host: host, Dir: dir,
		StateRoot: filepath.Join(dir, "state"), RunRoot: filepath.Join(dir, "run")}
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpConsoles(t)
		}
	})
	return e
}

// consoleTail is how much of each console a failed test shows.
const consoleTail = 30

// dumpConsoles logs the last lines of every VM console under the state
// root: what the guests said before the test failed.
func (e *Env) dumpConsoles(t *testing.T) {
	logs, _ := filepath.Glob(filepath.Join(e.StateRoot, "*", "vm", "*", "console.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		lines = lines[max(len(lines)-consoleTail, 0):]
		rel, _ := filepath.Rel(e.StateRoot, l)
		t.Logf("console of %s, last %d lines:\n%s", rel, len(lines), strings.Join(lines, "\n"))
	}
}

// Write writes p as the foldup.yaml of a directory named after it and
// returns the file's path.
func (e *Env) Write(t testing.TB, p *Project) string {
	t.Helper()
	return e.WriteFile(t, p.Name, p.String())
}

// WriteFile writes content as the foldup.yaml of directory name.
func (e *Env) WriteFile(t testing.TB, name, content string) string {
	t.Helper()
	dir := filepath.Join(e.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "foldup.yaml")
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// CLIEnv is the environment foldup runs with in the tests: the private
// engine and the test's state directories, and more.
func (e *Env) CLIEnv(more ...string) []string {
	return append(e.Engine.Env(), append(more, "FOLDUP_STATE_ROOT="+e.StateRoot, "FOLDUP_RUN_ROOT="+e.RunRoot)...)
}

// CLI returns `foldup -f file args...`, run inside the test's namespace
// with CLIEnv(env...).
func (e *Env) CLI(t testing.TB, ctx context.Context, file string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", e.NS.Name, Binary(t), "-f", file}, args...)...)
	cmd.Env = e.CLIEnv(env...)
	return cmd
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// Binary builds cmd/foldup once per test process, with the crash tests'
// kill points (-tags foldup_crashhooks), and returns its path. A child
// test process gets its parent's from FOLDUP_TEST_FOLDUP.
func Binary(t testing.TB) string {
	if bin := os.Getenv("FOLDUP_TEST_FOLDUP"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "foldup-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "foldup")
		out, err := exec.Command("go", "build", "-tags", "foldup_crashhooks", "-o", binary, "github.com/foldup/foldup/cmd/foldup").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building foldup: %v", buildErr)
	}
	return binary
}

// RemoveBinary removes what Binary built: for TestMain, after the tests.
func RemoveBinary() {
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary))
	}
}

// CheckGoroutines fails t if more goroutines run than before, once those
// that are ending have had a few seconds, and prints them all.
func CheckGoroutines(t testing.TB, what string, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("%s: %d goroutines left running, %d before:\n%s", what, n, before, bytes.TrimSpace(buf))
	}
}
