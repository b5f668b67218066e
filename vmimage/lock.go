package vmimage

import (
	"context"
	"fmt"
	"os"
)

// lock takes the exclusive lock on path (creating the file), first
// waiting, unless ctx ends, for the Fetch that holds it, in this process
// or another. The kernel drops the lock if its holder dies. The lock file
// stays in the cache, as the Go module cache keeps its own: removing it
// on unlock would race with a Fetch that has just opened it.
func (f *fetcher) lock(ctx context.Context, path string) (unlock func(), err error) {
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	busy, err := tryLock(file)
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if busy {
		if f.lockWait != nil {
			f.lockWait()
		}
		if err := waitLock(ctx, file); err != nil {
			return nil, fmt.Errorf("waiting for the lock on %s: %w", path, err)
		}
	}
	return func() { file.Close() }, nil
}

// waitLock waits for the lock on file unless ctx ends first. It closes
// file when it fails.
func waitLock(ctx context.Context, file *os.File) error {
	done := make(chan error, 1)
	go func() { done <- blockLock(file) }()
	select {
	case err := <-done:
		if err != nil {
			file.Close()
		}
		return err
	case <-ctx.Done():
		// flock(2) cannot be interrupted: let the goroutine let go of
		// the lock as soon as it has it.
		go func() {
			<-done
			file.Close()
		}()
		return ctx.Err()
	}
}
