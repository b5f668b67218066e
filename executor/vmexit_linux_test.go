//go:build linux

package executor

import (
	"testing"

	"github.com/foldup/foldup/internal/foldtest"
	"github.com/foldup/foldup/vm"
)

// TestVMCompletedSuccessfully: a container that depends on a VM with
// service_completed_successfully starts once the VM's guest has powered
// off by itself (exit 0), as it would after a one-shot container; up
// waits for it rather than failing at once.
func TestVMCompletedSuccessfully(t *testing.T) {
	e := newTestEnv(t)
	p := foldtest.NewProject("done")
	// The guest's init is busybox's poweroff -f: the kernel boots, then
	// powers the machine off.
	p.AddVM(t, "job", foldtest.VM{Memory: "128m", Cmdline: "rdinit=/bin/poweroff -- -f"})
	p.AddService("after", `image: foldup-test/busybox:1
init: true
command: ["sleep", "3600"]
depends_on: {job: {condition: service_completed_successfully}}`)
	proj, _ := e.upInProcess(t, "done", p.String())
	c, err := e.eng.Client.ContainerInspect(t.Context(), "done-after-1")
	if err != nil || !c.State.Running {
		t.Fatalf("after: %v, %+v; want it running once job completed", err, c.State)
	}
	rec, err := vm.ReadRecord(vm.For(e.o.withDefaults().dirs(proj.Name), "job"))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Exited.IsZero() || rec.ExitCode != 0 || rec.Exit != "guest-shutdown" {
		t.Errorf("job's record: exited %v, code %d, %q; want guest-shutdown, 0", rec.Exited, rec.ExitCode, rec.Exit)
	}
}
