package vmimage

import (
	"os"
	"testing"
)

// TestIsTerminal tells a pseudo-terminal from a file.
func TestIsTerminal(t *testing.T) {
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { pty.Close() })
	if !isTerminal(pty) {
		t.Error("isTerminal(/dev/ptmx) = false")
	}
	f, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if isTerminal(f) {
		t.Error("isTerminal(file) = true")
	}
}
