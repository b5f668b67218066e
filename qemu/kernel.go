package qemu

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

// BootKernel returns the kernel qemu should boot for path: path itself,
// or, when path is a compressed kernel (a bzImage with an XZ payload)
// whose vmlinux has a PVH entry note, that raw vmlinux, extracted once
// into cacheDir and named by the compressed kernel's SHA-256. Under TCG
// this skips seconds of in-guest decompression. Anything else (a raw
// vmlinux, a unikernel, another compression, no PVH note) is booted as it
// is.
func BootKernel(path, cacheDir string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	cached := filepath.Join(cacheDir, "vmlinux-"+hex.EncodeToString(sum[:16]))
	if _, err := os.Stat(cached); err == nil {
		return cached, nil
	}
	if _, err := os.Stat(cached + ".none"); err == nil {
		return path, nil // looked before: nothing to extract
	}
	vmlinux, ok := extractPVH(data)
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	if !ok {
		os.WriteFile(cached+".none", nil, 0o644)
		return path, nil
	}
	tmp := cached + ".tmp"
	if err := os.WriteFile(tmp, vmlinux, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, cached); err != nil {
		return "", err
	}
	return cached, nil
}

// extractPVH finds the XZ payload of a bzImage, decompresses it, and
// returns it when it is an ELF kernel with a PVH (Xen PHYS32_ENTRY) note.
func extractPVH(data []byte) ([]byte, bool) {
	if len(data) < 0x202+4 || string(data[0x202:0x206]) != "HdrS" {
		return nil, false // not a bzImage
	}
	off := bytes.Index(data, xzMagic)
	if off < 0 {
		return nil, false
	}
	// The kernel's XZ stream uses the x86 BCJ filter, which Go's XZ
	// readers lack: xz(1) (xz-utils, in every Debian) decodes it.
	cmd := exec.Command("xz", "-dcq", "--single-stream")
	cmd.Stdin = bytes.NewReader(data[off:])
	out, err := cmd.Output()
	if err != nil && len(out) == 0 {
		return nil, false
	}
	if !HasPVH(out) {
		return nil, false
	}
	return out, true
}

// HasPVH reports whether b is an ELF kernel carrying the PVH entry point
// note (name "Xen", type XEN_ELFNOTE_PHYS32_ENTRY = 18), which qemu's
// -kernel boots directly.
func HasPVH(b []byte) bool {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return false
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		notes, err := io.ReadAll(p.Open())
		if err != nil {
			continue
		}
		if hasNote(notes, f.ByteOrder, "Xen", 18) {
			return true
		}
	}
	return false
}

func hasNote(b []byte, bo binary.ByteOrder, name string, typ uint32) bool {
	align := func(n uint32) uint32 { return (n + 3) &^ 3 }
	for len(b) >= 12 {
		nsz, dsz, t := bo.Uint32(b), bo.Uint32(b[4:]), bo.Uint32(b[8:])
		b = b[12:]
		if uint64(align(nsz))+uint64(align(dsz)) > uint64(len(b)) {
			return false
		}
		n := string(bytes.TrimRight(b[:nsz], "\x00"))
		if n == name && t == typ {
			return true
		}
		b = b[align(nsz)+align(dsz):]
	}
	return false
}
