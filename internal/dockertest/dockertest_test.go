package dockertest

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	// the wrong place: it must see these first. docker start returns
	// once docker-init runs, which forks sleep a moment later.
	var pids []int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if pids = e.processes(); len(pids) == 4 || time.Now().After(deadline) { // docker-init and sleep, twice
			break
		}
	}
	if len(pids) != 4 {
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

// TestPodman: Podman's Docker-compatible service runs a container of
// Image, in the test's namespace, and leaves nothing in the host's own
// Podman and CNI directories.
func TestPodman(t *testing.T) {
	before := hostPodmanState()
	t.Cleanup(func() { // after the engine's
		if after := hostPodmanState(); after != before {
			t.Errorf("the host's Podman and CNI directories changed:\n%s\nbefore:\n%s", after, before)
		}
	})
	ns := nstest.New(t)
	e := StartPodman(t, ns)
	out := ns.MustRun(t, "docker", "-H", e.Host, "run", "--rm", "--network", "none",
		"--ulimit", "nofile=16384:16384", "--ulimit", "nproc=4096:4096", Image, "echo", "hello from podman")
	if !strings.Contains(out, "hello from podman") {
		t.Fatalf("docker run printed %q", out)
	}
	ns.MustRun(t, "docker", "-H", e.Host, "network", "create", "--subnet", "10.99.0.0/24", "probe")
}

// hostPodmanState lists what the host has in the directories Podman and
// its CNI plugins write to.
func hostPodmanState() string {
	var b strings.Builder
	for _, d := range []string{"/etc/cni/net.d", "/var/lib/cni", "/var/lib/containers", "/run/libpod", "/run/containers", "/run/runc", "/run/crun"} {
		filepath.WalkDir(d, func(path string, _ fs.DirEntry, err error) error {
			if err == nil {
				b.WriteString(path + "\n")
			}
			return nil
		})
	}
	return b.String()
}
