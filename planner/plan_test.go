package planner

import (
	"encoding/json"
	"maps"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/foldup/foldup/internal/golden"
	"github.com/foldup/foldup/spec"
)

func loadFile(t testing.TB, path string, env ...string) *spec.Project {
	t.Helper()
	p, err := spec.Load(t.Context(), spec.Options{Files: []string{path}, Environ: env})
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	return p
}

// TestGolden plans each testdata/*.yaml and compares the text rendering
// with testdata/*.golden. Run with -update to rewrite them after a change
// that is meant.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) < 4 {
		t.Fatalf("only %d golden inputs", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			p := loadFile(t, f)
			plan, err := Compute(p, Observed{}, Intent{})
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, strings.TrimSuffix(f, ".yaml")+".golden", plan.String())
			// Deterministic: a second plan is identical, JSON included.
			again, _ := Compute(loadFile(t, f), Observed{}, Intent{})
			b1, _ := json.Marshal(plan)
			b2, _ := json.Marshal(again)
			if string(b1) != string(b2) {
				t.Error("two plans of the same file differ")
			}
		})
	}
}

func TestInvariants(t *testing.T) {
	for _, f := range []string{"testdata/mixed.yaml", "testdata/ipv6.yaml", "testdata/multi-network.yaml"} {
		plan, err := Compute(loadFile(t, f), Observed{}, Intent{})
		if err != nil {
			t.Fatal(err)
		}
		links := map[string]bool{}
		addrs := map[netip.Addr]string{}
		macs := map[string]bool{}
		check := func(name string) {
			if len(name) > 15 || len(name) == 0 {
				t.Errorf("%s: interface name %q is not 1-15 bytes", f, name)
			}
			if links[name] {
				t.Errorf("%s: interface name %q used twice", f, name)
			}
			links[name] = true
		}
		nets := map[string]*Network{}
		for _, n := range plan.Networks {
			nets[n.Name] = n
			check(n.Bridge)
		}
		for _, m := range plan.Members {
			for _, nic := range m.NICs {
				n := nets[nic.Network]
				if nic.Tap != "" {
					check(nic.Tap)
				}
				if macs[nic.MAC] {
					t.Errorf("%s: MAC %s used twice", f, nic.MAC)
				}
				macs[nic.MAC] = true
				for _, a := range []netip.Addr{nic.IPv4, nic.IPv6} {
					if !a.IsValid() {
						continue
					}
					if other, ok := addrs[a]; ok {
						t.Errorf("%s: %s given to %s and %s", f, a, other, m.Name)
					}
					addrs[a] = m.Name
					if !n.Subnet4.Contains(a) && !n.Subnet6.Contains(a) {
						t.Errorf("%s: %s of %s outside %s's subnets", f, a, m.Name, n.Name)
					}
					if a == n.Gateway4 || a == n.Gateway6 {
						t.Errorf("%s: %s of %s is the gateway", f, a, m.Name)
					}
				}
				if nic.IPv4.IsValid() && n.DockerRange4.Contains(nic.IPv4) && m.Kind == VM {
					t.Errorf("%s: VM %s's %s is inside Docker's range %s", f, m.Name, nic.IPv4, n.DockerRange4)
				}
			}
		}
		// Steps come in dependency order.
		for _, s := range plan.Steps {
			for _, d := range s.Deps {
				if d >= s.ID {
					t.Errorf("%s: step %d depends on later step %d", f, s.ID, d)
				}
			}
		}
	}
}

// TestGoldenKinds plans testdata/kinds/kinds.yaml, which has a step of
// every kind, against hosts in several states and with up's flags, and
// compares each plan with testdata/kinds/NAME.golden (-update rewrites
// them).
func TestGoldenKinds(t *testing.T) {
	const file = "testdata/kinds/kinds.yaml"
	fresh, err := Compute(loadFile(t, file), Observed{}, Intent{})
	if err != nil {
		t.Fatal(err)
	}
	// up: every member as planned, running or not.
	upHost := func(running bool, hash func(*Member) string) Observed {
		obs := Observed{Previous: fresh, Networks: map[string]bool{}, Members: map[string]MemberState{}, DNSRunning: true}
		for _, n := range fresh.Networks {
			obs.Networks[n.Name] = true
		}
		for _, m := range fresh.Members {
			obs.Members[m.Name] = MemberState{Kind: m.Kind, Running: running, ConfigHash: hash(m), Container: m.Container}
		}
		return obs
	}
	same := func(m *Member) string { return m.ConfigHash }
	changed := func(m *Member) string { return "an older configuration" }
	withOrphan := upHost(true, same)
	withOrphan.Members["cache-1"] = MemberState{Kind: Container, Running: true, ConfigHash: "x", Container: "kinds-cache-1"}

	for _, c := range []struct {
		name string
		obs  Observed
		in   Intent
	}{
		{"fresh", Observed{}, Intent{}},
		{"running", upHost(true, same), Intent{}},
		{"stopped", upHost(false, same), Intent{}},
		{"changed", upHost(true, changed), Intent{}},
		{"build", upHost(true, same), Intent{Build: true}},
		{"force-recreate", upHost(true, same), Intent{ForceRecreate: true}},
		{"selected", Observed{}, Intent{Services: []string{"api"}}},
		{"orphan-kept", withOrphan, Intent{}},
		{"orphan-removed", withOrphan, Intent{RemoveOrphans: true}},
		{"wait", Observed{}, Intent{Wait: true}},
		{"no-deps", upHost(true, changed), Intent{Services: []string{"api"}, NoDeps: true}},
		{"no-recreate", upHost(false, changed), Intent{NoRecreate: true}},
		{"always-recreate-deps", upHost(true, same), Intent{AlwaysRecreateDeps: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := loadFile(t, file)
			plan, err := Compute(p, c.obs, c.in)
			if err != nil {
				t.Fatal(err)
			}
			abs, _ := filepath.Abs("testdata")
			golden.Check(t, "testdata/kinds/"+c.name+".golden", strings.ReplaceAll(plan.String(), abs, "testdata"))
			for _, s := range plan.Steps {
				for _, d := range s.Deps {
					if d >= s.ID {
						t.Errorf("step %d depends on later step %d", s.ID, d)
					}
				}
			}
		})
	}
}

// TestIntentUnknownService: up NAME of a name the project does not have
// is an error, as in docker compose, not a run that does nothing.
func TestIntentUnknownService(t *testing.T) {
	_, err := Compute(loadFile(t, "testdata/kinds/kinds.yaml"), Observed{}, Intent{Services: []string{"api", "nope"}})
	if err == nil || !strings.Contains(err.Error(), "no such service, VM or member: nope") {
		t.Fatalf("err = %v", err)
	}
}

// TestScaleRenamesMembers: a service going from one replica to two names
// its members web-1 and web-2 where it had web; the container running as
// web is web-1's, recreated, not an orphan beside a new one of its name.
func TestScaleRenamesMembers(t *testing.T) {
	one, err := Compute(inline(t, "name: p\nservices: {web: {image: x}}"), Observed{}, Intent{})
	if err != nil {
		t.Fatal(err)
	}
	m := one.Members[0]
	obs := Observed{Previous: one, Members: map[string]MemberState{m.Name: {Kind: Container, Running: true, ConfigHash: m.ConfigHash, Container: m.Container}}}
	two, err := Compute(inline(t, "name: p\nservices: {web: {image: x, scale: 2}}"), obs, Intent{RemoveOrphans: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range two.Steps {
		if s.Kind == KindContainer || s.Kind == KindOrphan {
			got[string(s.Kind)+" "+s.Name] = s.Action
		}
	}
	want := map[string]string{"container web-1": ActionRecreate, "container web-2": ActionCreate}
	if !maps.Equal(got, want) || len(two.Orphans) > 0 {
		t.Errorf("steps %v, orphans %v; want %v and none (was %s as %s)", got, two.Orphans, want, m.Name, m.Container)
	}
}
