package qemu

import (
	"fmt"
	goruntime "runtime"
	"strconv"
	"strings"
)

// Config is one VM as qemu needs it. Paths are absolute.
type Config struct {
	Name string
	Arch string // x86_64 (default), aarch64 or riscv64
	KVM  bool   // run under KVM; else TCG
	// KVMDeviceFD, when > 0, is /dev/kvm as a descriptor qemu inherits,
	// for a qemu that takes it (DeviceFDSupported).
	KVMDeviceFD int
	CPUs        int
	Memory      int64 // bytes

	Kernel, Initrd, Cmdline string // direct kernel boot
	Disk                    string // the VM's qcow2 overlay (or its image)
	// Firmware is UEFI's code as a read-only pflash (aarch64 disks), and
	// FirmwareVars the VM's own copy of its variable store.
	Firmware, FirmwareVars string
	Bios                   string // -bios: a firmware image in place of qemu's default
	Seed                   string // cloud-init NoCloud ISO
	// SeedFD, when > 0, is the seed as a descriptor qemu inherits (as
	// NIC.FD), given to it as an fd set: qemu uses the descriptor itself,
	// where opening /proc/self/fd/N would check the file's mode again.
	SeedFD int

	NICs []NIC

	QMP        string // QMP socket, for commands
	Events     string // a second QMP socket, for a watcher that stays connected
	Console    string // serial console socket
	ConsoleLog string // the console's output, appended
	// Agent is the socket of a virtio-serial channel for qemu-guest-agent
	// (the port AgentPort, the chardev AgentChardev); "" for none.
	Agent   string
	PidFile string

	Extra []string // qemu_args, appended last
}

// NIC is a virtio network interface on a tap: by name, or by a
// descriptor qemu inherits (FD > 0; see OpenTap), as libvirt passes them.
type NIC struct {
	Tap string
	FD  int
	MAC string
}

// Binary is the qemu system emulator for an architecture.
func Binary(arch string) string {
	if arch == "" {
		arch = "x86_64"
	}
	return "qemu-system-" + arch
}

// Args is qemu's command line for c, the binary first. qemu writes its
// pid file and denies itself, through seccomp, what a VM never needs:
// obsolete syscalls, privilege changes, spawning processes and changing
// resource controls. It does not daemonize (qemu 7.2's -daemonize and
// -runas both need what the sandbox denies): Start runs it detached, as
// an unprivileged user, instead.
func Args(c Config) []string {
	a := []string{Binary(c.Arch), "-name", c.Name + ",debug-threads=on"}
	m := machineFor(c.Arch)
	machine := m.machine
	if c.KVM && m.kvmMachine != "" {
		machine = m.kvmMachine
	}
	a = append(a, "-machine", machine)
	switch {
	case c.KVM && c.KVMDeviceFD > 0:
		a = append(a, "-add-fd", "fd="+strconv.Itoa(c.KVMDeviceFD)+",set=2,opaque=kvm",
			"-accel", "kvm,device=/dev/fdset/2", "-cpu", "host")
	case c.KVM:
		a = append(a, "-accel", "kvm", "-cpu", "host")
	default:
		a = append(a, "-accel", "tcg,thread=multi", "-cpu", m.tcgCPU)
	}
	if c.Firmware != "" {
		a = append(a, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+escape(c.Firmware))
		if c.FirmwareVars != "" {
			a = append(a, "-drive", "if=pflash,format=raw,unit=1,file="+escape(c.FirmwareVars))
		}
	}
	if c.Bios != "" {
		a = append(a, "-bios", c.Bios)
	}
	cpus := max(c.CPUs, 1)
	mem := c.Memory >> 20
	if mem <= 0 {
		mem = 512
	}
	a = append(a, "-smp", strconv.Itoa(cpus), "-m", strconv.FormatInt(mem, 10),
		"-nodefaults", "-no-user-config", "-display", "none", "-vga", "none")
	if c.Kernel != "" {
		a = append(a, "-kernel", c.Kernel)
		if c.Initrd != "" {
			a = append(a, "-initrd", c.Initrd)
		}
		cmdline := c.Cmdline
		if cmdline == "" {
			cmdline = "console=" + serialName(c.Arch)
		}
		a = append(a, "-append", cmdline)
	}
	if c.Disk != "" {
		a = append(a, "-drive", "if=none,id=disk0,file="+escape(c.Disk)+",format="+diskFormat(c.Disk)+",discard=unmap",
			"-device", "virtio-blk-pci,drive=disk0,bootindex=1")
	}
	seed := c.Seed
	if c.SeedFD > 0 {
		a = append(a, "-add-fd", "fd="+strconv.Itoa(c.SeedFD)+",set=1,opaque=seed")
		seed = "/dev/fdset/1"
	}
	if seed != "" {
		a = append(a, "-drive", "if=none,id=seed,file="+escape(seed)+",format=raw,readonly=on",
			"-device", "virtio-blk-pci,drive=seed")
	}
	for i, n := range c.NICs {
		id := fmt.Sprintf("net%d", i)
		netdev := "tap,id=" + id + ",ifname=" + n.Tap + ",script=no,downscript=no"
		if n.FD > 0 {
			netdev = "tap,id=" + id + ",fd=" + strconv.Itoa(n.FD)
		}
		a = append(a, "-netdev", netdev,
			"-device", "virtio-net-pci,netdev="+id+",mac="+n.MAC)
	}
	a = append(a,
		"-chardev", "socket,id=console,path="+escape(c.Console)+",server=on,wait=off,logfile="+escape(c.ConsoleLog)+",logappend=on",
		"-serial", "chardev:console",
		"-qmp", "unix:"+escape(c.QMP)+",server=on,wait=off",
	)
	// qemu serves one client per QMP socket: a second monitor lets the
	// supervisor hold a connection for events while commands come in on
	// the first.
	if c.Events != "" {
		a = append(a, "-chardev", "socket,id=events,path="+escape(c.Events)+",server=on,wait=off", "-mon", "chardev=events,mode=control")
	}
	// As libvirt and Lima do: the channel costs nothing in a guest
	// without an agent, and lets one that runs it be reached without SSH.
	if c.Agent != "" {
		a = append(a, "-device", "virtio-serial-pci,id=vser0",
			"-chardev", "socket,id="+AgentChardev+",path="+escape(c.Agent)+",server=on,wait=off",
			"-device", "virtserialport,bus=vser0.0,chardev="+AgentChardev+",name="+AgentPort)
	}
	a = append(a,
		"-pidfile", c.PidFile,
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
	)
	return append(a, c.Extra...)
}

// machine is how qemu emulates one architecture.
type machine struct {
	machine    string // -machine under TCG
	kvmMachine string // -machine under KVM, when it differs
	tcgCPU     string // -cpu under TCG
	console    string // the guest's name for the first serial port
	pkg        string // the Debian package with the emulator
}

var machines = map[string]machine{
	"x86_64": {machine: "q35", tcgCPU: "max", console: "ttyS0", pkg: "qemu-system-x86"},
	// virt with a GICv3 under KVM (the host's), the emulated GICv2 under
	// TCG; cortex-a57 rather than max: max has pointer authentication,
	// which TCG emulates slowly.
	"aarch64": {machine: "virt", kvmMachine: "virt,gic-version=host", tcgCPU: "cortex-a57", console: "ttyAMA0", pkg: "qemu-system-arm"},
	"riscv64": {machine: "virt", tcgCPU: "rv64", console: "ttyS0", pkg: "qemu-system-misc"},
}

func machineFor(arch string) machine {
	if m, ok := machines[arch]; ok {
		return m
	}
	return machines["x86_64"]
}

// Package is the Debian package that has qemu for arch.
func Package(arch string) string {
	if arch == "" {
		arch = HostArch()
	}
	return machineFor(arch).pkg
}

func serialName(arch string) string { return machineFor(arch).console }

func diskFormat(path string) string {
	if strings.HasSuffix(path, ".raw") || strings.HasSuffix(path, ".img") {
		return "raw"
	}
	return "qcow2"
}

// escape doubles the commas of a value inside a qemu option list.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// HostArch is qemu's name for the host's architecture.
func HostArch() string {
	switch goruntime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return goruntime.GOARCH // riscv64, ...
}
