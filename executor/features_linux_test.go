//go:build linux

package executor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/containers"
)

const featuresProject = `
name: feat
services:
  app:
    build:
      context: ./app
      args: {GREETING: hello-from-build}
    init: true
    command: ["sh", "-c", "cat /run/secrets/token /etc/app.conf; exec httpd -f -p 8000 -h /www"]
    ports: ["18080:8000"]
    secrets: [token]
    configs:
      - source: appconf
        target: /etc/app.conf
    read_only: true
    tmpfs: [/tmp]
    cap_drop: [NET_RAW]
    ulimits: {nofile: {soft: 1024, hard: 2048}}
    sysctls: {net.ipv4.ip_unprivileged_port_start: "80"}
    labels: {tier: front}
    deploy:
      resources:
        limits: {memory: 64m, pids: 100}
    cpu_count: 2
    cpu_period: 100000
    cpu_quota: 50000
    cgroup_parent: feat-parent
    device_cgroup_rules: ["c 1:3 mr"]
    platform: linux/amd64
  flaky:
    image: foldup-test/busybox:1
    command: ["sh", "-c", "echo try; exit 3"]
    restart: on-failure:2
secrets:
  token: {file: ./token.txt}
configs:
  appconf: {content: "conf-from-content\n"}
`

// TestFeatures covers the service keys beyond the basics against a real
// engine: a build with args and .dockerignore, secrets and configs,
// resource limits, a host port forwarded by foldup's firewall, a restart
// policy, exec, and the warning for a key foldup does not support.
func TestFeatures(t *testing.T) {
	e := newTestEnv(t)
	dir := filepath.Join(e.dir, "feat")
	os.MkdirAll(filepath.Join(dir, "app", "www"), 0o755)
	os.WriteFile(filepath.Join(dir, "token.txt"), []byte("secret-token\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "app", "Dockerfile"), []byte(`FROM foldup-test/busybox:1
ARG GREETING
COPY www /www
RUN echo "$GREETING" > /www/greeting && ls /www > /www/listing
`), 0o644)
	os.WriteFile(filepath.Join(dir, "app", "www", "index.html"), []byte("index\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "app", "www", "private.key"), []byte("must not be sent\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "app", ".dockerignore"), []byte("www/*.key\n"), 0o644)
	p := e.load(t, "feat", featuresProject)
	e.downAtEnd(t, p.Name)
	ctx := t.Context()

	res, err := New(e.o).Up(ctx, p, UpOptions{InProcess: true, Wait: false})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Supervisor.Stop()

	// The unsupported key is a positioned warning.
	var warned bool
	for _, w := range res.Warnings {
		if w.Key == "services.app.cpu_count" && strings.HasSuffix(w.Pos.File, "foldup.yaml") && w.Pos.Line == 24 {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning for services.app.cpu_count at foldup.yaml:24; got %v", res.Warnings)
	}

	// The build: args used, .dockerignore honoured.
	out, code := e.exec(t, "feat-app-1", "cat", "/www/greeting", "/www/listing")
	if code != 0 || !strings.Contains(out, "hello-from-build") || strings.Contains(out, "private.key") || !strings.Contains(out, "index.html") {
		t.Errorf("built image (exit %d):\n%s", code, out)
	}

	// Secrets and configs (from a file and from content).
	var logs bytes.Buffer
	defer func() {
		if t.Failed() {
			t.Logf("app's logs:\n%s", logs.String())
		}
	}()
	waitFor(t, 10*time.Second, func() bool {
		logs.Reset()
		New(e.o).Logs(ctx, p.Name, LogOptions{NoColor: true, Members: []string{"app"}}, &logs)
		return strings.Contains(logs.String(), "conf-from-content")
	})
	if !strings.Contains(logs.String(), "app-1  | secret-token") || !strings.Contains(logs.String(), "app-1  | conf-from-content") {
		t.Errorf("app's logs:\n%s", logs.String())
	}

	// Resource limits, read-only root, labels.
	c, err := e.eng.Client.ContainerInspect(ctx, "feat-app-1")
	if err != nil {
		t.Fatal(err)
	}
	if c.HostConfig.Memory != 64<<20 || c.HostConfig.PidsLimit == nil || *c.HostConfig.PidsLimit != 100 || !c.HostConfig.ReadonlyRootfs {
		t.Errorf("limits: memory %d pids %v read-only %v", c.HostConfig.Memory, c.HostConfig.PidsLimit, c.HostConfig.ReadonlyRootfs)
	}
	// The keys the engine takes as they are.
	if h := c.HostConfig; h.CPUPeriod != 100000 || h.CPUQuota != 50000 || h.CgroupParent != "feat-parent" || !slices.Equal(h.DeviceCgroupRules, []string{"c 1:3 mr"}) {
		t.Errorf("cpu_period %d, cpu_quota %d, cgroup_parent %q, device_cgroup_rules %q", h.CPUPeriod, h.CPUQuota, h.CgroupParent, h.DeviceCgroupRules)
	}
	if c.Platform != "linux" {
		t.Errorf("platform %q", c.Platform)
	}
	if c.Config.Labels["tier"] != "front" || c.Config.Labels[containers.LabelProject] != "feat" {
		t.Errorf("labels: %v", c.Config.Labels)
	}
	if len(c.HostConfig.Ulimits) != 1 || c.HostConfig.Ulimits[0].Hard != 2048 {
		t.Errorf("ulimits: %v", c.HostConfig.Ulimits)
	}

	// The host port, forwarded by foldup's table, from the namespace's
	// own loopback.
	waitFor(t, 10*time.Second, func() bool {
		out, err := e.ns.Run(t, "busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:18080/greeting")
		return err == nil && strings.Contains(out, "hello-from-build")
	})

	// exec: output and exit code.
	var stdout, stderr bytes.Buffer
	code, err = New(e.o).Exec(ctx, p.Name, "app", []string{"sh", "-c", "echo out; echo err >&2; exit 7"}, ExecOptions{Stdout: &stdout, Stderr: &stderr})
	if err != nil || code != 7 || stdout.String() != "out\n" || stderr.String() != "err\n" {
		t.Errorf("exec: code %d err %v stdout %q stderr %q", code, err, stdout.String(), stderr.String())
	}

	// restart: on-failure:2 runs the command three times in all.
	waitFor(t, 30*time.Second, func() bool {
		c, err := e.eng.Client.ContainerInspect(ctx, "feat-flaky-1")
		return err == nil && c.RestartCount == 2 && !c.State.Running && !c.State.Restarting
	})
	logs.Reset()
	New(e.o).Logs(ctx, p.Name, LogOptions{NoColor: true, Members: []string{"flaky"}}, &logs)
	if n := strings.Count(logs.String(), "flaky-1  | try"); n != 3 {
		t.Errorf("flaky ran %d times, want 3:\n%s", n, logs.String())
	}
}

// waitFor polls cond until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("condition not met in %s", limit)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
