//go:build linux && !foldup_crashhooks

package runtime

// The crash tests' kill points (crashhooks_on.go), left out of the
// foldup people run: it reads no FOLDUP_TEST_* variable.

func crashAt(int)            {}
func (*journal) crashAfter() {}
func crashSupervisor(string) {}
