//go:build linux

package executor

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/foldup/foldup/containers"
	"github.com/foldup/foldup/internal/vmtest"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/state"
)

const manyProject = `
name: p%[1]d
networks:
  net: {enable_ipv6: true}
services:
  web:
    image: foldup-test/busybox:1
    init: true
    command: ["sh", "-c", "mkdir -p /www && echo hello from p%[1]d > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["808%[1]d:80"]
    networks: [net]
  client:
    image: foldup-test/busybox:1
    init: true
    command: ["sleep", "3600"]
    networks: [net]
`

const manyVM = `
vms:
  vm:
    kernel: %s
    initrd: %s
    cmdline: console=ttyS0 quiet panic=-1
    memory: 128m
    stop_grace_period: 0s
    ports: ["909%d:80"]
    networks: [net]
`

// TestFiveProjects brings five projects up at once, each through its own
// `foldup up -d` (two of them with a VM when qemu is here): every one
// comes up, with its own subnets, bridge and MACs, none colliding; each
// one's forwarded host port reaches its own web server; a container of
// one cannot reach another project's members; a sixth project asking for
// a host port one of them forwards is refused, naming the owner. down of
// one removes it and leaves the four others serving.
func TestFiveProjects(t *testing.T) {
	e := newTestEnv(t)
	var kernel, initrd string
	haveVM := vmtest.Have()
	if haveVM {
		kernel, initrd = vmtest.Images(t)
	}
	const n = 5
	files := map[int]string{}
	for i := 1; i <= n; i++ {
		y := fmt.Sprintf(manyProject, i)
		if haveVM && i <= 2 {
			y += fmt.Sprintf(manyVM, kernel, initrd, i)
		}
		e.load(t, fmt.Sprintf("p%d", i), y)
		files[i] = filepath.Join(e.dir, fmt.Sprintf("p%d", i), "foldup.yaml")
	}
	up := map[int]bool{}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for i := range up {
			if err := New(e.o).Down(ctx, fmt.Sprintf("p%d", i), DownOptions{Volumes: true, Force: true}); err != nil {
				t.Errorf("down p%d at the end: %v", i, err)
			}
		}
		for i := 1; i <= n; i++ {
			e.assertGone(t, fmt.Sprintf("p%d", i))
		}
	})
	foldup := func(i int, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := e.cli(t, ctx, files[i], nil, args...).CombinedOutput()
		return string(out), err
	}

	var wg sync.WaitGroup
	outs, errs := make([]string, n+1), make([]error, n+1)
	for i := 1; i <= n; i++ {
		up[i] = true
		wg.Go(func() { outs[i], errs[i] = foldup(i, "up", "-d") })
	}
	wg.Wait()
	for i := 1; i <= n; i++ {
		if errs[i] != nil {
			log, _ := os.ReadFile(e.o.withDefaults().dirs(fmt.Sprintf("p%d", i)).LogFile())
			t.Errorf("up of p%d: %v\n%s\nsupervisor log:\n%s", i, errs[i], outs[i], log)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	plans := map[int]*planner.Plan{}
	for i := 1; i <= n; i++ {
		pl, err := state.LoadPlan(e.o.withDefaults().dirs(fmt.Sprintf("p%d", i)).PlanFile())
		if err != nil || pl == nil {
			t.Fatalf("p%d's plan: %v", i, err)
		}
		plans[i] = pl
	}
	// Nothing is shared between the projects.
	bridges, macs := map[string]int{}, map[string]string{}
	for i, pl := range plans {
		for _, nw := range pl.Networks {
			if j, ok := bridges[nw.Bridge]; ok {
				t.Errorf("p%d and p%d both have bridge %s", i, j, nw.Bridge)
			}
			bridges[nw.Bridge] = i
			for j, other := range plans {
				if j <= i {
					continue
				}
				for _, onw := range other.Networks {
					if nw.Subnet4.Overlaps(onw.Subnet4) || nw.Subnet6.Overlaps(onw.Subnet6) {
						t.Errorf("p%d's %s (%s, %s) and p%d's %s (%s, %s) overlap", i, nw.Name, nw.Subnet4, nw.Subnet6, j, onw.Name, onw.Subnet4, onw.Subnet6)
					}
				}
			}
		}
		for _, m := range pl.Members {
			for _, nic := range m.NICs {
				who := fmt.Sprintf("p%d's %s", i, m.Name)
				if other, ok := macs[nic.MAC]; ok {
					t.Errorf("%s and %s both have MAC %s", who, other, nic.MAC)
				}
				macs[nic.MAC] = who
			}
		}
	}

	// fetch waits up to d for the host's port to answer want.
	fetch := func(t *testing.T, port int, want string, d time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(d); ; time.Sleep(200 * time.Millisecond) {
			out, err := e.ns.Run(t, "timeout", "3", "busybox", "wget", "-q", "-O", "-", fmt.Sprintf("http://127.0.0.1:%d/", port))
			if strings.TrimSpace(out) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("host port %d: %q, %v; want %q", port, out, err, want)
			}
		}
	}
	// serves checks that project i's forwarded ports reach its own web
	// server and VM, through the host's loopback. up -d returns once the
	// web container has started, as Compose's does, not once its httpd
	// listens: the first fetch may come before that.
	serves := func(t *testing.T, i int) {
		t.Helper()
		fetch(t, 8080+i, fmt.Sprintf("hello from p%d", i), 30*time.Second)
		if haveVM && i <= 2 {
			fetch(t, 9090+i, "hello from vm", 90*time.Second) // once it has its lease
		}
	}
	for i := 1; i <= n; i++ {
		serves(t, i)
	}

	// A container of p1 reaches its own web server by name, and no member
	// of p2: the packets do not even arrive.
	if out, code := e.exec(t, "p1-client-1", "wget", "-q", "-O", "-", "http://web/"); code != 0 || strings.TrimSpace(out) != "hello from p1" {
		t.Errorf("p1's client fetching its own web: %q (exit %d)", out, code)
	}
	p2web := planMember(t, plans[2], "web").NICs[0]
	d := e.counted(t, "p2-web-1", func() {
		if out, code := e.exec(t, "p1-client-1", "ping", "-c", "2", "-W", "1", p2web.IPv4.String()); code == 0 {
			t.Errorf("p1's client pinged p2's web at %s:\n%s", p2web.IPv4, out)
		}
		if out, code := e.exec(t, "p1-client-1", "ping6", "-c", "2", "-W", "1", p2web.IPv6.String()); code == 0 {
			t.Errorf("p1's client pinged p2's web at %s:\n%s", p2web.IPv6, out)
		}
	}, "Icmp.InEchos", "Icmp6InEchos")
	if d[0] != 0 || d[1] != 0 {
		t.Errorf("p2's web got %d ICMP and %d ICMPv6 echo requests from p1", d[0], d[1])
	}

	// A sixth project may not take a host port that p3 forwards.
	e.load(t, "p6", strings.ReplaceAll(fmt.Sprintf(manyProject, 6), "8086:80", "8083:80"))
	files[6] = filepath.Join(e.dir, "p6", "foldup.yaml")
	out, err := foldup(6, "up", "-d")
	if err == nil || !strings.Contains(out, "services.web.ports: host port 8083/tcp is already forwarded to web of project p3") {
		t.Errorf("up of a project taking p3's host port: %v\n%s", err, out)
	}
	if _, err := os.Stat(e.o.withDefaults().dirs("p6").State); err == nil {
		t.Errorf("the refused project left its state directory")
	}

	// down of p3 leaves the others as they were.
	if out, err := foldup(3, "down", "-v"); err != nil {
		t.Fatalf("down p3: %v\n%s", err, out)
	}
	delete(up, 3)
	for _, nw := range plans[3].Networks {
		if _, err := e.ns.Run(t, "ip", "link", "show", nw.Bridge); err == nil {
			t.Errorf("p3's bridge %s left after its down", nw.Bridge)
		}
	}
	if out := e.ns.MustRun(t, "nft", "list", "tables"); strings.Contains(out, "foldup-p3") {
		t.Errorf("p3's table left after its down:\n%s", out)
	}
	if cs, _ := e.eng.Client.ContainerList(t.Context(), container.ListOptions{All: true, Filters: containers.ProjectFilter("p3")}); len(cs) > 0 {
		t.Errorf("%d containers of p3 left after its down", len(cs))
	}
	for i := 1; i <= n; i++ {
		if i == 3 {
			continue
		}
		list, err := New(e.o).Ps(t.Context(), fmt.Sprintf("p%d", i), true)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range list {
			if st.State != "running" {
				t.Errorf("after p3's down: p%d's %s is %s", i, st.Member, st.State)
			}
		}
		serves(t, i)
	}
}

// TestOtherProjectsReserve: a project that is up keeps its subnet and
// host ports even where nothing on the host shows them any more (its
// bridge gone with a reboot, say: here only its plan is left). Another
// project whose only address pool is that subnet finds none free, and
// one forwarding the same host port is refused; neither makes anything.
func TestOtherProjectsReserve(t *testing.T) {
	e := newTestEnv(t)
	ghost := &planner.Plan{
		Networks: []*planner.Network{{Name: "default", Bridge: "fubghost0001", Subnet4: netip.MustParsePrefix("10.123.0.0/24")}},
		Members:  []*planner.Member{{Name: "web", Ports: []planner.Port{{HostPort: 8123, Target: 80, Protocol: "tcp"}}}},
	}
	gd := e.o.withDefaults().dirs("ghost")
	if err := gd.Make(); err != nil {
		t.Fatal(err)
	}
	if err := state.SavePlan(gd.PlanFile(), ghost); err != nil {
		t.Fatal(err)
	}
	p := e.load(t, "taker", `
name: taker
services:
  web:
    image: foldup-test/busybox:1
    command: ["sleep", "3600"]
    ports: ["8123:80"]
x-foldup:
  address_pools: [{base: 10.123.0.0/24, size: 24}]
`)
	e.downAtEnd(t, p.Name) // should up wrongly succeed
	_, err := New(e.o).Up(t.Context(), p, UpOptions{InProcess: true})
	for _, want := range []string{
		"networks.default: no free subnet left in the address pools",
		"services.web.ports: host port 8123/tcp is already forwarded to web of project ghost",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("up of a project wanting ghost's subnet and port: %v\nwant %q", err, want)
		}
	}
	if _, err := os.Stat(e.o.withDefaults().dirs("taker").State); err == nil {
		t.Error("the refused project left its state directory")
	}
}
