// Package vmtest finds the guests the VM tests boot: the kernel and
// initramfs scripts/images.sh builds, and the Debian cloud-init VM of
// scripts/cloudimage.sh, both offline from Debian packages. Tests skip
// without them, or fail with FOLDUP_REQUIRE_SYSTEM=1.
package vmtest

import (
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
	for _, f := range []string{"vmlinuz", "initrd.img"} {
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
