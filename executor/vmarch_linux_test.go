//go:build linux

package executor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/systest"
	"github.com/foldup/foldup/internal/vmtest"
	"github.com/foldup/foldup/vm"
)

const foreignProject = `
name: %[1]s
services:
  web:
    image: foldup-test/busybox:1
    init: true
    command: ["sh", "-c", "mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 80 -h /www"]
vms:
  vm1:
    arch: %[2]s
    kernel: %[3]s
    initrd: %[4]s
    cmdline: "console=%[5]s quiet panic=-1 foldup.peer=web"
    memory: 512m
    stop_grace_period: 1s
    healthcheck:
      test: ["http", "/"]
      interval: 1s
      retries: 180
    depends_on: [web]
`

// TestForeignArch boots an aarch64 VM (Debian's arm64 kernel and the test
// busybox initramfs built for arm64) under TCG on this x86_64 host, beside
// a container: qemu-system-aarch64 on the virt machine, never KVM, the
// console on ttyAMA0; the guest takes its planned lease from foldup's
// DHCP server, resolves the container by name and fetches its page, and
// the container reaches the VM by name.
func TestForeignArch(t *testing.T) {
	if runtime.GOARCH == "arm64" {
		t.Skip("the host is aarch64: arm64 is not foreign here")
	}
	kernel, initrd := vmtest.Foreign(t, "arm64", "aarch64")
	e := newTestEnv(t)
	p, res := e.upInProcess(t, "arm", fmt.Sprintf(foreignProject, "arm", "aarch64", kernel, initrd, "ttyAMA0"))
	vm1, web := planMember(t, res.Plan, "vm1"), planMember(t, res.Plan, "web")
	f := vm.For(e.o.withDefaults().dirs(p.Name), "vm1")
	lease := waitVMConsole(t, f, "FOLDUP-LEASE", 5*time.Minute)
	if !strings.Contains(lease, "ip="+vm1.NICs[0].IPv4.String()+" ") || !strings.Contains(lease, "hostname=vm1 ") {
		t.Errorf("vm1's lease %q, want ip=%s hostname=vm1", lease, vm1.NICs[0].IPv4)
	}
	if got, want := waitVMConsole(t, f, "FOLDUP-DNS", 2*time.Minute), "FOLDUP-DNS web="+web.NICs[0].IPv4.String(); got != want {
		t.Errorf("vm1 resolved web: %q, want %q", got, want)
	}
	if got := waitVMConsole(t, f, "FOLDUP-HTTP", 2*time.Minute); got != "FOLDUP-HTTP web: hello from web" {
		t.Errorf("vm1 fetched from web: %q", got)
	}
	if out, code := e.exec(t, "arm-web-1", "wget", "-q", "-O", "-", "http://vm1/"); code != 0 || strings.TrimSpace(out) != "hello from vm1" {
		t.Errorf("the container fetching http://vm1/: %q (exit %d)", out, code)
	}
	rec, err := vm.ReadRecord(f)
	if err != nil {
		t.Fatal(err)
	}
	if c := rec.Launch.Config; c.KVM || c.Arch != "aarch64" {
		t.Errorf("vm1 launched with arch %q, KVM %v; want aarch64 under TCG", c.Arch, c.KVM)
	}
	list, err := New(e.o).Ps(t.Context(), p.Name, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range list {
		if st.Name == "vm1" && st.Accel != "tcg" {
			t.Errorf("ps: vm1 runs under %q, want tcg", st.Accel)
		}
	}
	assertConfined(t, vm.Running(f), f)
}

// TestForeignArchUEFI starts an aarch64 VM from a disk image alone: it
// boots through UEFI (Debian's AAVMF, as read-only pflash) with a variable
// store of its own, owned by qemu's user, and the firmware finds the
// image's virtio disk (blank here, so it goes on to its shell).
func TestForeignArchUEFI(t *testing.T) {
	if runtime.GOARCH == "arm64" {
		t.Skip("the host is aarch64: arm64 is not foreign here")
	}
	systest.Command(t, "qemu-system-aarch64")
	systest.Command(t, "qemu-img")
	_, err := os.Stat(vm.UEFICode)
	systest.Need(t, err == nil, "needs "+vm.UEFICode+" (Debian: qemu-efi-aarch64)")
	e := newTestEnv(t)
	disk := filepath.Join(e.dir, "blank.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", disk, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	os.Chmod(disk, 0o644)
	p, _ := e.upInProcess(t, "efi", fmt.Sprintf(`
name: efi
vms:
  fw:
    arch: aarch64
    image: %s
    stop_grace_period: 1s
`, disk))
	f := vm.For(e.o.withDefaults().dirs(p.Name), "fw")
	waitVMConsole(t, f, "UEFI firmware", 2*time.Minute)
	// Boot0001 is the image's disk, the first boot option.
	waitVMConsole(t, f, `from PciRoot(0x0)/Pci(0x1,0x0)`, 2*time.Minute)
	st, err := os.Stat(f.EFIVars())
	if err != nil {
		t.Fatal(err)
	}
	cred, _ := vm.QemuUser()
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != cred.Uid || st.Size() != 64<<20 {
		t.Errorf("%s: owner %d, %d bytes; want qemu's user %d, 64 MiB", f.EFIVars(), sys.Uid, st.Size(), cred.Uid)
	}
	rec, err := vm.ReadRecord(f)
	if err != nil {
		t.Fatal(err)
	}
	if c := rec.Launch.Config; c.Firmware != vm.UEFICode || c.FirmwareVars != f.EFIVars() || c.KVM {
		t.Errorf("launched with firmware %q, vars %q, KVM %v", c.Firmware, c.FirmwareVars, c.KVM)
	}
	assertConfined(t, vm.Running(f), f)
}
