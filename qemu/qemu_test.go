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
	dir, err := os.MkdirTemp("/tmp", "fu-q-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
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

	c := Config{
		Name: "t1", CPUs: 1, Memory: 256 << 20,
		Kernel: boot, Initrd: initrd, Cmdline: "console=ttyS0 quiet panic=-1",
		QMP: filepath.Join(dir, "qmp"), Console: filepath.Join(dir, "con"),
		ConsoleLog: filepath.Join(dir, "console.log"), PidFile: filepath.Join(dir, "pid"),
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	pid, err := Start(t.Context(), c, &syscall.Credential{Uid: 65534, Gid: 65534}, nil, filepath.Join(dir, "qemu.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })

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
	deadline := time.Now().Add(40 * time.Second)
	for {
		b, _ := os.ReadFile(c.ConsoleLog)
		if strings.Contains(string(b), "FOLDUP-READY") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no FOLDUP-READY on the console in 40 s:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	if err := Stop(ctx, c.QMP, pid, time.Second); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(pid, 0) == nil && !isZombie(pid) {
		t.Errorf("qemu %d still runs after Stop", pid)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("Stop took %v: it did not give the guest its grace", d)
	}
	if err := Stop(ctx, c.QMP, pid, time.Second); err != ErrNotRunning {
		t.Errorf("Stop of a stopped qemu = %v", err)
	}
}

// TestBootUnikernel boots a kernel that is not Linux: vmtest's few bytes
// of multiboot image, which write the command line they were given to the
// serial port and halt. BootKernel must hand it over as it is, and qemu must run it from
// Args' command line with no initrd, as nobody, under the sandbox.
func TestBootUnikernel(t *testing.T) {
	systest.Root(t)
	systest.Command(t, "qemu-system-x86_64")
	dir, err := os.MkdirTemp("/tmp", "fu-q-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	kernel := filepath.Join(dir, "echo.mb")
	if err := os.WriteFile(kernel, vmtest.MultibootEcho(), 0o644); err != nil {
		t.Fatal(err)
	}
	boot, err := BootKernel(kernel, filepath.Join(dir, "cache"))
	if err != nil || boot != kernel {
		t.Fatalf("BootKernel(a multiboot image) = %s, %v; want it as it is", boot, err)
	}
	const marker = "FOLDUP-UNIKERNEL greeting=hello"
	c := Config{
		Name: "uk", CPUs: 1, Memory: 32 << 20,
		Kernel: boot, Cmdline: marker,
		QMP: filepath.Join(dir, "qmp"), Console: filepath.Join(dir, "con"),
		ConsoleLog: filepath.Join(dir, "console.log"), PidFile: filepath.Join(dir, "pid"),
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	pid, err := Start(t.Context(), c, &syscall.Credential{Uid: 65534, Gid: 65534}, nil, filepath.Join(dir, "qemu.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(c.ConsoleLog)
		if strings.Contains(string(b), marker+"\n") {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "qemu.log"))
			t.Fatalf("the unikernel wrote no %q in 30 s; console:\n%q\nqemu:\n%s", marker, b, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// It ignores the power button, as such kernels do: Stop quits.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := Stop(ctx, c.QMP, pid, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(pid, 0) == nil && !isZombie(pid) {
		t.Errorf("qemu %d still runs after Stop", pid)
	}
}
