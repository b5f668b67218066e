// Package dockertest starts a private Docker engine inside a test's own
// network namespace, with its own data root, exec root, socket and
// containerd namespace, and stops it (removing everything it made) when the
// test ends. It also builds the test image offline: a busybox-static root
// filesystem imported with the engine's image import, since no registry is
// reachable.
//
// Tests using it skip without root, dockerd or busybox (fail with
// FOLDUP_REQUIRE_SYSTEM=1).
package dockertest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/foldup/foldup/internal/nstest"
	"github.com/foldup/foldup/internal/systest"
)

// Image is the name of the busybox image every engine has.
const Image = "foldup-test/busybox:1"

// Engine is a running private engine: dockerd, or Podman's Docker-compatible
// service (StartPodman; Restart and PowerOff are for dockerd only).
type Engine struct {
	NS     *nstest.NS
	Host   string // DOCKER_HOST value: unix:///...
	Dir    string // its state: data root, exec root, socket, log
	Client *client.Client

	script  string // the shell command that starts dockerd
	logName string // its log's file in Dir; "" for dockerd.log
	cmd     *exec.Cmd
	done    chan struct{}
}

// Start starts an engine inside ns and imports Image into it. The engine
// is stopped in t.Cleanup: its containers are removed first, so that it
// stops at once, and its cgroups and state are deleted after.
func Start(t testing.TB, ns *nstest.NS) *Engine {
	t.Helper()
	systest.Root(t)
	systest.Command(t, "dockerd")
	systest.Command(t, "busybox")
	_, err := os.Stat("/bin/busybox")
	systest.Need(t, err == nil, "needs /bin/busybox (busybox-static)")

	// Socket paths are limited to 108 bytes: keep the directory short.
	dir, err := os.MkdirTemp("/tmp", "fu-d-")
	if err != nil {
		t.Fatal(err)
	}
	id := filepath.Base(dir)
	e := &Engine{NS: ns, Dir: dir, Host: "unix://" + dir + "/docker.sock"}
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, keyErr := os.Stat("/etc/docker/key.json")
	e.script = cgroupMounts(t) + "exec dockerd" +
		" --host " + e.Host +
		" --data-root " + dir + "/data" +
		" --exec-root " + dir + "/exec" +
		" --pidfile " + dir + "/docker.pid" +
		" --config-file " + dir + "/daemon.json" +
		" --containerd-namespace " + id +
		" --containerd-plugins-namespace " + id + "-plugins" +
		" --cgroup-parent /" + id +
		" --userland-proxy=false --bridge none --log-level warn"
	e.run(t, func() {
		removeCgroups(id)
		if keyErr != nil {
			os.Remove("/etc/docker/key.json") // dockerd 20.10 writes it whatever --data-root says
		}
	})
	return e
}

// run launches the engine, waits for it and imports Image. When the test
// ends the engine is stopped, cleanup runs and e.Dir is removed.
func (e *Engine) run(t testing.TB, cleanup func()) {
	t.Helper()
	if err := e.launch(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.stop(t)
		// What daemonized out of the engine's process group outlives it
		// otherwise: Podman's conmon for each `exec` session (a health
		// check's) waits --exit-delay 300 seconds for someone to collect
		// the exit code. The slash: another engine's directory may begin
		// with this one's name.
		if err := killCommandsWith(e.Dir + "/"); err != nil {
			t.Errorf("ending the engine's leftover processes: %v", err)
		}
		cleanup()
		if err := os.RemoveAll(e.Dir); err != nil {
			t.Errorf("removing the engine's state: %v", err)
		}
	})
	if err := e.ready(); err != nil {
		t.Fatal(err)
	}
	if err := e.importBusybox(t.Context()); err != nil {
		t.Fatalf("importing busybox: %v", err)
	}
}

// launch starts dockerd (again) with the engine's state. `ip netns exec`
// remounts /sys, which hides the cgroup hierarchies dockerd needs: the
// script mounts them again inside that mount namespace.
func (e *Engine) launch() error {
	log, err := os.OpenFile(e.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	e.done = make(chan struct{})
	e.cmd = exec.Command("ip", "netns", "exec", e.NS.Name, "sh", "-ec", e.script)
	e.cmd.Stdout, e.cmd.Stderr = log, log
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := e.cmd.Start(); err != nil {
		log.Close()
		return err
	}
	cmd, done := e.cmd, e.done
	go func() { cmd.Wait(); log.Close(); close(done) }()
	return nil
}

// ready waits for the engine to answer and connects e.Client to it.
func (e *Engine) ready() error {
	if err := e.waitReady(30 * time.Second); err != nil {
		return fmt.Errorf("the engine did not start: %v\n%s", err, e.Log())
	}
	c, err := client.NewClientWithOpts(client.WithHost(e.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	if e.Client != nil {
		e.Client.Close()
	}
	e.Client = c
	return nil
}

// Restart stops the engine as `systemctl restart docker` does (SIGTERM:
// it stops its containers, and starts again those whose restart policy
// says so) and starts it again with the same state.
func (e *Engine) Restart(t testing.TB) {
	t.Helper()
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("dockerd did not stop in 30 s\n%s", e.Log())
	}
	syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL) // containerd
	if err := e.launch(); err != nil {
		t.Fatal(err)
	}
	if err := e.ready(); err != nil {
		t.Fatal(err)
	}
}

// PowerOff kills the engine, containerd, the shims and every container
// process at once with SIGKILL, and empties the engine's exec root (a
// tmpfs under /run on a real machine), as a power cut would. Boot starts
// it again.
func (e *Engine) PowerOff(t testing.TB) {
	t.Helper()
	syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
	<-e.done
	// The shims run in sessions of their own.
	if err := killCommandsWith(e.Dir + "/exec/containerd/"); err != nil {
		t.Fatal(err)
	}
	// Container processes live in their own sessions, under the engine's
	// cgroup parent: kill them there until none is left.
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := e.processes()
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container processes %v still run 10 s after SIGKILL", pids)
		}
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// dockerd's mounts were made in the mount namespace of `ip netns
	// exec`, which ended with the last of its processes.
	if err := os.RemoveAll(filepath.Join(e.Dir, "exec")); err != nil {
		t.Fatalf("emptying the exec root: %v", err)
	}
}

// processes returns the processes in the engine's cgroups: its
// containers' (cgroup v1 or v2).
func (e *Engine) processes() []int {
	id := filepath.Base(e.Dir)
	procs, _ := filepath.Glob("/sys/fs/cgroup/pids/" + id + "/*/cgroup.procs")
	v2, _ := filepath.Glob("/sys/fs/cgroup/" + id + "/*/cgroup.procs")
	var pids []int
	for _, f := range append(procs, v2...) {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(s); err == nil && p > 0 {
				pids = append(pids, p)
			}
		}
	}
	return pids
}

// killCommandsWith kills every process whose command line holds s, and
// waits until none is left (a zombie's command line is empty).
func killCommandsWith(s string) error {
	find := func() []int {
		var pids []int
		cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, f := range cmdlines {
			b, err := os.ReadFile(f)
			if err != nil || !strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), s) {
				continue
			}
			var pid int
			fmt.Sscanf(f, "/proc/%d/cmdline", &pid)
			pids = append(pids, pid)
		}
		return pids
	}
	for range 100 {
		pids := find()
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("processes with %q in their command line still run 5 s after SIGKILL: %v", s, find())
}

// Boot starts the engine after PowerOff, as the machine's init would.
func (e *Engine) Boot(t testing.TB) {
	t.Helper()
	if err := e.launch(); err != nil {
		t.Fatal(err)
	}
	if err := e.ready(); err != nil {
		t.Fatal(err)
	}
}

func (e *Engine) logFile() string {
	if e.logName == "" {
		return filepath.Join(e.Dir, "dockerd.log")
	}
	return filepath.Join(e.Dir, e.logName)
}

// Log returns what the engine printed.
func (e *Engine) Log() string {
	b, _ := os.ReadFile(e.logFile())
	return string(b)
}

// Env returns the environment for a docker client (or foldup) talking to
// this engine.
func (e *Engine) Env() []string { return append(os.Environ(), "DOCKER_HOST="+e.Host) }

func (e *Engine) waitReady(limit time.Duration) error {
	sock := strings.TrimPrefix(e.Host, "unix://")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}, Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-e.done:
			return fmt.Errorf("the engine exited")
		default:
		}
		if resp, err := hc.Get("http://docker/_ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer on %s after %s", sock, limit)
}

func (e *Engine) stop(t testing.TB) {
	if e.Client != nil {
		// Containers whose PID 1 ignores SIGTERM would hold dockerd's
		// shutdown for 10 s each: remove them first.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		removeAll(ctx, e.Client)
		cancel()
		e.Client.Close()
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(20 * time.Second):
		t.Errorf("the engine did not stop in 20 s; killing it")
		syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
		<-e.done
	}
	// containerd and its shims are dockerd's children in the same session.
	syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
}

// cgroupMounts returns shell commands that mount, inside `ip netns exec`'s
// mount namespace, the cgroup hierarchies the host has.
func cgroupMounts(t testing.TB) string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 4 || !strings.HasPrefix(fs[1], "/sys/fs/cgroup") {
			continue
		}
		fmt.Fprintf(&b, "mkdir -p %s && mount -t %s -o %s %s %s\n", fs[1], fs[2], fs[3], fs[0], fs[1])
	}
	return b.String()
}

// removeCgroups deletes the cgroup directories that --cgroup-parent made
// in every hierarchy (dockerd makes them absolute, outside its own).
func removeCgroups(id string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + id)
	for _, d := range dirs {
		subs, _ := filepath.Glob(d + "/*/")
		for _, s := range subs {
			syscall.Rmdir(s)
		}
		syscall.Rmdir(d)
	}
}

// importBusybox imports a root filesystem of /bin/busybox and a link per
// applet as Image.
func (e *Engine) importBusybox(ctx context.Context) error {
	tarball, err := BusyboxRootfs()
	if err != nil {
		return err
	}
	rc, err := e.Client.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(tarball), SourceName: "-"}, Image,
		image.ImportOptions{Changes: []string{`CMD ["/bin/sh"]`, "ENV PATH=/bin"}})
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// BusyboxRootfs returns a tar of a minimal root filesystem: /bin/busybox
// (static), a symlink per applet, /etc/passwd and /etc/group, /tmp.
func BusyboxRootfs() ([]byte, error) {
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, err
	}
	list, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	dir := func(name string, mode int64) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: mtime})
	}
	file := func(name string, mode int64, data []byte) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime})
		tw.Write(data)
	}
	dir("bin/", 0o755)
	dir("etc/", 0o755)
	dir("tmp/", 0o1777)
	dir("root/", 0o700)
	dir("data/", 0o755)
	file("bin/busybox", 0o755, bin)
	for _, a := range strings.Fields(string(list)) {
		if a == "busybox" {
			continue
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: mtime})
	}
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func removeAll(ctx context.Context, c *client.Client) {
	list, err := c.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return
	}
	for _, ct := range list {
		c.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	}
}
