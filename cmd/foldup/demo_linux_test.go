package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/foldup/foldup/containers"
	"github.com/foldup/foldup/internal/dockertest"
	"github.com/foldup/foldup/internal/nstest"
	"github.com/foldup/foldup/internal/vmtest"
)

// TestDemo runs the README's main command, scripts/demo.sh, as a user
// would, but inside a fresh network namespace against a private engine:
// it imports the database image, brings examples/webapp-with-db up and
// prints the page the web VM serves on the forwarded port, with the rows
// seed.sql put in the database. Then `logs web` shows the VM's console,
// `ps` both members healthy, and `down -v` leaves nothing behind: no link,
// no nftables table, no DOCKER-USER rule, no container, network or volume,
// no qemu, no state.
func TestDemo(t *testing.T) {
	images := vmtest.Example(t)
	ns := nstest.New(t)
	eng := dockertest.Start(t, ns)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	for d := state; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o711) // qemu runs as nobody: it must get through to its VM's directory
	}
	env := append(eng.Env(),
		"FOLDUP_IMAGES="+images,
		"FOLDUP_STATE_ROOT="+filepath.Join(state, "state"),
		"FOLDUP_RUN_ROOT="+filepath.Join(state, "run"),
	)
	file := filepath.Join(root, "examples/webapp-with-db/foldup.yaml")
	// inNS runs a command in the namespace, with the engine and state above.
	inNS := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name}, args...)...)
		cmd.Dir, cmd.Env = root, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	foldup := func(args ...string) string {
		t.Helper()
		out, err := inNS(2*time.Minute, append([]string{filepath.Join(root, "bin/foldup"), "-f", file}, args...)...)
		if err != nil {
			t.Fatalf("foldup %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	t.Cleanup(func() {
		if out, err := inNS(2*time.Minute, filepath.Join(root, "bin/foldup"), "-p", "webapp", "down", "-v", "--force"); err != nil {
			t.Logf("down at the end: %v\n%s", err, out)
		}
	})

	out, err := inNS(10*time.Minute, "scripts/demo.sh")
	if err != nil {
		t.Fatalf("scripts/demo.sh: %v\n%s", err, out)
	}
	t.Logf("scripts/demo.sh:\n%s", out)
	for _, want := range []string{
		`(?m)^users \(table chosen by TXT table\)$`,
		`(?m)^1 +\| Ada Lovelace +\| ada@example\.com$`,
		`(?m)^4 +\| Edsger Dijkstra +\| edsger@example\.com$`,
		`(?m)^\(4 rows\)$`,
		`(?m)^ +bin/foldup -f examples/webapp-with-db/foldup\.yaml down -v$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("demo.sh printed no line matching %s", want)
		}
	}

	// The forwarded port, from the host (the namespace) again.
	page, err := inNS(30*time.Second, "curl", "-fsS", "--max-time", "20", "http://127.0.0.1:8080/")
	if err != nil || !strings.Contains(page, "Grace Hopper") {
		t.Errorf("curl http://127.0.0.1:8080/: %v\n%s", err, page)
	}

	// The VM's console: its lease, the app's log and, once duplicate
	// address detection is over (a second or two after the page is
	// served), its IPv6 address.
	var missing []string
	var logs string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		logs, missing = foldup("logs", "--no-color", "web"), nil
		for _, want := range []string{
			`(?m)^web +\| FOLDUP-LEASE event=bound ip=10\.80\.1\.10/24 .*dns=10\.80\.1\.1 search=webapp\.foldup\.internal hostname=web `,
			`(?m)^web +\| .*msg="table from TXT record" record=table table=users$`,
			`(?m)^web +\| .*msg="database answered" host=db port=5432 `,
			`(?m)^web +\| FOLDUP-IPV6 eth0 fd00:80:1:`,
		} {
			if !regexp.MustCompile(want).MatchString(logs) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(missing) > 0 {
		t.Errorf("logs web: no lines matching %q\n%s", missing, logs)
	}

	ps := foldup("ps")
	for _, want := range []string{
		`(?m)^web +vmlinuz +vm \((kvm|tcg)\) +web +.* ago +Up .*\(healthy\) +10\.80\.1\.10,fd00:80:1:\S+ +0\.0\.0\.0:8080->80/tcp$`,
		`(?m)^webapp-db-1 +foldup-example/postgres:15 +container +db +.* ago +Up .*\(healthy\) +10\.80\.1\.5,fd00:80:1:`,
	} {
		if !regexp.MustCompile(want).MatchString(ps) {
			t.Errorf("ps: no line matching %s\n%s", want, ps)
		}
	}

	if db := foldup("logs", "--no-color", "db"); !strings.Contains(db, "initialised /var/lib/postgresql/data (database app)") {
		t.Errorf("logs db: the entrypoint did not say it initialised the cluster:\n%s", db)
	}

	// What up made, to look for after down.
	links, _ := inNS(10*time.Second, "ip", "-o", "link", "show")
	// "N: NAME: ..." or, for a veth, "N: NAME@PEER: ...".
	linkName := regexp.MustCompile(`(?m)^\d+: ([^:@]+)`)
	made := linkName.FindAllStringSubmatch(links, -1)
	if len(made) < 4 { // lo, the bridge, the tap, db's veth
		t.Errorf("up made fewer links than it should:\n%s", links)
	}
	// Its nftables table and its accepts in Docker's DOCKER-USER chains.
	if rules, _ := inNS(10*time.Second, "nft", "list", "ruleset"); !strings.Contains(rules, "table inet foldup-webapp") || !strings.Contains(rules, `comment "foldup:`) {
		t.Errorf("up made no table foldup-webapp or no DOCKER-USER accept:\n%s", rules)
	}

	// down keeps the database's volume: the next up (demo.sh again) finds
	// the cluster and does not seed it again.
	if down := foldup("down"); !strings.Contains(down, "Container webapp-db-1  Removed") || strings.Contains(down, "Volume") {
		t.Errorf("down (no -v): want db removed and its volume kept:\n%s", down)
	}
	out, err = inNS(10*time.Minute, "scripts/demo.sh")
	if err != nil || !regexp.MustCompile(`(?m)^\(4 rows\)$`).MatchString(out) {
		t.Fatalf("scripts/demo.sh after down: %v\n%s", err, out)
	}
	if db := foldup("logs", "--no-color", "db"); !strings.Contains(db, "database system is ready") || strings.Contains(db, "initialised") {
		t.Errorf("logs db after down and up: want the old cluster started, not a new one initialised:\n%s", db)
	}

	ctx := t.Context()
	if vols, err := eng.Client.VolumeList(ctx, volume.ListOptions{}); err != nil || len(vols.Volumes) != 1 || vols.Volumes[0].Name != "webapp_dbdata" {
		t.Errorf("volumes while up: want webapp_dbdata alone, got %v %v", vols.Volumes, err)
	}

	down := foldup("down", "-v")
	for _, want := range []string{"Container webapp-db-1  Removed", "VM web  Removed", "Network webapp_lan  Removed", "Volume webapp_dbdata  Removed"} {
		if !strings.Contains(down, want) {
			t.Errorf("down -v did not say %q:\n%s", want, down)
		}
	}

	// Nothing left.
	links, _ = inNS(10*time.Second, "ip", "-o", "link", "show")
	left := map[string]bool{}
	for _, m := range linkName.FindAllStringSubmatch(links, -1) {
		left[m[1]] = true
	}
	for _, m := range made {
		if name := m[1]; name != "lo" && left[name] {
			t.Errorf("link %s is still there after down:\n%s", name, links)
		}
	}
	rules, err := inNS(10*time.Second, "nft", "list", "ruleset")
	if err != nil {
		t.Errorf("nft list ruleset: %v\n%s", err, rules)
	}
	if strings.Contains(rules, "foldup") {
		t.Errorf("a table or rule of foldup's is left:\n%s", rules)
	}
	for _, m := range made {
		if name := m[1]; name != "lo" && strings.Contains(rules, `"`+name+`"`) {
			t.Errorf("a rule still names %s:\n%s", name, rules)
		}
	}
	label := filters.NewArgs(filters.Arg("label", containers.LabelProject+"=webapp"))
	if cs, err := eng.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: label}); err != nil || len(cs) > 0 {
		t.Errorf("containers left: %v %v", cs, err)
	}
	if nets, err := eng.Client.NetworkList(ctx, network.ListOptions{Filters: label}); err != nil || len(nets) > 0 {
		t.Errorf("networks left: %v %v", nets, err)
	}
	if vols, err := eng.Client.VolumeList(ctx, volume.ListOptions{}); err != nil || len(vols.Volumes) > 0 {
		t.Errorf("volumes left: %v %v", vols.Volumes, err)
	}
	if qemus := qemuOf(t, filepath.Join(state, "run")); len(qemus) > 0 {
		t.Errorf("qemu still runs: %v", qemus)
	}
	// What is left is the host's, no project's: the KVM verdict kept
	// for the boot under the run root.
	files, _ := filepath.Glob(filepath.Join(state, "*", "*"))
	files = slices.DeleteFunc(files, func(p string) bool { return p == filepath.Join(state, "run", "accel") })
	if len(files) > 0 {
		t.Errorf("state left: %v", files)
	}
}

// qemuOf returns the qemu processes, zombies aside, whose command line
// names a path under dir.
func qemuOf(t *testing.T, dir string) []string {
	var found []string
	deadline := time.Now().Add(5 * time.Second) // a killed qemu takes a moment to go
	for {
		found = found[:0]
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err != nil || len(b) == 0 || !strings.Contains(string(b), "qemu") || !strings.Contains(string(b), dir) {
				continue
			}
			found = append(found, strings.ReplaceAll(string(b), "\x00", " "))
		}
		if len(found) == 0 || time.Now().After(deadline) {
			return found
		}
		time.Sleep(100 * time.Millisecond)
	}
}
