//go:build linux

package executor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	dnetwork "github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/foldup/foldup/containers"
	"github.com/foldup/foldup/internal/dockertest"
	"github.com/foldup/foldup/internal/foldtest"
	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/vm"
)

const podmanProject = `
name: pm
services:
  db:
    image: foldup-test/busybox:1
    command: ["sleep", "3600"]
    ulimits: ` + dockertest.PodmanUlimits + `
    volumes: [data:/data]
  web:
    image: foldup-test/busybox:1
    command: ["sleep", "3600"]
    ulimits: ` + dockertest.PodmanUlimits + `
    depends_on: [db]
    networks:
      default:
      back: {ipv4_address: 10.98.0.40}
networks:
  back:
    ipam: {config: [{subnet: 10.98.0.0/24}]}
volumes:
  data:
dns:
  - {name: motd, txt: ["hello"]}
`

// TestPodman runs a project on Podman's Docker-compatible API, as the
// issue asks of --docker-host: containers on foldup's bridges with the
// plan's addresses (a static one too), resolving each other and a dns:
// record through foldup's server, a named volume; a second up changes
// nothing; down removes it all, and down -v the volume.
func TestPodman(t *testing.T) {
	e := newTestEnvOn(t, dockertest.StartPodman)
	p := e.load(t, "pm", podmanProject)
	file := filepath.Join(e.dir, "pm", "foldup.yaml")
	e.downAtEnd(t, p.Name)
	run := func(args ...string) string {
		t.Helper()
		out, err := e.cli(t, t.Context(), file, nil, append(args, "--progress", "plain")...).CombinedOutput()
		if err != nil {
			t.Fatalf("foldup %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("up", "-d")
	plan, err := state.LoadPlan(e.o.withDefaults().dirs(p.Name).PlanFile())
	if err != nil || plan == nil {
		t.Fatalf("plan: %v", err)
	}
	addr := func(member, network string) string {
		for _, m := range plan.Members {
			for _, nic := range m.NICs {
				if m.Service == member && nic.Network == network {
					return nic.IPv4.String()
				}
			}
		}
		t.Fatalf("no member %s on %s in the plan", member, network)
		return ""
	}
	// Each container has the plan's addresses, on foldup's bridges.
	for _, c := range []struct{ container, member, network string }{
		{"pm-db-1", "db", "default"}, {"pm-web-1", "web", "default"}, {"pm-web-1", "web", "back"},
	} {
		out, _ := e.exec(t, c.container, "ip", "-4", "-o", "addr")
		if want := addr(c.member, c.network); !strings.Contains(out, " "+want+"/") {
			t.Errorf("%s has no %s (its address on %s):\n%s", c.container, want, c.network, out)
		}
	}
	if got := addr("web", "back"); got != "10.98.0.40" {
		t.Errorf("web's static address on back = %s", got)
	}
	// By name, through foldup's server.
	out, code := e.exec(t, "pm-web-1", "nslookup", "db."+plan.Domain)
	if code != 0 || !strings.Contains(out, addr("db", "default")) {
		t.Errorf("web resolving db (exit %d):\n%s", code, out)
	}
	out, code = e.exec(t, "pm-web-1", "nslookup", "-type=TXT", "motd."+plan.Domain)
	if code != 0 || !strings.Contains(out, "hello") {
		t.Errorf("web resolving the TXT record motd (exit %d):\n%s", code, out)
	}
	if out, code := e.exec(t, "pm-db-1", "ping", "-c", "1", "-W", "2", addr("web", "default")); code != 0 {
		t.Errorf("db pinging web (exit %d):\n%s", code, out)
	}
	e.exec(t, "pm-db-1", "sh", "-c", "echo kept > /data/f")

	if out := run("up", "-d"); strings.Contains(out, "Recreate") || strings.Contains(out, "Created") || !strings.Contains(out, "Container pm-db-1  Running") {
		t.Errorf("a second up changed something:\n%s", out)
	}
	run("down")
	// Everything but the volume is gone.
	dc := e.eng.Client
	if cs, _ := dc.ContainerList(t.Context(), container.ListOptions{All: true, Filters: containers.ProjectFilter(p.Name)}); len(cs) > 0 {
		t.Errorf("%d containers left after down", len(cs))
	}
	if ns, _ := dc.NetworkList(t.Context(), dnetwork.ListOptions{Filters: containers.ProjectFilter(p.Name)}); len(ns) > 0 {
		t.Errorf("networks left after down: %v", ns[0].Name)
	}
	if out := e.ns.MustRun(t, "ip", "-o", "link", "show", "type", "bridge"); strings.TrimSpace(out) != "" {
		t.Errorf("bridges left after down:\n%s", out)
	}
	if vs, _ := dc.VolumeList(t.Context(), volume.ListOptions{Filters: containers.ProjectFilter(p.Name)}); len(vs.Volumes) != 1 {
		t.Errorf("volumes after down: %d, want the one", len(vs.Volumes))
	}
	run("up", "-d")
	if out, _ := e.exec(t, "pm-db-1", "cat", "/data/f"); strings.TrimSpace(out) != "kept" {
		t.Errorf("the named volume after down and up holds %q", out)
	}
	run("down", "-v")
	e.assertGone(t, p.Name)
}

// TestPodmanVM runs a VM beside a container on Podman's Docker-compatible
// API: the VM gets its lease from foldup's server on the bridge Podman
// shares, finds the container by name and fetches its page; the
// container finds the VM by name; down leaves nothing (downAtEnd checks).
func TestPodmanVM(t *testing.T) {
	e := newTestEnvOn(t, dockertest.StartPodman)
	p := foldtest.NewProject("pv")
	p.AddService("peer", `image: foldup-test/busybox:1
ulimits: `+dockertest.PodmanUlimits+`
command: ["sh", "-c", "mkdir -p /www && echo hello from peer > /www/index.html && exec httpd -f -p 80 -h /www"]`)
	p.AddVM(t, "vm1", foldtest.VM{Cmdline: "foldup.peer=peer"})
	proj, res := e.upInProcess(t, "pv", p.String())
	f := vm.For(e.o.withDefaults().dirs(proj.Name), "vm1")
	console := func() string { b, _ := os.ReadFile(f.ConsoleLog()); return string(b) }
	vm1 := planMember(t, res.Plan, "vm1").NICs[0]
	waitFor(t, 60*time.Second, func() bool { return strings.Contains(console(), "FOLDUP-HTTP peer:") })
	if want := "FOLDUP-LEASE event=bound ip=" + vm1.IPv4.String() + " "; !strings.Contains(console(), want) {
		t.Errorf("the VM's lease is not its planned address (%s):\n%s", want, console())
	}
	if !strings.Contains(console(), "FOLDUP-HTTP peer: hello from peer") {
		t.Errorf("the VM did not fetch peer's page by name:\n%s", console())
	}
	// Podman gives the container a MAC of its own, not the plan's: its
	// port is still held as a member's, to that MAC.
	if sets, _ := e.ns.Run(t, "nft", "list", "set", "bridge", "foldup-pv", "ports"); !strings.Contains(sets, `"veth`) {
		t.Errorf("peer's veth is not a member port:\n%s", sets)
	}
	out, code := e.exec(t, "pv-peer-1", "nslookup", "vm1."+res.Plan.Domain)
	if code != 0 || !strings.Contains(out, vm1.IPv4.String()) {
		t.Errorf("peer resolving vm1 (exit %d):\n%s", code, out)
	}
}
