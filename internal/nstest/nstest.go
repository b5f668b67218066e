// Package nstest gives a test fresh network namespaces: named, so that
// commands can run inside them with `ip netns exec`, and removed when the
// test ends, even when it fails. Tests using it skip unless root (fail
// with FOLDUP_REQUIRE_SYSTEM=1).
package nstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/systest"
	"github.com/vishvananda/netns"
)

// NS is a network namespace made for one test.
type NS struct {
	Name   string
	Handle netns.NsHandle
}

// New makes a namespace named fu-t-<random>, with lo up, and removes it in
// t.Cleanup.
func New(t testing.TB) *NS {
	t.Helper()
	systest.Root(t)
	systest.Command(t, "ip")
	b := make([]byte, 4)
	rand.Read(b)
	name := "fu-t-" + hex.EncodeToString(b)

	// netns.NewNamed moves the calling thread into the new namespace:
	// do it on a locked thread and come back.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		// This thread is now in the wrong namespace: never reuse it.
		runtime.LockOSThread()
		t.Fatalf("returning to the original netns: %v", serr)
	}
	if err != nil {
		t.Fatalf("creating netns %s: %v", name, err)
	}
	ns := &NS{Name: name, Handle: h}
	t.Cleanup(func() {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("deleting netns %s: %v", name, err)
		}
	})
	ns.MustRun(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Run runs a command inside the namespace and returns its combined output.
func (ns *NS) Run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	// Not t.Context(): cleanups run commands too, after it is cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// MustRun is Run, failing the test on error.
func (ns *NS) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := ns.Run(t, args...)
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", ns.Name, strings.Join(args, " "), err, out)
	}
	return out
}
