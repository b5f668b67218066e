//go:build linux

package executor

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/vmtest"
	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/spec"
)

const netemProject = `
name: nm
networks:
  lan:
    ipam: {config: [{subnet: 10.86.5.0/24}]}
services:
  db:
    image: foldup-test/busybox:1
    init: true
    command: ["sleep", "3600"]
  web:
    image: foldup-test/busybox:1
    init: true
    command: ["sh", "-c", "mkdir -p /www && dd if=/dev/zero of=/www/big bs=1M count=6 2>/dev/null && exec httpd -f -p 80 -h /www"]
  dl:
    image: foldup-test/busybox:1
    init: true
    command: ["sleep", "3600"]
  far:
    image: foldup-test/busybox:1
    init: true
    command: ["sleep", "3600"]
    x-foldup: {netem: {delay: 40ms, direction: both}}
vms:
  box:
    kernel: %s
    initrd: %s
    cmdline: "console=ttyS0 quiet panic=-1"
    memory: 256m
    stop_grace_period: 1s
    healthcheck: {test: [tcp, "80"], interval: 500ms, retries: 120}
`

var rttRe = regexp.MustCompile(`round-trip min/avg/max = [0-9.]+/([0-9.]+)/[0-9.]+ ms`)

// TestNetem measures impairment rather than reading it back: the ping RTT
// from a container to a VM rises by a live --delay (±20 %) and comes back
// with --clear; loss: 100% lets nothing through; a rate caps a download
// to within 10 %; a container's file netem in both directions (through
// an ifb) adds its delay twice to the RTT, and ps says what applies.
// down leaves no ifb (assertGone).
func TestNetem(t *testing.T) {
	kernel, initrd := vmtest.Images(t)
	e := newTestEnv(t)
	if !netemSupported(t, e) {
		testNoNetem(t, e)
		return
	}
	p, _ := e.upInProcess(t, "nm", fmt.Sprintf(netemProject, kernel, initrd))
	x := New(e.o)
	defer x.Close()
	if err := x.WaitReady(t.Context(), p.Name, []string{"box"}); err != nil {
		t.Fatal(err)
	}
	rtt := func(target string) float64 {
		t.Helper()
		out, _ := e.exec(t, "nm-db-1", "ping", "-c", "10", "-i", "0.2", "-W", "2", "-q", target)
		m := rttRe.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("ping %s: %s", target, out)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	base := rtt("box")
	if err := x.Netem(t.Context(), p.Name, "box", "", &spec.Netem{Delay: 100 * time.Millisecond, Direction: spec.NetemTo}); err != nil {
		t.Fatal(err)
	}
	delayed := rtt("box")
	t.Logf("RTT db→box: %.2f ms, with delay 100ms %.2f ms", base, delayed)
	if rise := delayed - base; rise < 80 || rise > 120 {
		t.Errorf("delay 100ms raised the RTT by %.1f ms, want 100 ± 20 %%", rise)
	}
	list, err := x.Ps(t.Context(), p.Name, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		switch s.Member {
		case "box":
			if s.Netem != "lan: delay 100ms" {
				t.Errorf("ps: box's netem %q, want %q", s.Netem, "lan: delay 100ms")
			}
		case "far":
			if s.Netem != "lan: delay 40ms (both)" {
				t.Errorf("ps: far's netem %q, want %q", s.Netem, "lan: delay 40ms (both)")
			}
		case "db":
			if s.Netem != "" {
				t.Errorf("ps: db's netem %q, want none", s.Netem)
			}
		}
	}

	if err := x.Netem(t.Context(), p.Name, "box", "", &spec.Netem{Loss: 100, Direction: spec.NetemTo}); err != nil {
		t.Fatal(err)
	}
	if out, code := e.exec(t, "nm-db-1", "ping", "-c", "5", "-i", "0.2", "-W", "1", "box"); code == 0 || !strings.Contains(out, "100% packet loss") {
		t.Errorf("loss 100%%: ping got through (exit %d):\n%s", code, out)
	}
	if err := x.Netem(t.Context(), p.Name, "box", "", nil); err != nil {
		t.Fatal(err)
	}
	if cleared := rtt("box"); cleared > base+10 {
		t.Errorf("after --clear the RTT is %.2f ms, was %.2f ms", cleared, base)
	}

	// The file's netem on far, both ways: its delay twice.
	if farRTT, dbRTT := rtt("far"), rtt("web"); farRTT-dbRTT < 64 || farRTT-dbRTT > 96 {
		t.Errorf("far (delay 40ms both ways) answers in %.1f ms, web in %.1f ms: want 80 ± 20 %% more", farRTT, dbRTT)
	}

	// rate: 16mbit (2 MB/s) on what dl receives; 6 MB from web's httpd.
	if err := x.Netem(t.Context(), p.Name, "dl", "", &spec.Netem{Rate: 2_000_000, Direction: spec.NetemTo}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if out, code := e.exec(t, "nm-dl-1", "wget", "-q", "-O", "/dev/null", "http://web/big"); code != 0 {
		t.Fatalf("wget: %s", out)
	}
	took := time.Since(start)
	rate := 6 * 1024 * 1024 / took.Seconds()
	t.Logf("6 MiB at rate 16mbit in %v: %.0f bytes/s", took, rate)
	if rate < 0.9*2_000_000 || rate > 1.1*2_000_000 {
		t.Errorf("rate 16mbit: %.0f bytes/s, want 2000000 ± 10 %%", rate)
	}
}

// netemSupported: the kernel of the test's namespace has a netem qdisc.
// Debian's has it (a module); this project's machines do not, and there
// TestNetemInVM measures netem in a guest whose kernel has it.
func netemSupported(t *testing.T, e *testEnv) bool {
	e.ns.MustRun(t, "ip", "link", "add", "fuprobe0", "type", "veth", "peer", "name", "fuprobe1")
	defer e.ns.MustRun(t, "ip", "link", "del", "fuprobe0")
	err := e.host.SetNetem("fuprobe0", &network.Netem{Delay: time.Millisecond}, nil, "")
	if err != nil && !errors.Is(err, network.ErrNoNetem) {
		t.Fatal(err)
	}
	return err == nil
}

// testNoNetem: where the kernel has no netem, up of a project that asks
// for it fails saying what the kernel needs, after making everything
// else; ps still says what the file asks; down leaves nothing, the ifb
// up made for the member's outgoing frames (before the kernel refused
// the qdisc on it) included (assertGone).
func testNoNetem(t *testing.T, e *testEnv) {
	t.Log("this kernel has no netem: up's error and down's cleanup are checked here, the measurements in network's TestNetemInVM")
	p := e.load(t, "nm", `
name: nm
services:
  db:
    image: foldup-test/busybox:1
    init: true
    command: ["sleep", "3600"]
  far:
    image: foldup-test/busybox:1
    init: true
    command: ["sleep", "3600"]
    x-foldup: {netem: {delay: 40ms, direction: from}}
`)
	e.downAtEnd(t, p.Name)
	res, err := New(e.o).Up(t.Context(), p, UpOptions{InProcess: true})
	if res != nil && res.Supervisor != nil {
		t.Cleanup(func() { res.Supervisor.Stop() })
	}
	if !errors.Is(err, network.ErrNoNetem) || !strings.Contains(err.Error(), "netem of far on default") {
		t.Fatalf("up = %v, want far's netem refused for want of the kernel's", err)
	}
	list, err := New(e.o).Ps(t.Context(), p.Name, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.Member == "far" && s.Netem != "default: delay 40ms (from)" {
			t.Errorf("ps: far's netem %q", s.Netem)
		}
	}
	if out := e.ns.MustRun(t, "ip", "-o", "link", "show", "type", "ifb"); !strings.Contains(out, "fui") {
		t.Errorf("no ifb for far's outgoing frames before down: %q", out)
	}
}
