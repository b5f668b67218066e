package network

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/nstest"
	"github.com/foldup/foldup/internal/systest"
	"github.com/foldup/foldup/internal/vmtest"
)

// TestNetemInVM runs TestNetemKernel in a VM whose kernel has netem: this
// project's machines do not build sch_netem, and a user's Debian kernel
// has it as a module. The test binary is this package's, built static,
// appended to the netem guest's initramfs (scripts/images.sh), which
// loads the modules, runs it and powers off; its output is the console.
func TestNetemInVM(t *testing.T) {
	kernel, _ := vmtest.Images(t)
	initrd := filepath.Join(vmtest.Dir(), "initrd-netem.img")
	_, err := os.Stat(initrd)
	systest.Need(t, err == nil, "needs "+initrd+": run scripts/images.sh "+vmtest.Dir())
	systest.Command(t, "cpio")
	dir := t.TempDir()
	bin := filepath.Join(dir, "nettest")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "test", "-c", "-tags", "foldup_netemguest", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test binary: %v\n%s", err, out)
	}
	// The binary as a third archive after the guest's two.
	var archive bytes.Buffer
	c := exec.Command("cpio", "-o", "-H", "newc", "--quiet")
	c.Dir, c.Stdin, c.Stdout = dir, strings.NewReader("nettest\n"), &archive
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(initrd)
	if err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(dir, "initrd")
	// Compressed, as the others are: an uncompressed archive would have
	// to start at a multiple of 4 bytes.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(archive.Bytes())
	zw.Close()
	if err := os.WriteFile(full, append(base, gz.Bytes()...), 0o644); err != nil {
		t.Fatal(err)
	}
	console := filepath.Join(dir, "console.log")
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	q := exec.CommandContext(ctx, "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "2",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", kernel, "-initrd", full, "-append", "console=ttyS0 quiet panic=-1 rdinit=/netem-init foldup.run=^TestNetemKernel$",
		"-serial", "file:"+console)
	out, err := q.CombinedOutput()
	log, _ := os.ReadFile(console)
	t.Logf("the guest's console:\n%s", log)
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, out)
	}
	if !bytes.Contains(log, []byte("FOLDUP-NETTEST-EXIT 0")) || !bytes.Contains(log, []byte("--- PASS: TestNetemKernel")) {
		t.Errorf("TestNetemKernel did not pass in the guest")
	}
}

// TestNetemUnsupported: on a kernel without netem (this project's
// machines), SetNetem says so in words, and leaves no ifb behind.
func TestNetemUnsupported(t *testing.T) {
	systest.Root(t)
	ns := nstest.New(t)
	host, err := Open(ns.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	ns.MustRun(t, "ip", "link", "add", "port0", "type", "veth", "peer", "name", "peer0")
	err = host.SetNetem("port0", &Netem{Delay: time.Millisecond}, nil, "")
	if err == nil {
		t.Skip("this kernel has netem: TestNetemInVM's measurements apply here as well")
	}
	if !errors.Is(err, ErrNoNetem) {
		t.Fatalf("SetNetem = %v, want ErrNoNetem", err)
	}
	if !strings.Contains(err.Error(), "sch_netem") {
		t.Errorf("the error does not say what the kernel needs: %v", err)
	}
	err = host.SetNetem("port0", nil, &Netem{Delay: time.Millisecond}, "fuitest0")
	if !errors.Is(err, ErrNoNetem) {
		t.Errorf("SetNetem from = %v, want ErrNoNetem", err)
	}
	// The ifb made before the kernel refused goes with clearing.
	if err := host.SetNetem("port0", nil, nil, "fuitest0"); err != nil {
		t.Fatal(err)
	}
	if host.HasLink("fuitest0") {
		t.Errorf("ifb fuitest0 left after clearing")
	}
}
