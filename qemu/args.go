package qemu

import (
	"fmt"
	"strconv"
	"strings"
)

// Config is one VM as qemu needs it. Paths are absolute.
type Config struct {
	Name   string
	Arch   string // x86_64 (default) or aarch64
	KVM    bool   // /dev/kvm is usable; else TCG
	CPUs   int
	Memory int64 // bytes

	Kernel, Initrd, Cmdline string // direct kernel boot
	Disk                    string // the VM's qcow2 overlay (or its image)
	Seed                    string // cloud-init NoCloud ISO
	// SeedFD, when > 0, is the seed as a descriptor qemu inherits (as
	// NIC.FD), given to it as an fd set: qemu uses the descriptor itself,
	// where opening /proc/self/fd/N would check the file's mode again.
	SeedFD int

	NICs []NIC

	QMP        string // QMP socket, for commands
	Events     string // a second QMP socket, for a watcher that stays connected
	Console    string // serial console socket
	ConsoleLog string // the console's output, appended
	PidFile    string

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
	switch c.Arch {
	case "aarch64":
		a = append(a, "-machine", "virt")
	default:
		a = append(a, "-machine", "q35")
	}
	if c.KVM {
		a = append(a, "-accel", "kvm", "-cpu", "host")
	} else {
		a = append(a, "-accel", "tcg,thread=multi", "-cpu", "max")
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
	a = append(a,
		"-pidfile", c.PidFile,
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
	)
	return append(a, c.Extra...)
}

func serialName(arch string) string {
	if arch == "aarch64" {
		return "ttyAMA0"
	}
	return "ttyS0"
}

func diskFormat(path string) string {
	if strings.HasSuffix(path, ".raw") || strings.HasSuffix(path, ".img") {
		return "raw"
	}
	return "qcow2"
}

// escape doubles the commas of a value inside a qemu option list.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
