//go:build linux

package executor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const portsProject = `name: held
services:
  web:
    image: foldup-test/busybox:1
    init: true
    command: ["sh", "-c", "mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["18081:80"]
`

// TestHostPortInUse: a host port something on the host listens on is
// refused with its place in the file and the holder's pid, and nothing is
// made; once free, up takes it and the project's supervisor holds it while
// the project is up (another program cannot bind it, ss names foldup),
// the forward still works, and down lets it go.
func TestHostPortInUse(t *testing.T) {
	e := newTestEnv(t)
	dir := filepath.Join(e.dir, "held")
	os.MkdirAll(dir, 0o755)
	file := filepath.Join(dir, "foldup.yaml")
	if err := os.WriteFile(file, []byte(portsProject), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	// The host's own service, on loopback only.
	lctx, stopListener := context.WithCancel(ctx)
	listener := exec.CommandContext(lctx, "ip", "netns", "exec", e.ns.Name, "busybox", "httpd", "-f", "-p", "127.0.0.1:18081", "-h", "/tmp")
	if err := listener.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stopListener(); listener.Wait() }()
	waitFor(t, 10*time.Second, func() bool {
		out, _ := e.ns.Run(t, "ss", "-Hltn", "sport", "= :18081")
		return strings.Contains(out, "18081")
	})
	before := e.snapshot(t)
	out, err := e.cli(t, ctx, file, nil, "up", "-d").CombinedOutput()
	if err == nil {
		e.downAtEnd(t, "held")
		t.Fatalf("up took a port the host's service holds:\n%s", out)
	}
	want := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(file) + `:7:12: services\.web\.ports: host port 18081/tcp is in use on this host \(pid \d+, busybox\)$`)
	if !want.Match(out) {
		t.Errorf("up's error, want %s:\n%s", want, out)
	}
	if after := e.snapshot(t); after != before {
		t.Errorf("up of a project whose port is taken changed the system:\n%s", diffLines(before, after))
	}
	stopListener()
	listener.Wait()

	e.downAtEnd(t, "held")
	if out, err := e.cli(t, ctx, file, nil, "up", "-d", "--wait").CombinedOutput(); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	bind := func() error {
		out, err := e.ns.Run(t, "python3", "-c", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 18081))")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if bind() == nil {
		t.Error("another program bound 127.0.0.1:18081 while the project forwards it")
	}
	if out := e.ns.MustRun(t, "ss", "-Hltnp", "sport", "= :18081"); !strings.Contains(out, `"foldup"`) {
		t.Errorf("ss does not name foldup's supervisor as the port's holder:\n%s", out)
	}
	waitFor(t, 30*time.Second, func() bool {
		out, _ := e.ns.Run(t, "timeout", "3", "busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:18081/")
		return strings.TrimSpace(out) == "hello from web"
	})
	if out, err := e.cli(t, ctx, file, nil, "down").CombinedOutput(); err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	if err := bind(); err != nil {
		t.Errorf("after down the port is still held: %v\n%s\n%s", err, e.ns.MustRun(t, "ss", "-Haltnp", "sport", "= :18081"), e.ns.MustRun(t, "ps", "-ef"))
	}
}
