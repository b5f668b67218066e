package foldtest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/foldup/foldup/internal/vmtest"
)

// Project is a foldup file being built: each entry is YAML of its own,
// indented as the file nests it.
type Project struct {
	Name     string
	networks [][2]string
	services [][2]string
	vms      [][2]string
	more     []string
}

// NewProject starts a project file.
func NewProject(name string) *Project { return &Project{Name: name} }

// AddNetwork adds networks.NAME with its body in YAML ("{}" for none).
func (p *Project) AddNetwork(name, body string) *Project {
	p.networks = append(p.networks, [2]string{name, body})
	return p
}

// AddService adds services.NAME with its body in YAML.
func (p *Project) AddService(name, body string) *Project {
	p.services = append(p.services, [2]string{name, body})
	return p
}

// VM is a VM that boots the test kernel and initramfs (vmtest.Images)
// with a serial console and foldup's usual test settings.
type VM struct {
	Memory  string // default 256m
	Cmdline string // more kernel arguments
	// Body is more of the VM's YAML: networks, healthcheck, depends_on...
	Body string
}

// AddVM adds vms.NAME: the test guest as v says. It skips t when qemu or
// the images are missing (fails with FOLDUP_REQUIRE_SYSTEM=1).
func (p *Project) AddVM(t testing.TB, name string, v VM) *Project {
	t.Helper()
	kernel, initrd := vmtest.Images(t)
	body := fmt.Sprintf("kernel: %s\ninitrd: %s\ncmdline: %q\nmemory: %s\nstop_grace_period: 1s\n",
		kernel, initrd, strings.TrimSpace("console=ttyS0 quiet panic=-1 "+v.Cmdline), cmp.Or(v.Memory, "256m"))
	p.vms = append(p.vms, [2]string{name, body + v.Body})
	return p
}

// Add adds a top-level section as it is: dns:, volumes:, x-foldup:...
func (p *Project) Add(yaml string) *Project {
	p.more = append(p.more, strings.TrimRight(yaml, "\n"))
	return p
}

// String is the foldup file.
func (p *Project) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\n", p.Name)
	section := func(key string, entries [][2]string) {
		if len(entries) == 0 {
			return
		}
		fmt.Fprintf(&b, "%s:\n", key)
		for _, e := range entries {
			body := strings.TrimRight(e[1], "\n")
			if !strings.Contains(body, "\n") && (strings.HasPrefix(body, "{") || body == "") {
				fmt.Fprintf(&b, "  %s: %s\n", e[0], cmp.Or(body, "{}"))
				continue
			}
			fmt.Fprintf(&b, "  %s:\n", e[0])
			for _, l := range strings.Split(body, "\n") {
				fmt.Fprintf(&b, "    %s\n", l)
			}
		}
	}
	section("networks", p.networks)
	section("services", p.services)
	section("vms", p.vms)
	for _, m := range p.more {
		b.WriteString(m + "\n")
	}
	return b.String()
}

// VMs are the names of the project's VMs.
func (p *Project) VMs() []string {
	var out []string
	for _, v := range p.vms {
		out = append(out, v[0])
	}
	return slices.Clip(out)
}
