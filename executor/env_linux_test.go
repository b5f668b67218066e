//go:build linux

package executor

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	dnetwork "github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/foldup/foldup/containers"
	"github.com/foldup/foldup/internal/dockertest"
	"github.com/foldup/foldup/internal/foldtest"
	"github.com/foldup/foldup/internal/nstest"
	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/spec"
)

// testEnv is foldtest's environment (a fresh namespace with a private
// Docker engine, state directories of the test's own) and the executor's
// options for it.
type testEnv struct {
	*foldtest.Env
	ns   *nstest.NS
	eng  *dockertest.Engine
	host *network.Host
	dir  string
	o    Options
}

// foldupBinary is the foldup the detached supervisor and the crash tests
// run.
func foldupBinary(t *testing.T) string { return foldtest.Binary(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	foldtest.RemoveBinary()
	os.Exit(code)
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	return newTestEnvOn(t, dockertest.Start)
}

// newTestEnvOn is newTestEnv with the engine start starts: Docker's or
// Podman's.
func newTestEnvOn(t *testing.T, start func(testing.TB, *nstest.NS) *dockertest.Engine) *testEnv {
	t.Helper()
	env := foldtest.NewOn(t, start)
	return &testEnv{Env: env, ns: env.NS, eng: env.Engine, host: env.Host, dir: env.Dir, o: Options{
		StateRoot:         env.StateRoot,
		RunRoot:           env.RunRoot,
		DockerHost:        env.Engine.Host,
		Host:              env.Host,
		SupervisorCommand: []string{foldupBinary(t)},
		Out:               &testWriter{t: t},
		Events:            eventsTo(&testWriter{t: t}),
	}}
}

// load writes a project file and loads it.
func (e *testEnv) load(t *testing.T, name, content string) *spec.Project {
	t.Helper()
	file := e.WriteFile(t, name, content)
	p, err := spec.Load(t.Context(), spec.Options{Files: []string{file}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// upInProcess loads content as project dir name and brings it up with the
// supervisor in this process; at the end of the test the supervisor
// stops and the project goes down (downAtEnd).
func (e *testEnv) upInProcess(t *testing.T, name, content string) (*spec.Project, *Result) {
	t.Helper()
	p := e.load(t, name, content)
	e.downAtEnd(t, p.Name)
	res, err := New(e.o).Up(t.Context(), p, UpOptions{InProcess: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Supervisor.Stop() })
	return p, res
}

// downAtEnd removes the project when the test ends, whatever happened,
// and checks that nothing of it is left.
func (e *testEnv) downAtEnd(t *testing.T, project string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := New(e.o).Down(ctx, project, DownOptions{Volumes: true, Force: true}); err != nil {
			t.Errorf("down at the end: %v", err)
		}
		e.assertGone(t, project)
	})
}

// assertGone checks that project has nothing left: no container, Docker
// network or volume with its label, no nftables table, no supervisor;
// and, once no other project of the test's has a plan, no bridge, tap,
// qemu or DOCKER-USER rule at all.
func (e *testEnv) assertGone(t *testing.T, project string) {
	t.Helper()
	ctx := context.Background()
	dc := e.eng.Client
	f := containers.ProjectFilter(project)
	if cs, _ := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: f}); len(cs) > 0 {
		t.Errorf("%d containers left", len(cs))
	}
	if ns, _ := dc.NetworkList(ctx, dnetwork.ListOptions{Filters: f}); len(ns) > 0 {
		t.Errorf("docker networks left: %v", ns[0].Name)
	}
	if vs, _ := dc.VolumeList(ctx, volume.ListOptions{Filters: f}); len(vs.Volumes) > 0 {
		t.Errorf("volumes left: %v", vs.Volumes[0].Name)
	}
	if out := e.ns.MustRun(t, "nft", "list", "tables"); strings.Contains(out, "foldup-"+project+"\n") {
		t.Errorf("nft tables left:\n%s", out)
	}
	d := e.o.withDefaults().dirs(project)
	if _, err := os.Stat(d.Run); err == nil {
		t.Errorf("run directory %s left", d.Run)
	}
	if out, _ := exec.Command("pgrep", "-f", "supervise.*"+project+".*"+e.dir).Output(); len(out) > 0 {
		t.Errorf("supervisor processes left: %s", out)
	}
	// What is not named after the project is checked once no other
	// project of the test's is left.
	if others, _ := filepath.Glob(filepath.Join(e.o.withDefaults().StateRoot, "*", "plan.json")); len(others) > 0 {
		return
	}
	out := e.ns.MustRun(t, "ip", "-o", "link", "show", "type", "bridge")
	if strings.TrimSpace(out) != "" {
		t.Errorf("bridges left:\n%s", out)
	}
	if out := e.ns.MustRun(t, "ip", "-o", "link", "show", "type", "tun"); strings.TrimSpace(out) != "" {
		t.Errorf("taps left:\n%s", out)
	}
	if out := e.ns.MustRun(t, "ip", "-o", "link", "show", "type", "ifb"); strings.TrimSpace(out) != "" {
		t.Errorf("ifb devices left:\n%s", out)
	}
	if out, _ := exec.Command("pgrep", "-af", "qemu-system.*"+e.dir).Output(); len(out) > 0 {
		t.Errorf("qemu processes left: %s", out)
	}
	if out := e.ns.MustRun(t, "nft", "list", "ruleset"); strings.Contains(out, "foldup:") {
		t.Errorf("DOCKER-USER rules left:\n%s", out)
	}
}

// cliEnv is the environment foldup runs with in the tests.
func (e *testEnv) cliEnv(more ...string) []string { return e.CLIEnv(more...) }

// cli returns `foldup -f file args...`, run inside the test's namespace.
func (e *testEnv) cli(t *testing.T, ctx context.Context, file string, env []string, args ...string) *exec.Cmd {
	return e.CLI(t, ctx, file, env, args...)
}

// exec runs a command in a container of the engine and returns its output.
func (e *testEnv) exec(t *testing.T, name string, cmd ...string) (string, int) {
	t.Helper()
	c := exec.CommandContext(t.Context(), "docker", append([]string{"-H", e.eng.Host, "exec", name}, cmd...)...)
	out, err := c.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("docker exec: %v", err)
	}
	return string(out), code
}

type testWriter struct {
	t  *testing.T
	mu sync.Mutex
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// eventsTo prints events to w as plain progress lines.
func eventsTo(w io.Writer) func(Event) {
	return func(e Event) { fmt.Fprintln(w, e) }
}
