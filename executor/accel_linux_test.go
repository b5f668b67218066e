//go:build linux

package executor

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/systest"
	"github.com/foldup/foldup/internal/vmtest"
	"github.com/foldup/foldup/qemu"
	"github.com/foldup/foldup/spec"
	"github.com/foldup/foldup/vm"
	"golang.org/x/sys/unix"
)

// accelChild names, in a child test process, the host it simulates.
const accelChild = "FOLDUP_TEST_ACCEL_HOST"

// TestAccelHosts boots a VM on the hosts foldup meets, each simulated in
// a private mount namespace (a child test process under unshare -m) by
// what is bound over /dev/kvm, the host's own device untouched:
//
//   - none: a socket file, so opening it fails as on a host without KVM:
//     TCG, and nothing said;
//   - ordinary: a 10:232 node crw-rw---- root:kvm, as distributions make
//     it: qemu's user gets the kvm group and nothing more, opens the
//     device and runs the probe; where the probe fails (this machine's
//     PVM) the VM falls back to TCG with the warning;
//   - as-is: the host's own device, whatever it is.
//
// In each the VM gets its lease, ps shows the accelerator qemu reports,
// and qemu's groups are the one the verdict named, or none.
func TestAccelHosts(t *testing.T) {
	host := os.Getenv(accelChild)
	if host == "" {
		vmtest.Images(t)
		systest.Root(t)
		systest.Command(t, "unshare")
		bin := foldupBinary(t)
		for _, h := range []string{"none", "ordinary", "as-is"} {
			t.Run(h, func(t *testing.T) {
				cmd := exec.CommandContext(t.Context(), "unshare", "-m", "--propagation", "private",
					os.Args[0], "-test.run", "^TestAccelHosts$", "-test.v", "-test.count=1", "-test.timeout=4m")
				cmd.Env = append(os.Environ(), accelChild+"="+h, "FOLDUP_TEST_FOLDUP="+bin)
				out, err := cmd.CombinedOutput()
				t.Logf("the child, on a simulated %s host:\n%s", h, out)
				if err != nil {
					t.Fatalf("child: %v", err)
				}
				if !strings.Contains(string(out), "--- PASS: TestAccelHosts") {
					t.Fatal("the child ran no test")
				}
			})
		}
		return
	}

	kernel, initrd := vmtest.Images(t)
	kvmGroup := simulateKVM(t, host)
	e := newTestEnv(t)
	var log strings.Builder
	e.o.Events = eventsTo(&log)
	p, _ := e.upInProcess(t, "acc", fmt.Sprintf(`
name: acc
vms:
  vm1:
    kernel: %s
    initrd: %s
    cmdline: "console=ttyS0 quiet panic=-1"
    memory: 256m
    stop_grace_period: 1s
`, kernel, initrd))
	t.Logf("up:\n%s", log.String())
	f := vm.For(e.o.withDefaults().dirs(p.Name), "vm1")
	waitVMConsole(t, f, "FOLDUP-LEASE", 90*time.Second)

	verdicts, _ := filepath.Glob(filepath.Join(e.o.RunRoot, "accel", "kvm-*.json"))
	var v qemu.KVMVerdict
	if len(verdicts) == 1 {
		b, _ := os.ReadFile(verdicts[0])
		json.Unmarshal(b, &v)
	}
	rec, err := vm.ReadRecord(f)
	if err != nil {
		t.Fatal(err)
	}
	warned := strings.Contains(log.String(), "warning: KVM: ")
	switch host {
	case "none":
		if len(verdicts) != 0 || warned || rec.Launch.Config.KVM {
			t.Errorf("no KVM: verdicts %v, warned %v, KVM %v; want none, no warning, TCG", verdicts, warned, rec.Launch.Config.KVM)
		}
	case "ordinary":
		if len(verdicts) != 1 {
			t.Fatalf("verdicts: %v, want one", verdicts)
		}
		// qemu's user reached the device through the kvm group: what
		// stopped KVM (if anything) is the probe, not the permission.
		if v.Group != kvmGroup || strings.Contains(v.Reason, "Permission denied") || strings.Contains(v.Reason, "may not open") {
			t.Errorf("verdict %+v: want group %d and no permission problem", v, kvmGroup)
		}
		if !v.Usable && !strings.Contains(v.Reason, "probe guest") {
			t.Errorf("verdict %+v: a failure should be the probe's", v)
		}
	}
	if len(verdicts) == 1 {
		if v.Usable != rec.Launch.Config.KVM || warned == v.Usable {
			t.Errorf("verdict %+v, VM under KVM %v, warned %v", v, rec.Launch.Config.KVM, warned)
		}
		if warned && !strings.Contains(log.String(), v.Reason+": VMs run under TCG (slower)") {
			t.Errorf("the warning does not give the verdict's reason %q", v.Reason)
		}
	}
	wantGroups := ""
	if rec.Launch.Config.KVM && v.Group >= 0 {
		wantGroups = strconv.Itoa(v.Group)
	}
	pid := vm.Running(f)
	assertConfined(t, pid, f)
	if got := procGroups(t, pid); got != wantGroups {
		t.Errorf("qemu's supplementary groups %q, want %q", got, wantGroups)
	}
	list, err := New(e.o).Ps(t.Context(), p.Name, false)
	if err != nil {
		t.Fatal(err)
	}
	wantAccel := "tcg"
	if rec.Launch.Config.KVM {
		wantAccel = "kvm"
	}
	if len(list) != 1 || list[0].Accel != wantAccel {
		t.Errorf("ps: %+v, want vm1 with Accel %s", list, wantAccel)
	}
}

// simulateKVM binds what host stands for over /dev/kvm in this process's
// mount namespace (a private one: the caller runs under unshare -m) and
// returns the kvm group it used (-1 if none).
func simulateKVM(t *testing.T, host string) int {
	t.Helper()
	dir := t.TempDir()
	node := filepath.Join(dir, "kvm")
	gid := -1
	switch host {
	case "as-is":
		return -1
	case "none":
		l, err := net.Listen("unix", node)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	case "ordinary":
		gid = 4242
		if g, err := user.LookupGroup("kvm"); err == nil {
			gid, _ = strconv.Atoi(g.Gid)
		}
		if err := unix.Mknod(node, unix.S_IFCHR|0o660, int(unix.Mkdev(10, 232))); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(node, 0, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(node, 0o660); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("no such host %q", host)
	}
	if err := unix.Mount(node, qemu.KVMDevice, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("binding %s over %s: %v", node, qemu.KVMDevice, err)
	}
	t.Cleanup(func() { unix.Unmount(qemu.KVMDevice, unix.MNT_DETACH) })
	return gid
}

// procGroups is a process's supplementary groups, as /proc/PID/status
// lists them.
func procGroups(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Groups:"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

// waitVMConsole waits until a VM's console (this boot's) has a line with
// want, and returns the line from want on.
func waitVMConsole(t *testing.T, f vm.Files, want string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(f.ConsoleLog())
		for _, l := range strings.Split(string(b), "\n") {
			if i := strings.Index(l, want); i >= 0 {
				return strings.TrimSpace(l[i:])
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q on the console in %v:\n%s", want, d, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAccelForeignArch: a foreign architecture never gets KVM, and asking
// for it is an error at the accel line; tcg asks nothing of the host.
func TestAccelForeignArch(t *testing.T) {
	if qemu.HostArch() != "x86_64" {
		t.Skip("written for an x86_64 host")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "k"), nil, 0o644)
	file := filepath.Join(dir, "foldup.yaml")
	os.WriteFile(file, []byte(`name: arch
vms:
  arm: {kernel: k, arch: aarch64}
  forced: {kernel: k, arch: aarch64, accel: kvm}
  slow: {kernel: k, accel: tcg}
`), 0o644)
	p, err := spec.Load(t.Context(), spec.Options{Files: []string{file}})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{RunRoot: t.TempDir()}
	_, _, err = vm.Accelerators(t.Context(), p, []string{"forced"}, o.RunRoot)
	if want := file + ":4:45: vms.forced.accel: KVM runs only guests of the host's architecture (x86_64), and this VM's arch is aarch64"; err == nil || err.Error() != want {
		t.Errorf("forced: %v\nwant %s", err, want)
	}
	acc, warnings, err := vm.Accelerators(t.Context(), p, []string{"arm", "slow"}, o.RunRoot)
	if err != nil || len(warnings) != 0 || acc["arm"].KVM || acc["slow"].KVM || acc["arm"].Group != -1 {
		t.Errorf("arm, slow: %+v %v %v; want TCG, no group, nothing said", acc, warnings, err)
	}
	if files, _ := filepath.Glob(filepath.Join(o.RunRoot, "accel", "*")); len(files) != 0 {
		t.Errorf("no VM wanted KVM, yet the probe ran: %v", files)
	}
}
