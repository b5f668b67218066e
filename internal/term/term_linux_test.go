package term

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestGet tells a pseudo-terminal from a file, and reads its size.
func TestGet(t *testing.T) {
	t.Setenv("TERM", "xterm")
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { pty.Close() })
	if err := unix.IoctlSetWinsize(int(pty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: 132, Row: 43}); err != nil {
		t.Fatal(err)
	}
	if s, ok := Get(pty); !ok || s != (Size{132, 43}) {
		t.Errorf("Get(pty) = %v, %v; want {132 43}, true", s, ok)
	}
	// A terminal that reports no size is 80×24.
	if err := unix.IoctlSetWinsize(int(pty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{}); err != nil {
		t.Fatal(err)
	}
	if s, ok := Get(pty); !ok || s != (Size{80, 24}) {
		t.Errorf("Get(pty without a size) = %v, %v; want {80 24}, true", s, ok)
	}
	// A dumb terminal is a terminal, whose cursor does not move.
	t.Setenv("TERM", "dumb")
	if _, ok := Get(pty); ok {
		t.Error("Get(pty) with TERM=dumb = true")
	}
	if !Is(pty) {
		t.Error("Is(pty) with TERM=dumb = false")
	}

	f, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	t.Setenv("TERM", "xterm")
	if Is(f) {
		t.Error("Is(file) = true")
	}
	// A character device that is not a terminal.
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { null.Close() })
	if Is(null) {
		t.Error("Is(/dev/null) = true")
	}
}
