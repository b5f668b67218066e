package qemu

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/foldup/foldup/internal/systest"
)

func TestVersionAtLeast(t *testing.T) {
	for _, c := range []struct {
		out  string
		want bool
	}{
		{"QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)", false},
		{"QEMU emulator version 8.1.5", false},
		{"QEMU emulator version 8.2.0", true},
		{"QEMU emulator version 10.0.3", true},
		{"no version here", false},
	} {
		if got := versionAtLeast(c.out, 8, 2); got != c.want {
			t.Errorf("%q: %v, want %v", c.out, got, c.want)
		}
	}
}

// TestDeviceGroup: qemu's user gets the device's group only when that
// group may read and write it and nothing else already lets the user in.
func TestDeviceGroup(t *testing.T) {
	dir := t.TempDir()
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	for _, c := range []struct {
		mode      os.FileMode
		uid, gid  int
		wantGroup int
		wantWhy   bool
	}{
		{0o660, 0, 36, 36, false},    // an ordinary host: root:kvm 0660
		{0o600, 0, 0, -1, true},      // root only
		{0o666, 0, 36, -1, false},    // open to all
		{0o640, 0, 36, -1, true},     // the group may only read
		{0o600, 65534, 0, -1, false}, // qemu's user owns it
		{0o060, 65534, 36, -1, true}, // the owner's bits rule the owner
		{0o660, 0, 65534, -1, false}, // qemu's own group
	} {
		f := filepath.Join(dir, "kvm")
		os.WriteFile(f, nil, c.mode)
		os.Chmod(f, c.mode)
		os.Chown(f, c.uid, c.gid)
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		g, why := deviceGroup(st, nobody)
		if g != c.wantGroup || (why != "") != c.wantWhy {
			t.Errorf("%v %d:%d: group %d, why %q; want group %d, a reason %v", c.mode, c.uid, c.gid, g, why, c.wantGroup, c.wantWhy)
		}
		os.Remove(f)
	}
}

// TestKVMCheckCache: a verdict is kept and read back (Cached), and Fresh
// probes again.
func TestKVMCheckCache(t *testing.T) {
	systest.Root(t)
	systest.Command(t, "qemu-system-x86_64")
	if _, err := os.Stat(KVMDevice); err != nil {
		t.Skip("no /dev/kvm here: nothing is cached on a host without KVM")
	}
	c := KVMCheck{CacheDir: t.TempDir()}
	first := c.Check(t.Context())
	if first.Absent {
		t.Skip("KVM has no driver here")
	}
	if first.Cached {
		t.Fatal("the first verdict came from an empty cache")
	}
	second := c.Check(t.Context())
	if !second.Cached || second.Usable != first.Usable || second.Reason != first.Reason {
		t.Errorf("second verdict %+v, want the first %+v, cached", second, first)
	}
	c.Fresh = true
	if third := c.Check(t.Context()); third.Cached {
		t.Errorf("Fresh gave a cached verdict")
	}
	files, _ := filepath.Glob(filepath.Join(c.CacheDir, "kvm-*.json"))
	if len(files) != 1 {
		t.Errorf("cache files %v, want one", files)
	}
}

// BenchmarkKVMCheck is the accelerator decision's cost to up: the first
// after a boot probes (starts qemu and the probe guest under KVM), later
// ones read the cached verdict. As root with qemu as root, so the probe
// runs whatever the device's mode.
func BenchmarkKVMCheck(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		b.Skip("needs qemu-system-x86_64")
	}
	b.Run("probe", func(b *testing.B) {
		var v KVMVerdict
		for b.Loop() {
			v = KVMCheck{CacheDir: b.TempDir()}.Check(b.Context())
		}
		b.Logf("usable=%v absent=%v reason=%q", v.Usable, v.Absent, firstLine(v.Reason))
	})
	b.Run("cached", func(b *testing.B) {
		c := KVMCheck{CacheDir: b.TempDir()}
		c.Check(b.Context())
		for b.Loop() {
			if v := c.Check(b.Context()); !v.Cached && !v.Absent {
				b.Fatal("not cached")
			}
		}
	})
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
