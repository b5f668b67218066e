// Package systest decides what a test that needs the real system does when
// a part is missing: skip with a one-line reason, or fail when
// FOLDUP_REQUIRE_SYSTEM=1 (CI sets it, so a missing install step turns the
// run red instead of quietly skipping).
package systest

import (
	"os"
	"os/exec"
	"testing"
)

// Required reports whether missing system parts must fail tests.
func Required() bool { return os.Getenv("FOLDUP_REQUIRE_SYSTEM") == "1" }

// Need skips t (or fails it, when Required) unless ok, saying why.
func Need(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if Required() {
		t.Fatalf("FOLDUP_REQUIRE_SYSTEM=1 and %s", why)
	}
	t.Skip(why)
}

// Root needs uid 0.
func Root(t testing.TB) {
	t.Helper()
	Need(t, os.Geteuid() == 0, "needs root")
}

// Command needs name on PATH.
func Command(t testing.TB, name string) {
	t.Helper()
	_, err := exec.LookPath(name)
	Need(t, err == nil, "needs "+name+" on PATH")
}
