//go:build foldup_crashhooks

// Package crashhook holds the crash tests' kill points. The crash tests
// build foldup with -tags foldup_crashhooks and make it kill itself with
// SIGKILL, as kill -9 would, at a point an environment variable names:
//
//   - FOLDUP_TEST_KILL_AT=N: right after writing the Nth journal entry,
//     before what it names is made;
//   - FOLDUP_TEST_KILL_AFTER=N: once what the Nth entry names is made,
//     before the next entry is written (or before up returns, if it was
//     the last);
//   - FOLDUP_TEST_KILL_SUPERVISOR=dns|ready: the supervisor, once its
//     DNS/DHCP server serves, or once it also answers on its socket.
//
// A foldup built without the tag has none of this (off.go): it reads no
// FOLDUP_TEST_* variable.
package crashhook

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

var (
	killAt, _        = strconv.Atoi(os.Getenv("FOLDUP_TEST_KILL_AT"))
	killAfter, _     = strconv.Atoi(os.Getenv("FOLDUP_TEST_KILL_AFTER"))
	killSupervisorAt = os.Getenv("FOLDUP_TEST_KILL_SUPERVISOR")
)

// At is FOLDUP_TEST_KILL_AT's point: the written-th entry is written.
func At(written int) {
	if killAt > 0 && written == killAt {
		unix.Kill(os.Getpid(), unix.SIGKILL)
	}
}

// After is FOLDUP_TEST_KILL_AFTER's point: written entries are written
// and what they name is made.
func After(written int) {
	if killAfter > 0 && written == killAfter {
		unix.Kill(os.Getpid(), unix.SIGKILL)
	}
}

// Supervisor is FOLDUP_TEST_KILL_SUPERVISOR's point.
func Supervisor(at string) {
	if killSupervisorAt == at {
		unix.Kill(os.Getpid(), unix.SIGKILL)
	}
}
