//go:build linux

package supervisor

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/vm"
)

// TestHealthObserve walks Docker's health rules: failures in the start
// period do not count, `retries` failures in a row make a VM unhealthy,
// and one success makes it healthy again.
func TestHealthObserve(t *testing.T) {
	h := vm.Health{Status: "starting"}
	fail := errors.New("refused")
	for range 5 {
		h.Observe("", fail, true, 2)
	}
	if h.Status != "starting" || h.FailingStreak != 0 {
		t.Errorf("after failures in the start period: %+v", h)
	}
	h.Observe("", fail, false, 2)
	if h.Status != "starting" || h.FailingStreak != 1 {
		t.Errorf("after one counted failure of 2: %+v", h)
	}
	h.Observe("", fail, false, 2)
	if h.Status != "unhealthy" || h.Last != "refused" {
		t.Errorf("after two: %+v", h)
	}
	h.Observe("ok", nil, false, 2)
	if h.Status != "healthy" || h.FailingStreak != 0 || h.Last != "ok" {
		t.Errorf("after a success: %+v", h)
	}
}

// TestProbe runs each kind of health check against loopback: a TCP
// listener, an HTTP server answering 200 on one path and 404 on another,
// and a console log.
func TestProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ok" {
			http.NotFound(w, r)
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	addrs := []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1")} // IPv4 is preferred
	consoleLog := filepath.Join(t.TempDir(), "console.log")
	os.WriteFile(consoleLog, []byte("booting\nFOLDUP-READY\n"), 0o644)

	ctx := t.Context()
	for _, c := range []struct {
		kind, arg, want string // want: a piece of the result, or of the error (after "!")
	}{
		{"tcp", port, "open"},
		{"tcp", "1", "!refused"},
		{"http", port + "/ok", "200 OK"},
		{"http", port + "/missing", "!404"},
		{"serial", "FOLDUP-RE.DY", "console: FOLDUP-READY"},
		{"serial", "FOLDUP-LEASE", "!no match"},
	} {
		got, err := probe(ctx, c.kind, c.arg, addrs, console{path: consoleLog}, 2*time.Second)
		want, wantErr := strings.CutPrefix(c.want, "!")
		if err != nil {
			got = err.Error()
		}
		if (err != nil) != wantErr || !strings.Contains(got, want) {
			t.Errorf("probe %s %s = %q, want %q in it", c.kind, c.arg, got, c.want)
		}
	}
	// A VM started again reads only its own boot's output; a log rotated
	// since (shorter than the offset) is read whole.
	if _, err := probe(ctx, "serial", "FOLDUP-READY", nil, console{consoleLog, int64(len("booting\nFOLDUP-READY\n"))}, time.Second); err == nil {
		t.Error("a serial check matched output from before its VM's boot")
	}
	if _, err := probe(ctx, "serial", "FOLDUP-READY", nil, console{consoleLog, 1 << 20}, time.Second); err != nil {
		t.Errorf("a serial check after rotation: %v", err)
	}
	if _, err := probe(ctx, "tcp", port, nil, console{path: consoleLog}, time.Second); err == nil {
		t.Error("a tcp probe of a VM without addresses succeeded")
	}
}
