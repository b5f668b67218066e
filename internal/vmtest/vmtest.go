// Package vmtest finds the guests the VM tests boot: the kernel and
// initramfs scripts/images.sh builds, and the Debian cloud-init VM of
// scripts/cloudimage.sh, both offline from Debian packages. Tests skip
// without them, or fail with FOLDUP_REQUIRE_SYSTEM=1.
package vmtest

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/foldup/foldup/internal/systest"
)

// Dir is where scripts/images.sh puts the images.
func Dir() string {
	if d := os.Getenv("FOLDUP_TEST_IMAGES"); d != "" {
		return d
	}
	return "/var/cache/foldup-test"
}

// Images returns the test kernel and initramfs, and checks that qemu is
// installed.
func Images(t testing.TB) (kernel, initrd string) {
	t.Helper()
	systest.Command(t, "qemu-system-x86_64")
	kernel = filepath.Join(Dir(), "vmlinuz")
	initrd = filepath.Join(Dir(), "initrd.img")
	for _, f := range []string{kernel, initrd} {
		_, err := os.Stat(f)
		systest.Need(t, err == nil, "needs "+f+": run scripts/images.sh "+Dir())
	}
	return kernel, initrd
}

// Foreign returns the test kernel and initramfs scripts/images.sh builds
// for a Debian architecture other than the host's (arm64), with the same
// /init as Images', and checks that qemu for it (qemuArch: aarch64) is
// installed.
func Foreign(t testing.TB, debArch, qemuArch string) (kernel, initrd string) {
	t.Helper()
	systest.Command(t, "qemu-system-"+qemuArch)
	dir := filepath.Join(Dir(), debArch)
	kernel, initrd = filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	for _, f := range []string{kernel, initrd} {
		_, err := os.Stat(f)
		systest.Need(t, err == nil, "needs "+f+": run scripts/images.sh "+Dir()+" "+debArch)
	}
	return kernel, initrd
}

// Have reports whether qemu and the images are here; with
// FOLDUP_REQUIRE_SYSTEM=1 it is always true, so that a test using it
// fails on what is missing rather than skipping.
func Have() bool {
	if systest.Required() {
		return true
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return false
	}
	for _, f := range []string{"vmlinuz", "initrd.img", "initrd-agent.img"} {
		if _, err := os.Stat(filepath.Join(Dir(), f)); err != nil {
			return false
		}
	}
	return true
}

// Debian returns the cloud-init test VM scripts/cloudimage.sh builds: a
// Debian 12 root filesystem image with cloud-init, and its kernel and
// initramfs.
func Debian(t testing.TB) (disk, kernel, initrd string) {
	t.Helper()
	systest.Command(t, "qemu-system-x86_64")
	systest.Command(t, "qemu-img")
	dir := filepath.Join(Dir(), "debian")
	disk, kernel, initrd = filepath.Join(dir, "disk.qcow2"), filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	for _, f := range []string{disk, kernel, initrd} {
		_, err := os.Stat(f)
		systest.Need(t, err == nil, "needs "+f+": run scripts/cloudimage.sh "+Dir())
	}
	return disk, kernel, initrd
}

// Example returns the directory that holds the images of
// examples/webapp-with-db, as scripts/example-images.sh builds them: the
// web VM's kernel and initramfs under web/ and the database's root
// filesystem, postgres.tar.
func Example(t testing.TB) string {
	t.Helper()
	systest.Command(t, "qemu-system-x86_64")
	dir := filepath.Join(Dir(), "example")
	for _, f := range []string{"web/vmlinuz", "web/initrd.img", "postgres.tar"} {
		_, err := os.Stat(filepath.Join(dir, f))
		systest.Need(t, err == nil, "needs "+filepath.Join(dir, f)+": run scripts/example-images.sh "+dir)
	}
	return dir
}

// MultibootEcho returns a tiny unikernel: a multiboot (version 1) image,
// the format most unikernels ship in, laid out with the a.out kludge (a
// flat binary whose header says where it loads). Entered in 32-bit
// protected mode with EBX pointing to the multiboot information, its code
// writes the command line to COM1, then a newline, and halts for good.
func MultibootEcho() []byte {
	const (
		magic = 0x1badb002
		flags = 1 << 16 // the address fields below are valid
		load  = 0x100000
		hdr   = 32 // header's size; the code follows it
	)
	code := []byte{
		0x8b, 0x73, 0x10, // mov esi, [ebx+16]: the command line
		0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8: COM1
		0xac,       // next: lodsb
		0x84, 0xc0, // test al, al
		0x74, 0x03, // jz done
		0xee,       // out dx, al
		0xeb, 0xf8, // jmp next
		0xb0, 0x0a, // done: mov al, '\n'
		0xee,       // out dx, al
		0xfa, 0xf4, // halt: cli; hlt
		0xeb, 0xfc, // jmp halt
	}
	b := make([]byte, hdr, hdr+len(code))
	for i, v := range []uint32{
		magic, flags, -(magic + flags) & 0xffffffff,
		load,       // header_addr: the header is the image's first bytes
		load,       // load_addr
		0,          // load_end_addr: the whole file
		0,          // bss_end_addr: none
		load + hdr, // entry_addr
	} {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return append(b, code...)
}
