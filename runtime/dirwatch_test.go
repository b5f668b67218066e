//go:build linux

package runtime

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFileSignals: a subscriber is signalled when its file is written or
// replaced by a rename, not for another file's changes, and the watch
// begins once the directory exists (till then every subscriber is
// signalled each poll, so that nothing is missed).
func TestFileSignals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vm")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sig := newFileSignals()
	rec, con := sig.subscribe("vm.json"), sig.subscribe("console.log")
	done := make(chan struct{})
	go func() { defer close(done); sig.run(ctx, dir, 50*time.Millisecond) }()
	defer func() { cancel(); <-done }()

	got := func(c <-chan struct{}, within time.Duration) bool {
		select {
		case <-c:
			return true
		default: // a timer already fired would be chosen as often as c
		}
		select {
		case <-c:
			return true
		case <-time.After(within):
			return false
		}
	}
	drain := func() {
		time.Sleep(100 * time.Millisecond)
		for got(rec, 0) || got(con, 0) {
		}
	}
	if !got(rec, time.Second) {
		t.Fatal("no signal while the directory does not exist (it polls)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the watch begins
	drain()
	if got(rec, 300*time.Millisecond) || got(con, 0) {
		t.Fatal("signalled with nothing changed, once watching")
	}
	if err := writeFileAtomic(filepath.Join(dir, "vm.json"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if !got(rec, time.Second) {
		t.Error("vm.json replaced by a rename: no signal")
	}
	drain()
	if got(con, 0) {
		t.Error("console.log signalled for vm.json's change")
	}
	fh, err := os.OpenFile(filepath.Join(dir, "console.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	drain()
	fh.WriteString("boot\n")
	if !got(con, time.Second) {
		t.Error("console.log appended to: no signal")
	}
}
