//go:build linux

package executor

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// readInput: the guest agent's input is read whole, but an input that
// never closes ends with the context, and one over the limit is refused.
func TestReadInput(t *testing.T) {
	b, err := readInput(t.Context(), strings.NewReader("hello"), 10)
	if err != nil || string(b) != "hello" {
		t.Errorf("readInput = %q, %v", b, err)
	}
	if _, err := readInput(t.Context(), strings.NewReader(strings.Repeat("x", 11)), 10); err == nil || !strings.Contains(err.Error(), "MiB the guest agent takes") {
		t.Errorf("11 bytes over a limit of 10: %v", err)
	}
	r, w := io.Pipe() // a writer that never closes
	defer w.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := readInput(ctx, r, 10); err != context.DeadlineExceeded {
		t.Errorf("an input that never closes: %v, want the context's end", err)
	}
}
