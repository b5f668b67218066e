package qemu

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/foldup/foldup/internal/golden"
)

// TestArgs compares Args' command lines with the golden files, one
// argument a line.
func TestArgs(t *testing.T) {
	cases := map[string]Config{
		"tcg-kernel": {
			Name: "vm1", CPUs: 2, Memory: 512 << 20,
			Kernel: "/k/vmlinux", Initrd: "/k/initrd", Cmdline: "console=ttyS0 quiet",
			NICs: []NIC{{Tap: "fu1a2b3c0", MAC: "52:54:00:12:34:56"}, {Tap: "fu1a2b3c1", MAC: "52:54:00:12:34:57"}},
			QMP:  "/run/foldup/p/vm1/qmp", Events: "/run/foldup/p/vm1/events", Console: "/run/foldup/p/vm1/console", ConsoleLog: "/var/lib/foldup/p/vm1/console.log", Agent: "/run/foldup/p/vm1/qga",
			PidFile: "/run/foldup/p/vm1/pid",
		},
		"kvm-disk-seed": {
			Name: "db", KVM: true, Disk: "/var/lib/foldup/p,odd/db/disk.qcow2", Seed: "/var/lib/foldup/p/db/seed.iso",
			NICs: []NIC{{Tap: "fu9", MAC: "52:54:00:00:00:01"}},
			QMP:  "/r/qmp", Console: "/r/con", ConsoleLog: "/s/console.log", PidFile: "/r/pid",
			Extra: []string{"-device", "virtio-rng-pci"},
		},
		"seed-fd": {
			Name: "vm2", Kernel: "/proc/self/fd/4", SeedFD: 5,
			NICs: []NIC{{Tap: "fu8", FD: 3, MAC: "52:54:00:00:00:02"}},
			QMP:  "/r/qmp", Console: "/r/con", ConsoleLog: "/s/log", PidFile: "/r/pid",
		},
		"kvm-device-fd": {
			Name: "vm3", KVM: true, KVMDeviceFD: 6, Kernel: "/proc/self/fd/4",
			QMP: "/r/qmp", Console: "/r/con", ConsoleLog: "/s/log", PidFile: "/r/pid",
		},
		"aarch64-disk-uefi": {
			Name: "arm", Arch: "aarch64", Disk: "/s/disk.qcow2",
			Firmware: "/usr/share/AAVMF/AAVMF_CODE.fd", FirmwareVars: "/s/efivars.fd",
			NICs: []NIC{{Tap: "fu7", FD: 3, MAC: "52:54:00:00:00:03"}},
			QMP:  "/r/qmp", Console: "/r/con", ConsoleLog: "/s/log", PidFile: "/r/pid",
		},
		"aarch64-kvm": {
			Name: "arm", Arch: "aarch64", KVM: true, Kernel: "/k/Image",
			QMP: "/r/qmp", Console: "/r/con", ConsoleLog: "/s/log", PidFile: "/r/pid",
		},
		"riscv64-default-cmdline": {
			Name: "rv", Arch: "riscv64", Kernel: "/k/Image",
			QMP: "/r/qmp", Console: "/r/con", ConsoleLog: "/s/log", PidFile: "/r/pid",
		},
		"aarch64-default-cmdline": {
			Name: "arm", Arch: "aarch64", Kernel: "/k/Image",
			QMP: "/r/qmp", Console: "/r/con", ConsoleLog: "/s/log", PidFile: "/r/pid",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := strings.Join(Args(c), "\n") + "\n"
			golden.Check(t, filepath.Join("testdata", name+".golden"), got)
		})
	}
}
