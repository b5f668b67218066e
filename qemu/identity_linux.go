package qemu

import (
	"os"
	"syscall"
	"time"
)

// identify returns st's identity, when the system gives one.
func identify(st os.FileInfo) (identity, bool) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return identity{}, false
	}
	return identity{
		dev: uint64(sys.Dev), ino: uint64(sys.Ino), size: sys.Size,
		mtime: st.ModTime(), ctime: ctime(sys),
	}, true
}

func ctime(sys *syscall.Stat_t) time.Time {
	sec, nsec := sys.Ctim.Unix()
	return time.Unix(sec, nsec)
}
