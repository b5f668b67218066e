//go:build linux

package executor

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTarRoundTrip: a directory tree through tarTree and untar comes back
// as it was, under its base name.
func TestTarRoundTrip(t *testing.T) {
	src := filepath.Join(t.TempDir(), "tree")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("a"), 0o640)
	os.WriteFile(filepath.Join(src, "sub", "b.txt"), []byte("bb"), 0o600)
	os.Symlink("a.txt", filepath.Join(src, "link"))
	var buf bytes.Buffer
	if err := tarTree(&buf, src); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := untar(&buf, dst); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"tree/a.txt": "a", "tree/sub/b.txt": "bb", "tree/link": "a"} {
		if b, err := os.ReadFile(filepath.Join(dst, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dst, "tree/sub/b.txt")); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("b.txt's mode: %v", fi)
	}
}

// TestUntarHostile: what a hostile guest may send back does not land
// outside the destination: ../ names, absolute names, and a file written
// through a symbolic link the stream made first.
func TestUntarHostile(t *testing.T) {
	outside := t.TempDir()
	for name, entries := range map[string][]tar.Header{
		"dotdot":   {{Name: "../escaped", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}},
		"absolute": {{Name: filepath.Join(outside, "escaped"), Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}},
		"symlink":  {{Name: "l", Typeflag: tar.TypeSymlink, Linkname: outside}, {Name: "l/escaped", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}},
		"replace":  {{Name: "f", Typeflag: tar.TypeSymlink, Linkname: filepath.Join(outside, "escaped")}, {Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, h := range entries {
				tw.WriteHeader(&h)
				if h.Size > 0 {
					tw.Write([]byte("x"))
				}
			}
			tw.Close()
			dst := filepath.Join(t.TempDir(), "d")
			os.Mkdir(dst, 0o755)
			err := untar(&buf, dst)
			if _, serr := os.Stat(filepath.Join(outside, "escaped")); serr == nil {
				os.Remove(filepath.Join(outside, "escaped"))
				t.Fatalf("a file landed outside the destination (untar: %v)", err)
			}
			if name != "replace" && (err == nil || !strings.Contains(err.Error(), "tar entry")) {
				t.Errorf("untar = %v, want it refused", err)
			}
		})
	}
}
