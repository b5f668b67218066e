//go:build !linux

package vmimage

import (
	"errors"
	"os"
)

// The cache's lock is a Linux flock; foldup runs VMs only on Linux.

var errNoLock = errors.New("vmimage: locking the image cache needs Linux")

func tryLock(*os.File) (bool, error) { return false, errNoLock }

func blockLock(*os.File) error { return errNoLock }
