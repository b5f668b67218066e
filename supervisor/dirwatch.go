//go:build linux

package supervisor

import (
	"bytes"
	"context"
	"os"
	"slices"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dirWatch tells a follower of a VM's files when one of them changes,
// instead of its polling them: Linux's inotify on the directory, so that
// a file made later (qemu's console log), or replaced by a rename (the
// VM's record, written atomically), is seen too.
type dirWatch struct {
	f *os.File // the inotify descriptor, in Go's poller
}

// watchDir watches dir for files written, made, moved in or deleted.
func watchDir(dir string) (*dirWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MODIFY|unix.IN_CLOSE_WRITE|unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_DELETE); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &dirWatch{f: os.NewFile(uintptr(fd), "inotify:"+dir)}, nil
}

// next waits for changes and returns the names of the files changed (nil
// for "any": the kernel's queue overflowed), or false once ctx ends or
// the watch is gone.
func (w *dirWatch) next(ctx context.Context) ([]string, bool) {
	stop := context.AfterFunc(ctx, func() { w.f.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 4096)
	n, err := w.f.Read(buf)
	if err != nil || ctx.Err() != nil {
		return nil, false
	}
	var names []string
	for b := buf[:n]; len(b) >= unix.SizeofInotifyEvent; {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			break
		}
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
			return nil, true
		}
		if ev.Mask&unix.IN_IGNORED != 0 {
			return nil, false // the directory is gone
		}
		names = append(names, string(bytes.TrimRight(b[unix.SizeofInotifyEvent:end], "\x00")))
		b = b[end:]
	}
	return names, true
}

func (w *dirWatch) close() { w.f.Close() }

// fileSignals fans changes out by name: each subscriber's channel gets a
// value (at most one waits) when what it named changes. run feeds it a
// directory's files, so that one inotify watch serves all of a VM's
// followers; until the directory exists (a VM's is made by up after the
// supervisor started), or if it cannot be watched, every subscriber is
// signalled every poll. The supervisor signals its plan reloads by hand.
type fileSignals struct {
	mu   sync.Mutex
	subs map[string][]chan struct{}
}

func newFileSignals() *fileSignals { return &fileSignals{subs: map[string][]chan struct{}{}} }

// subscribe returns a channel that is signalled when name changes.
func (s *fileSignals) subscribe(name string) <-chan struct{} {
	c := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs[name] = append(s.subs[name], c)
	s.mu.Unlock()
	return c
}

func (s *fileSignals) signal(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, cs := range s.subs {
		if len(names) > 0 && !slices.Contains(names, name) {
			continue
		}
		for _, c := range cs {
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}
}

// run watches dir until ctx ends.
func (s *fileSignals) run(ctx context.Context, dir string, poll time.Duration) {
	var w *dirWatch
	for w == nil {
		var err error
		if w, err = watchDir(dir); err != nil {
			s.signal()
			if !sleepCtx(ctx, poll) {
				return
			}
		}
	}
	defer w.close()
	s.signal() // what changed before the watch began
	for {
		names, ok := w.next(ctx)
		if !ok {
			return
		}
		s.signal(names...)
	}
}

// waitSignal waits for c, for d (if > 0), or for ctx to end, and
// reports whether ctx is still alive.
func waitSignal(ctx context.Context, c <-chan struct{}, d time.Duration) bool {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-c:
	case <-timer:
	}
	return true
}
