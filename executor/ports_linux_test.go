//go:build linux

package executor

import (
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const restartingProject = `
name: phoenix
services:
  bird:
    image: foldup-test/busybox:1
    restart: always
    command: ["sleep", "3600"]
  other:
    image: foldup-test/busybox:1
    init: true
    command: ["sleep", "3600"]
`

// TestPortsFollowRestarts kills a container's process so that its restart
// policy brings it back with a new veth, and checks that the supervisor
// moves anti-spoofing to the new veth (and drops the old one), and that
// `up` of one service keeps the other's port.
func TestPortsFollowRestarts(t *testing.T) {
	e := newTestEnv(t)
	p, _ := e.upInProcess(t, "phoenix", restartingProject)
	ctx := t.Context()

	veth := func(name string) (string, int) {
		t.Helper()
		c, err := e.eng.Client.ContainerInspect(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if c.State.Pid == 0 {
			return "", 0
		}
		peers, err := e.host.PeerPorts(c.State.Pid)
		if err != nil {
			return "", 0 // exited since the inspect
		}
		for _, v := range peers {
			return v, c.State.Pid
		}
		t.Fatalf("%s has no veth", name)
		return "", 0
	}
	ports := func() []string {
		out := e.ns.MustRun(t, "nft", "list", "set", "bridge", "foldup-phoenix", "ports")
		_, elems, _ := strings.Cut(out, "elements = {")
		elems, _, _ = strings.Cut(elems, "}")
		var names []string
		for _, f := range strings.Split(elems, ",") {
			if f = strings.Trim(strings.TrimSpace(f), `"`); f != "" {
				names = append(names, f)
			}
		}
		slices.Sort(names)
		return names
	}

	old, pid := veth("phoenix-bird-1")
	other, _ := veth("phoenix-other-1")
	if got, want := ports(), sorted(old, other); !slices.Equal(got, want) {
		t.Fatalf("member ports after up = %v, want %v", got, want)
	}

	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var nw string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if v, p := veth("phoenix-bird-1"); p != 0 && p != pid {
			nw = v
			if slices.Equal(ports(), sorted(nw, other)) {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if nw == "" || nw == old {
		t.Fatalf("bird did not come back with a new veth (old %s, new %q)", old, nw)
	}
	if got, want := ports(), sorted(nw, other); !slices.Equal(got, want) {
		t.Fatalf("member ports after the restart = %v, want %v (old veth %s)", got, want, old)
	}

	// up of one service leaves the other's port in the firewall.
	res2, err := New(e.o).Up(ctx, p, UpOptions{InProcess: true, Services: []string{"other"}})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Supervisor != nil {
		res2.Supervisor.Stop()
	}
	if got, want := ports(), sorted(nw, other); !slices.Equal(got, want) {
		t.Errorf("member ports after up other = %v, want %v", got, want)
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}
