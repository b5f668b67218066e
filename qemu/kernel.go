package qemu

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/foldup/foldup/internal/atomicfile"
)

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

// BootKernel returns the kernel qemu should boot for path: path itself,
// or, when path is a compressed kernel (a bzImage with an XZ payload)
// whose vmlinux has a PVH entry note, that raw vmlinux, extracted once
// into cacheDir and named by the compressed kernel's SHA-256. Under TCG
// this skips seconds of in-guest decompression. Anything else (a raw
// vmlinux, a unikernel, another compression, no PVH note) is booted as it
// is.
//
// Hashing a kernel takes tens of milliseconds, on the path of every VM's
// start; so, as git's index does, the cache also remembers which name a
// file had by its identity (device, inode, size, mtime, ctime) and skips
// the hash while that identity holds. Any write to the file changes its
// ctime, which no one can set back.
func BootKernel(path, cacheDir string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return "", err
	}
	id, hasID := identify(st)
	entry := filepath.Join(cacheDir, fmt.Sprintf("stat-%d-%d", id.dev, id.ino)) // used only when hasID
	if hasID {
		if name, ok := id.lookup(entry); ok {
			if boot, ok := cached(path, filepath.Join(cacheDir, name)); ok {
				return boot, nil
			}
		}
	}

	data, err := io.ReadAll(fh)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	name := "vmlinux-" + hex.EncodeToString(sum[:16])
	boot, ok := cached(path, filepath.Join(cacheDir, name))
	if !ok {
		if boot, err = extract(path, data, filepath.Join(cacheDir, name)); err != nil {
			return "", err
		}
	}
	if boot == path {
		name += ".none"
	}
	// An identity is recorded only once the file has been still for a
	// while: a write landing within the same clock tick as the one hashed
	// could leave mtime and ctime as they were.
	if hasID && time.Since(id.ctime) > racyWindow {
		id.record(entry, name) // a cache: failing to write it costs a hash next time
	}
	return boot, nil
}

// racyWindow is how long a file must have been unchanged for its identity
// to be trusted in place of its content.
var racyWindow = 2 * time.Second

// cached reports what a previous BootKernel of path made at file (the
// extracted vmlinux, or file+".none" when there was nothing to extract):
// the kernel to boot, and whether there was anything.
func cached(path, file string) (string, bool) {
	file = strings.TrimSuffix(file, ".none")
	if _, err := os.Stat(file); err == nil {
		return file, true
	}
	if _, err := os.Stat(file + ".none"); err == nil {
		return path, true
	}
	return "", false
}

// extract makes file, the PVH vmlinux of the compressed kernel data read
// from path, or file+".none" when there is none, and returns the kernel
// to boot.
func extract(path string, data []byte, file string) (string, error) {
	vmlinux, ok := extractPVH(data)
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return "", err
	}
	if !ok {
		os.WriteFile(file+".none", nil, 0o644)
		return path, nil
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, vmlinux, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, file); err != nil {
		return "", err
	}
	return file, nil
}

// identity is what the kernel says of a file that changes whenever its
// content does.
type identity struct {
	dev, ino     uint64
	size         int64
	mtime, ctime time.Time
}

// prefix is what an entry for a file of this identity starts with; the
// cache name follows, then a newline.
func (id identity) prefix() string {
	return fmt.Sprintf("%d %d %d ", id.size, id.mtime.UnixNano(), id.ctime.UnixNano())
}

// lookup returns the cache name recorded at entry for a file of this
// identity.
func (id identity) lookup(entry string) (string, bool) {
	b, err := os.ReadFile(entry)
	if err != nil {
		return "", false
	}
	rest, ok := strings.CutPrefix(string(b), id.prefix())
	name, nl := strings.CutSuffix(rest, "\n")
	if !ok || !nl || !strings.HasPrefix(name, "vmlinux-") || strings.ContainsAny(name, "/ \n") {
		return "", false
	}
	return name, true
}

// record writes entry, one per file (device and inode), replaced when
// the file changes.
func (id identity) record(entry, name string) error {
	return atomicfile.WriteFile(entry, []byte(id.prefix()+name+"\n"), 0o644)
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
