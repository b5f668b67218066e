package dockertest

import (
	"strings"
	"testing"

	"github.com/docker/docker/api/types/image"
	"github.com/foldup/foldup/internal/nstest"
)

func TestEngine(t *testing.T) {
	ns := nstest.New(t)
	e := Start(t, ns)
	imgs, err := e.Client.ImageList(t.Context(), image.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || len(imgs[0].RepoTags) != 1 || imgs[0].RepoTags[0] != Image {
		t.Fatalf("images = %+v, want only %s", imgs, Image)
	}
	// The engine runs inside the test's namespace: its containers do too.
	out := ns.MustRun(t, "docker", "-H", e.Host, "run", "--rm", "--network", "none", Image, "echo", "hello from busybox")
	if !strings.Contains(out, "hello from busybox") {
		t.Fatalf("docker run printed %q", out)
	}
}

// TestRestartAndPowerOff: a container with restart policy "always" is
// running again after a restart; after a power cut and a boot the engine
// knows its containers, none runs but the "always" one, and nothing of
// the killed processes is left.
func TestRestartAndPowerOff(t *testing.T) {
	ns := nstest.New(t)
	e := Start(t, ns)
	docker := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(ns.MustRun(t, append([]string{"docker", "-H", e.Host}, args...)...))
	}
	docker("run", "-d", "--name", "always", "--restart", "always", "--init", "--network", "none", Image, "sleep", "3600")
	docker("run", "-d", "--name", "once", "--init", "--network", "none", Image, "sleep", "3600")
	e.Restart(t)
	if got := docker("ps", "--format", "{{.Names}}"); got != "always" {
		t.Errorf("running after a restart: %q, want always", got)
	}
	docker("start", "once")
	// The check after the power cut would pass if processes looked in
	// the wrong place: it must see these first.
	if pids := e.processes(); len(pids) != 4 { // docker-init and sleep, twice
		t.Fatalf("processes in the engine's cgroups: %v, want 4", pids)
	}
	e.PowerOff(t)
	// Other tests' engines may run "sleep 3600" at the same time: look
	// only at processes in this engine's cgroups.
	if pids := e.processes(); len(pids) > 0 {
		t.Errorf("container processes left after a power cut: %v", pids)
	}
	e.Boot(t)
	if got := docker("ps", "-a", "--format", "{{.Names}} {{.State}}"); !strings.Contains(got, "always running") || !strings.Contains(got, "once exited") {
		t.Errorf("containers after a boot:\n%s\n%s", got, e.Log())
	}
}
