// Package atomicfile writes files so that a reader, or the next run after
// a crash or a power cut, finds either the old content or the new, never
// a part: a temporary file in the same directory, synced, renamed over the
// target, and the directory synced so that the rename itself lasts.
package atomicfile

import (
	"os"
	"path/filepath"
)

// WriteFile writes data to path with mode perm (the temporary file has it
// from the start, so the content is never readable by more than perm
// allows).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, there is nothing there
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
