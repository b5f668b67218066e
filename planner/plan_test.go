package planner

import (
	"encoding/json"
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
			plan, err := Compute(p, Observed{})
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, strings.TrimSuffix(f, ".yaml")+".golden", plan.String())
			// Deterministic: a second plan is identical, JSON included.
			again, _ := Compute(loadFile(t, f), Observed{})
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
		plan, err := Compute(loadFile(t, f), Observed{})
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
