//go:build linux

package vm

import (
	"cmp"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/foldup/foldup/qemu"
	"github.com/foldup/foldup/spec"
	"github.com/foldup/foldup/state"
)

// Accel is how one VM's qemu runs: under KVM (reaching the device through
// one supplementary group, or as a descriptor) or under TCG.
type Accel struct {
	KVM      bool
	DeviceFD bool
	Group    int // -1: none
}

// Accelerators decides, before anything is made, which accelerator each
// of names' VMs runs under: KVM only for a guest of the host's
// architecture, when qemu's user can open /dev/kvm and a probe guest runs
// under it (the verdict is kept under the run root until the host
// reboots); else TCG, with one warning saying why when the host has KVM.
// A VM that must have KVM (accel: kvm) and cannot is a positioned error.
func Accelerators(ctx context.Context, p *spec.Project, names []string, runRoot string) (map[string]Accel, []spec.Warning, error) {
	out := map[string]Accel{}
	var verdict *qemu.KVMVerdict
	check := func(fresh bool) qemu.KVMVerdict {
		if verdict == nil || fresh && verdict.Cached {
			var cred *syscall.Credential
			if os.Geteuid() == 0 {
				cred, _ = QemuUser() // as up starts qemu
			}
			v := qemu.KVMCheck{Cred: cred, CacheDir: filepath.Join(cmp.Or(runRoot, state.DefaultRunRoot), "accel"), Fresh: fresh}.Check(ctx)
			verdict = &v
		}
		return *verdict
	}
	var errs spec.ErrorList
	var warned bool
	var warnings []spec.Warning
	host := qemu.HostArch()
	for _, name := range names {
		v := p.VMs[name]
		if v == nil {
			continue
		}
		mode, from := p.Accel(name)
		// Where the choice was made: the VM's or the project's accel,
		// or the environment (then the VM is what the error points at).
		pos, field, said := p.LocateKey("vms", name), "vms."+name, spec.AccelEnv+"="+mode+": "
		if from != nil && from[0] != spec.AccelEnv {
			pos, field, said = p.Locate(from...), strings.Join(from, "."), ""
		}
		switch {
		case mode == spec.AccelTCG:
			out[name] = Accel{Group: -1}
		case v.Arch != host:
			if mode == spec.AccelKVM {
				errs.Add(pos, field, said+"KVM runs only guests of the host's architecture (%s), and this VM's arch is %s", host, v.Arch)
			}
			out[name] = Accel{Group: -1}
		default:
			// A VM that must have KVM trusts no cached failure: the
			// probe runs again.
			kv := check(mode == spec.AccelKVM)
			switch {
			case kv.Usable:
				out[name] = Accel{KVM: true, DeviceFD: kv.DeviceFD, Group: kv.Group}
				continue
			case mode == spec.AccelKVM && kv.Absent:
				errs.Add(pos, field, said+"KVM is not available on this host (no usable %s)", qemu.KVMDevice)
			case mode == spec.AccelKVM:
				errs.Add(pos, field, said+"KVM cannot run this VM: %s", kv.Reason)
			case kv.Reason != "" && !warned:
				warned = true
				warnings = append(warnings, spec.Warning{Key: "KVM", Msg: kv.Reason + ": VMs run under TCG (slower)"})
			}
			out[name] = Accel{Group: -1}
		}
	}
	if err := errs.Err(); err != nil {
		return nil, warnings, err
	}
	return out, warnings, nil
}
