package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/vmtest"
)

// TestBootKernelIdentity: a second BootKernel of an unchanged file trusts
// the identity recorded by the first, without reading the file; any write
// to the file makes it hash again.
func TestBootKernelIdentity(t *testing.T) {
	defer func(w time.Duration) { racyWindow = w }(racyWindow)
	racyWindow = -time.Hour // the file was written just now
	dir, cache := t.TempDir(), t.TempDir()
	k := filepath.Join(dir, "kernel")
	if err := os.WriteFile(k, []byte("not a bzImage"), 0o644); err != nil {
		t.Fatal(err)
	}
	boot, err := BootKernel(k, cache)
	if err != nil || boot != k {
		t.Fatalf("BootKernel(not a kernel) = %q, %v; want the file itself", boot, err)
	}
	entries, _ := filepath.Glob(filepath.Join(cache, "stat-*"))
	if len(entries) != 1 {
		t.Fatalf("stat entries %v, want one", entries)
	}
	b, err := os.ReadFile(entries[0])
	if err != nil || !strings.HasSuffix(string(b), ".none\n") {
		t.Fatalf("stat entry %q, %v: want it to name the .none marker", b, err)
	}

	// Point the entry at a made-up extracted kernel: BootKernel returning
	// it shows it believed the entry instead of hashing the file.
	fake := filepath.Join(cache, "vmlinux-00000000000000000000000000000000")
	if err := os.WriteFile(fake, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b)) // size, mtime, ctime, name
	line := strings.Join(append(fields[:3], filepath.Base(fake)), " ") + "\n"
	if err := os.WriteFile(entries[0], []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	if boot, err := BootKernel(k, cache); err != nil || boot != fake {
		t.Fatalf("BootKernel of an unchanged file = %q, %v; want %s from its stat entry", boot, err, fake)
	}

	// A write, even of the same size, changes the identity.
	if err := os.WriteFile(k, []byte("not a bzImagE"), 0o644); err != nil {
		t.Fatal(err)
	}
	if boot, err := BootKernel(k, cache); err != nil || boot != k {
		t.Fatalf("BootKernel after a write = %q, %v; want the file itself, hashed again", boot, err)
	}
	if b2, _ := os.ReadFile(entries[0]); string(b2) == line {
		t.Errorf("stat entry not replaced after the file changed: %q", b2)
	}

	// A damaged entry is ignored.
	if err := os.WriteFile(entries[0], []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if boot, err := BootKernel(k, cache); err != nil || boot != k {
		t.Fatalf("BootKernel with a damaged entry = %q, %v", boot, err)
	}
}

// TestBootKernelRacy: a file changed within racyWindow gets no entry,
// since a second write in the same clock tick could keep its times.
func TestBootKernelRacy(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	k := filepath.Join(dir, "kernel")
	if err := os.WriteFile(k, []byte("not a bzImage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if boot, err := BootKernel(k, cache); err != nil || boot != k {
		t.Fatalf("BootKernel = %q, %v", boot, err)
	}
	if entries, _ := filepath.Glob(filepath.Join(cache, "stat-*")); len(entries) != 0 {
		t.Errorf("a file written just now got stat entries %v", entries)
	}
}

// BenchmarkBootKernel is BootKernel on the test images' Debian kernel
// (8 MB), already extracted: "hash" as it is when the file changed since
// its identity was recorded (read and hash it all), "identity" as it is
// on every later start.
func BenchmarkBootKernel(b *testing.B) {
	kernel, _ := vmtest.Images(b)
	cache := b.TempDir()
	if _, err := BootKernel(kernel, cache); err != nil { // extract once
		b.Fatal(err)
	}
	b.Run("hash", func(b *testing.B) {
		for b.Loop() {
			entries, _ := filepath.Glob(filepath.Join(cache, "stat-*"))
			for _, e := range entries {
				os.Remove(e)
			}
			if _, err := BootKernel(kernel, cache); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("identity", func(b *testing.B) {
		BootKernel(kernel, cache) // records the identity, the kernel being old
		for b.Loop() {
			if _, err := BootKernel(kernel, cache); err != nil {
				b.Fatal(err)
			}
		}
	})
}
