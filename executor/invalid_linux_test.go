//go:build linux

package executor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	dnetwork "github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/foldup/foldup/qemu"
	"github.com/foldup/foldup/vm"
)

// TestInvalidUpChangesNothing runs `foldup up -d` on files that are wrong
// in every way the loader, the planner and up's image check catch, and
// checks that each fails with the file, line and column, and that nothing
// changed: the namespace's links, addresses and nftables ruleset, the
// engine's containers, networks and volumes, the state and run roots, and
// the processes (no supervisor, no qemu) are as they were before.
func TestInvalidUpChangesNothing(t *testing.T) {
	e := newTestEnv(t)
	dir := filepath.Join(e.dir, "bad")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, file, want string }{
		{"yaml syntax", "services:\n  a:\n    image: [x\n", `:4:1: did not find expected ',' or ']' \(the flow sequence \[ opened at 3:12 is not closed\)`},
		{"wrong type", "services:\n  a:\n    image: foldup-test/busybox:1\n    ports: 80\n", `:4:12: services\.a\.ports: `},
		{"unknown key in x-foldup", "networks:\n  lan:\n    x-foldup: {isolatd: true}\n", `:3:16: networks\.lan\.x-foldup\.isolatd: unknown key`},
		{"image not in the engine", "services:\n  a:\n    image: foldup-test/nosuch:1\n    pull_policy: never\n", `:3:12: services\.a\.image: image foldup-test/nosuch:1 is not in the engine`},
		{"missing kernel", "vms:\n  v:\n    kernel: /nonexistent/vmlinuz\n", `:3:13: vms\.v\.kernel: /nonexistent/vmlinuz: no such file`},
		{"dependency cycle", "services:\n  a:\n    image: foldup-test/busybox:1\n    depends_on: [b]\n  b:\n    image: foldup-test/busybox:1\n    depends_on: [a]\n", `:4:18: services\.a\.depends_on\.b: dependency cycle detected: a -> b -> a`},
		{"one address twice", "networks:\n  lan:\n    ipam: {config: [{subnet: 10.77.0.0/24}]}\nservices:\n  a:\n    image: foldup-test/busybox:1\n    networks: {lan: {ipv4_address: 10.77.0.9}}\nvms:\n  v:\n    kernel: ./vmlinuz\n    networks: {lan: {ipv4_address: 10.77.0.9}}\n", `:\d+:\d+: .*10\.77\.0\.9`},
		{"overlapping subnets", "networks:\n  a:\n    ipam: {config: [{subnet: 10.78.0.0/16}]}\n  b:\n    ipam: {config: [{subnet: 10.78.1.0/24}]}\nservices:\n  s:\n    image: foldup-test/busybox:1\n    networks: [a, b]\n", `:\d+:\d+: networks\.[ab]\..*overlap`},
		{"one host port twice", "services:\n  a:\n    image: foldup-test/busybox:1\n    ports: [\"8080:80\"]\nvms:\n  v:\n    kernel: ./vmlinuz\n    ports: [\"8080:80\"]\n", `:\d+:\d+: .*8080`},
		{"a name that is a path", "vms:\n  \"..\":\n    kernel: ./vmlinuz\n", `:2:3: vms\.\.\.: "\.\." is not a VM name`},
		{"undefined network", "services:\n  a:\n    image: foldup-test/busybox:1\n    networks: [nowhere]\n", `:4:16: services\.a\.networks\.0: undefined network "nowhere"`},
	}

	// KVM forced where it cannot run the VM (this machine's PVM, or a
	// host without KVM) is an error at the VM's accel, before anything is
	// made.
	if cred, _ := vm.QemuUser(); !(qemu.KVMCheck{Cred: cred}).Check(t.Context()).Usable {
		cases = append(cases, struct{ name, file, want string }{"kvm forced",
			"vms:\n  v:\n    kernel: ./vmlinuz\n    accel: kvm\n", `:4:12: vms\.v\.accel: KVM (cannot run this VM|is not available on this host)`})
	}
	before := e.snapshot(t)
	for i, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			file := filepath.Join(dir, fmt.Sprintf("bad%d.yaml", i))
			if err := os.WriteFile(file, []byte(fmt.Sprintf("%sname: bad%d\n", c.file, i)), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			out, err := e.cli(t, ctx, file, nil, "up", "-d").CombinedOutput()
			if err == nil {
				e.downAtEnd(t, fmt.Sprintf("bad%d", i))
				t.Fatalf("up succeeded:\n%s", out)
			}
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(file) + c.want).MatchString(string(out)) {
				t.Errorf("up's error, want %s%s:\n%s", file, c.want, out)
			}
			if after := e.snapshot(t); after != before {
				t.Errorf("up of an invalid file changed the system:\n%s", diffLines(before, after))
			}
		})
	}

	// Commands on a project that never ran leave no trace either (stop
	// says the project is not up; ps and down succeed).
	for _, args := range [][]string{{"ps", "-a"}, {"down"}, {"stop"}} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		out, err := e.cli(t, ctx, filepath.Join(dir, "bad0.yaml"), nil, append([]string{"-p", "neverran"}, args...)...).CombinedOutput()
		cancel()
		if err != nil && args[0] != "stop" {
			t.Errorf("%s of a project that never ran: %v\n%s", args, err, out)
		}
		if after := e.snapshot(t); after != before {
			t.Errorf("%s of a project that never ran changed the system:\n%s", args, diffLines(before, after))
		}
	}
}

// snapshot describes what an up could change: links, addresses, the
// nftables ruleset (Docker's tables included), the engine's objects, the
// files under the state and run roots, and the processes that run from
// the test's directory.
func (e *testEnv) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{{"ip", "-o", "link", "show"}, {"ip", "-o", "addr", "show"}, {"nft", "list", "ruleset"}} {
		fmt.Fprintf(&b, "## %s\n%s", strings.Join(args, " "), e.ns.MustRun(t, args...))
	}
	ctx := context.Background()
	cs, err := e.eng.Client.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		fmt.Fprintf(&b, "container %s %s\n", c.Names, c.State)
	}
	nets, err := e.eng.Client.NetworkList(ctx, dnetwork.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets {
		fmt.Fprintf(&b, "network %s\n", n.Name)
	}
	vols, err := e.eng.Client.VolumeList(ctx, volume.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols.Volumes {
		fmt.Fprintf(&b, "volume %s\n", v.Name)
	}
	for _, root := range []string{e.o.StateRoot, e.o.RunRoot} {
		filepath.WalkDir(root, func(path string, _ os.DirEntry, err error) error {
			switch path {
			case e.o.RunRoot:
				return nil // made to hold the host's KVM verdicts
			case filepath.Join(e.o.RunRoot, "accel"):
				return filepath.SkipDir // which are no project's
			}
			fmt.Fprintf(&b, "file %s %v\n", path, err)
			return nil
		})
	}
	out, _ := exec.Command("pgrep", "-af", e.dir).Output()
	procs := strings.Split(strings.TrimSpace(string(out)), "\n")
	procs = slices.DeleteFunc(procs, func(l string) bool { return l == "" || strings.Contains(l, "pgrep") })
	fmt.Fprintf(&b, "processes %q\n", procs)
	// The engine lists networks in no set order.
	lines := strings.Split(b.String(), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// diffLines lists the lines only in a and only in b.
func diffLines(a, b string) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for _, l := range as {
		if !slices.Contains(bs, l) {
			fmt.Fprintf(&out, "- %s\n", l)
		}
	}
	for _, l := range bs {
		if !slices.Contains(as, l) {
			fmt.Fprintf(&out, "+ %s\n", l)
		}
	}
	return out.String()
}
