package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/systest"
	"github.com/foldup/foldup/internal/vmtest"
)

// TestBootQMP boots the test kernel (its PVH vmlinux, extracted by
// BootKernel) under the real qemu with Args' command line (seccomp
// sandbox) through Start (detached, as nobody), reads the console log,
// talks QMP and stops it.
func TestBootQMP(t *testing.T) {
	systest.Root(t)
	kernel, initrd := vmtest.Images(t)
	boot, err := BootKernel(kernel, filepath.Join(vmtest.Dir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	if boot == kernel {
		t.Fatalf("BootKernel(%s) found no PVH vmlinux in Debian's kernel", kernel)
	}
	again, err := BootKernel(kernel, filepath.Join(vmtest.Dir(), "cache"))
	if err != nil || again != boot {
		t.Fatalf("BootKernel again = %s, %v; want the cached %s", again, err, boot)
	}

	c, pid := startAsNobody(t, tempDir(t), Config{
		Name: "t1", CPUs: 1, Memory: 256 << 20,
		Kernel: boot, Initrd: initrd, Cmdline: "console=ttyS0 quiet panic=-1",
	})

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	q, err := DialQMP(ctx, c.QMP)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.Version.Qemu.Major < 7 {
		t.Errorf("qemu version %+v", q.Version.Qemu)
	}
	if st, err := q.Status(ctx); err != nil || st != "running" {
		t.Errorf("query-status = %q, %v", st, err)
	}
	kvm, err := q.KVM(ctx)
	if err != nil {
		t.Error(err)
	}
	_, kvmErr := os.Stat("/dev/kvm")
	if kvm && kvmErr != nil {
		t.Errorf("query-kvm says enabled without /dev/kvm")
	}
	if err := q.Execute(ctx, "no-such-command", nil, nil); err == nil || !strings.Contains(err.Error(), "CommandNotFound") {
		t.Errorf("unknown command: %v", err)
	}
	// qemu runs as nobody.
	status, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if !strings.Contains(string(status), "\nUid:\t65534\t") {
		t.Errorf("qemu does not run as nobody:\n%s", status)
	}
	// The guest's init reports on the console.
	waitConsole(t, c, "FOLDUP-READY", 40*time.Second)
	if err := q.Powerdown(ctx); err != nil {
		t.Error(err)
	}
	var sawPowerdown bool
	for !sawPowerdown {
		select {
		case ev := <-q.Events():
			sawPowerdown = ev.Event == "POWERDOWN"
		case <-time.After(5 * time.Second):
			t.Fatal("no POWERDOWN event")
		}
	}
	// busybox init ignores the power button: Stop quits after the grace.
	start := time.Now()
	if graceful, err := Stop(ctx, c.QMP, pid, time.Second); err != nil || graceful {
		t.Fatalf("Stop = %v, %v; want forced off (false), nil", graceful, err)
	}
	if syscall.Kill(pid, 0) == nil && !isZombie(pid) {
		t.Errorf("qemu %d still runs after Stop", pid)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("Stop took %v: it did not give the guest its grace", d)
	}
	if _, err := Stop(ctx, c.QMP, pid, time.Second); err != ErrNotRunning {
		t.Errorf("Stop of a stopped qemu = %v", err)
	}
}

// TestBootUnikernel boots a kernel that is not Linux: vmtest's few bytes
// of multiboot image, which write the command line they were given to the
// serial port and halt. BootKernel must hand it over as it is, and qemu
// must run it from Args' command line with no initrd, as nobody, under the
// sandbox.
func TestBootUnikernel(t *testing.T) {
	systest.Root(t)
	systest.Command(t, "qemu-system-x86_64")
	dir := tempDir(t)
	kernel := filepath.Join(dir, "echo.mb")
	if err := os.WriteFile(kernel, vmtest.MultibootEcho(), 0o644); err != nil {
		t.Fatal(err)
	}
	boot, err := BootKernel(kernel, filepath.Join(dir, "cache"))
	if err != nil || boot != kernel {
		t.Fatalf("BootKernel(a multiboot image) = %s, %v; want it as it is", boot, err)
	}
	const marker = "FOLDUP-UNIKERNEL greeting=hello"
	c, pid := startAsNobody(t, dir, Config{Name: "uk", CPUs: 1, Memory: 32 << 20, Kernel: boot, Cmdline: marker})
	waitConsole(t, c, marker+"\n", 30*time.Second)
	// It ignores the power button, as such kernels do: Stop quits.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := Stop(ctx, c.QMP, pid, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(pid, 0) == nil && !isZombie(pid) {
		t.Errorf("qemu %d still runs after Stop", pid)
	}
}

// tempDir is a directory under /tmp, removed when the test ends: qemu,
// as nobody, can reach it there, where t.TempDir's parents would stop it.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "fu-q-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startAsNobody gives c its sockets, console log and pid file in dir,
// hands dir to nobody and starts qemu as nobody, killed when the test
// ends. It returns c as started, and qemu's pid.
func startAsNobody(t *testing.T, dir string, c Config) (Config, int) {
	t.Helper()
	c.QMP, c.Console = filepath.Join(dir, "qmp"), filepath.Join(dir, "con")
	c.ConsoleLog, c.PidFile = filepath.Join(dir, "console.log"), filepath.Join(dir, "pid")
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	pid, err := Start(t.Context(), c, &syscall.Credential{Uid: 65534, Gid: 65534}, nil, filepath.Join(dir, "qemu.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return c, pid
}

// waitConsole waits for want on c's console, failing the test after d
// with the console and qemu's own log.
func waitConsole(t *testing.T, c Config, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(c.ConsoleLog)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(filepath.Dir(c.ConsoleLog), "qemu.log"))
			t.Fatalf("no %q on the console in %v:\n%s\nqemu:\n%s", want, d, b, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
