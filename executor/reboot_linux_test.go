//go:build linux

package executor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/vmtest"
	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/vm"
)

const rebootProject = `
name: boot
services:
  db:
    image: foldup-test/busybox:1
    init: true
    command: ["sh", "-c", "mkdir -p /www && echo hello from db > /www/index.html && exec httpd -f -p 80 -h /www"]
    volumes: ["data:/data"]
  web:
    image: foldup-test/busybox:1
    init: true
    restart: unless-stopped
    command: ["sleep", "3600"]
    depends_on: [db]
vms:
  vm:
    kernel: %s
    initrd: %s
    cmdline: console=ttyS0 quiet panic=-1
    memory: 128m
    stop_grace_period: 0s
    depends_on: [db]
volumes:
  data: {}
`

// TestEngineRestartAndReboot runs a project of two containers and a VM
// through the faults of a machine that people use every day:
//
//   - the Docker engine restarted under it (the container without a
//     restart policy stays stopped; the one with unless-stopped comes
//     back by itself): `up` starts what is stopped, leaves the VM's qemu
//     alone, and every member reaches every other by name again;
//   - a reboot, simulated as a power cut: every process of the namespace,
//     the engine, its shims and containers killed with SIGKILL, every
//     link and the whole nftables ruleset deleted, the run directory (a
//     tmpfs) emptied; only the state directory and the engine's data root
//     are left, as on a disk. `up` then brings the whole project back with
//     its volume's data, and after a second power cut, `down -v` removes
//     everything that is left of it.
func TestEngineRestartAndReboot(t *testing.T) {
	e := newTestEnv(t)
	project := rebootProject
	haveVM := vmtest.Have()
	if haveVM {
		kernel, initrd := vmtest.Images(t)
		project = fmt.Sprintf(project, kernel, initrd)
	} else {
		project = project[:strings.Index(project, "vms:")] + project[strings.Index(project, "volumes:"):]
	}
	p := e.load(t, "boot", project)
	file := filepath.Join(e.dir, "boot", "foldup.yaml")
	e.downAtEnd(t, p.Name)
	d := e.o.withDefaults().dirs(p.Name)
	foldup := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := e.cli(t, ctx, file, nil, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("foldup %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// works checks that every member runs and reaches the others by name:
	// web resolves and fetches from db, and resolves and pings the VM;
	// db's volume still holds what was written into it at first.
	works := func(t *testing.T, when string) {
		t.Helper()
		list, err := New(e.o).Ps(t.Context(), p.Name, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range list {
			if st.State != "running" {
				t.Errorf("%s: %s is %s", when, st.Member, st.State)
			}
		}
		if out, code := e.exec(t, "boot-web-1", "wget", "-q", "-O", "-", "http://db/"); code != 0 || strings.TrimSpace(out) != "hello from db" {
			t.Errorf("%s: web fetching http://db/: %q (exit %d)", when, out, code)
		}
		if out, code := e.exec(t, "boot-db-1", "cat", "/data/marker"); code != 0 || strings.TrimSpace(out) != "written at the first up" {
			t.Errorf("%s: db's volume holds %q (exit %d)", when, out, code)
		}
		if !haveVM {
			return
		}
		pl, err := state.LoadPlan(d.PlanFile())
		if err != nil {
			t.Fatal(err)
		}
		vmIP := planMember(t, pl, "vm").NICs[0].IPv4.String()
		if out, code := e.exec(t, "boot-web-1", "nslookup", "vm"); code != 0 || !strings.Contains(out, "Address: "+vmIP) && !strings.Contains(out, "Address 1: "+vmIP) {
			t.Errorf("%s: web resolving vm (want %s): exit %d\n%s", when, vmIP, code, out)
		}
		// The VM takes its lease again after a reboot: wait for it.
		waitFor(t, 90*time.Second, func() bool {
			_, code := e.exec(t, "boot-web-1", "ping", "-c", "1", "-W", "1", "vm")
			return code == 0
		})
	}

	out := foldup("up", "-d")
	if _, code := e.exec(t, "boot-db-1", "sh", "-c", "echo written at the first up > /data/marker"); code != 0 {
		t.Fatal("writing into db's volume")
	}
	works(t, "after up")
	qemuPID := 0
	if haveVM {
		qemuPID = vm.Running(vm.For(d, "vm"))
	}

	t.Run("engine_restart", func(t *testing.T) {
		e.eng.Restart(t)
		list, err := New(e.o).Ps(t.Context(), p.Name, true)
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]string{}
		for _, st := range list {
			states[st.Member] = st.State
		}
		if states["db"] != "exited" || states["web"] != "running" {
			t.Errorf("after the engine's restart: %v, want db exited (no restart policy) and web running (unless-stopped)", states)
		}
		out = foldup("up", "-d")
		works(t, "up after the engine's restart")
		if haveVM {
			if pid := vm.Running(vm.For(d, "vm")); pid != qemuPID {
				t.Errorf("the VM's qemu is %d after up, was %d: an engine restart must not touch VMs", pid, qemuPID)
			}
		}
	})

	t.Run("reboot_then_up", func(t *testing.T) {
		e.powerCut(t)
		out = foldup("up", "-d")
		t.Logf("up after a power cut:\n%s", out)
		works(t, "up after a power cut")
	})

	t.Run("reboot_then_down", func(t *testing.T) {
		e.powerCut(t)
		out = foldup("down", "-v")
		t.Logf("down -v after a power cut:\n%s", out)
		e.assertGone(t, p.Name)
		if _, err := os.Stat(d.State); err == nil {
			t.Errorf("state directory %s left after down -v", d.State)
		}
	})
}

// powerCut simulates a machine that lost power and booted again: every
// process in the test's namespace and the engine's containers are killed
// with SIGKILL, every link but lo and the whole nftables ruleset go, the
// run directory is emptied; then the engine starts, as init would start
// it. The state directory and the engine's data root are kept.
func (e *testEnv) powerCut(t *testing.T) {
	t.Helper()
	e.eng.PowerOff(t)
	for range 50 {
		pids := strings.Fields(e.ns.MustRun(t, "ip", "netns", "pids", e.ns.Name))
		if len(pids) == 0 {
			break
		}
		for _, s := range pids {
			var pid int
			fmt.Sscan(s, &pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, l := range strings.Split(strings.TrimSpace(e.ns.MustRun(t, "ip", "-o", "link", "show")), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if name != "lo" {
			e.ns.MustRun(t, "ip", "link", "del", name)
		}
	}
	e.ns.MustRun(t, "nft", "flush", "ruleset")
	if err := os.RemoveAll(e.o.RunRoot); err != nil {
		t.Fatal(err)
	}
	e.eng.Boot(t)
}
