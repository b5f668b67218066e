package cloudinit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/foldup/foldup/internal/systest"
)

// TestBlkid has util-linux's blkid, which finds cloud-init's seed in a
// guest, probe the image: an iso9660 filesystem labelled cidata. (The
// guest's own kernel mounts it in the VM tests; this machine's kernel has
// no isofs.)
func TestBlkid(t *testing.T) {
	systest.Command(t, "blkid")
	iso := filepath.Join(t.TempDir(), "seed.iso")
	f, err := os.Create(iso)
	if err != nil {
		t.Fatal(err)
	}
	if err := (Config{InstanceID: "i", Hostname: "vm1"}).WriteISO(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("blkid", "-p", "-o", "export", iso).Output()
	if err != nil {
		t.Fatalf("blkid: %v", err)
	}
	if !strings.Contains(string(out), "LABEL=cidata\n") || !strings.Contains(string(out), "TYPE=iso9660\n") {
		t.Errorf("blkid:\n%s", out)
	}
}
