package vmimage

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// tryLock takes an exclusive flock on file if no one holds one, and
// reports whether someone does.
//
// Equivalent to: flock --exclusive --nonblock $file
func tryLock(file *os.File) (busy bool, err error) {
	err = unix.Flock(int(file.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}

// blockLock waits for an exclusive flock on file.
//
// Equivalent to: flock --exclusive $file
func blockLock(file *os.File) error {
	for {
		err := unix.Flock(int(file.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
