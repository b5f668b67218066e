package kube

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/foldup/foldup/internal/golden"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
)

// Inputs are the files the kube tests write: foldup kube's own, the
// planner's golden inputs and the example.
func inputs(t *testing.T) []string {
	files, _ := filepath.Glob("../planner/testdata/*.yaml")
	if len(files) == 0 {
		t.Fatal("no golden inputs in planner/testdata")
	}
	return append([]string{"testdata/mixed6.yaml", "../examples/webapp-with-db/foldup.yaml"}, files...)
}

func build(t *testing.T, file string) (*spec.Project, *planner.Plan, *Result) {
	t.Helper()
	p, err := spec.Load(t.Context(), spec.Options{Files: []string{file}, NameOnly: true, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := planner.Compute(p, planner.Observed{}, planner.Intent{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Build(p, plan, Options{Version: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	return p, plan, res
}

// TestGolden: the objects and warnings of each input, as foldup kube
// prints them (warnings first, as comments).
func TestGolden(t *testing.T) {
	for _, f := range []string{"testdata/mixed6.yaml", "../examples/webapp-with-db/foldup.yaml", "../planner/testdata/ipv6.yaml"} {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		if name == "foldup" {
			name = "webapp"
		}
		t.Run(name, func(t *testing.T) {
			p, plan, _ := build(t, f)
			// A configuration hash covers the files' absolute paths,
			// which differ between clones: the golden files hold the
			// member's name in its place.
			for _, m := range plan.Members {
				m.ConfigHash = "hash" + Name(m.Name)
			}
			res, err := Build(p, plan, Options{Version: "v1.2.3"})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			for _, w := range res.Warnings {
				w.Pos.File = filepath.Base(w.Pos.File) // the same in any clone
				b.WriteString("# warning: " + w.String() + "\n")
			}
			if err := Write(&b, res.Objects); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", name+".golden"), b.String())
		})
	}
}

// TestPlanned: every object is the project's, in its namespace; every
// container member's pod asks for the planned addresses and MAC on each
// of its networks; every VM's interfaces have the planned MACs; every
// member with ports has a Service for them. Checked on every input.
func TestPlanned(t *testing.T) {
	for _, f := range inputs(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, plan, res := build(t, f)
			pods := map[string]corev1.PodTemplateSpec{}
			vms := map[string]*kubevirtv1.VirtualMachine{}
			services := map[string]*corev1.Service{}
			for _, o := range res.Objects {
				if o.GetLabels()[LabelProject] != Name(plan.Project) {
					t.Errorf("%s %s has no project label", o.GetObjectKind().GroupVersionKind().Kind, o.GetName())
				}
				if o.GetObjectKind().GroupVersionKind().Kind != "Namespace" && o.GetNamespace() != res.Namespace {
					t.Errorf("%s %s is in namespace %q, not %q", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), o.GetNamespace(), res.Namespace)
				}
				switch o := o.(type) {
				case *appsv1.Deployment:
					pods[o.Name] = o.Spec.Template
				case *batchv1.Job:
					pods[o.Name] = o.Spec.Template
				case *kubevirtv1.VirtualMachine:
					vms[o.Name] = o
				case *corev1.Service:
					services[o.Name] = o
				}
			}
			for _, m := range plan.Members {
				if len(m.Ports) > 0 && services[Name(m.Name)] == nil {
					t.Errorf("member %s publishes ports and has no Service", m.Name)
				}
				switch m.Kind {
				case planner.Container:
					pod, ok := pods[Name(m.Name)]
					if !ok {
						t.Errorf("no Deployment or Job for member %s", m.Name)
						continue
					}
					var refs []nadRef
					if err := json.Unmarshal([]byte(pod.Annotations[networksAnnotation]), &refs); err != nil && len(m.NICs) > 0 {
						t.Errorf("member %s: networks annotation: %v", m.Name, err)
					}
					for _, nic := range m.NICs {
						i := slices.IndexFunc(refs, func(r nadRef) bool { return r.Name == Name(nic.Network) })
						if i < 0 {
							t.Errorf("member %s is not attached to %s", m.Name, nic.Network)
							continue
						}
						if refs[i].MAC != nic.MAC {
							t.Errorf("member %s on %s: MAC %s, planned %s", m.Name, nic.Network, refs[i].MAC, nic.MAC)
						}
						for _, a := range []netip.Addr{nic.IPv4, nic.IPv6} {
							if a.IsValid() && !slices.ContainsFunc(refs[i].IPs, func(s string) bool { return netip.MustParsePrefix(s).Addr() == a }) {
								t.Errorf("member %s on %s: %v not among %v", m.Name, nic.Network, a, refs[i].IPs)
							}
						}
					}
				case planner.VM:
					vm := vms[Name(m.Name)]
					if vm == nil {
						t.Errorf("no VirtualMachine for member %s", m.Name)
						continue
					}
					ifaces := vm.Spec.Template.Spec.Domain.Devices.Interfaces
					for _, nic := range m.NICs {
						i := slices.IndexFunc(ifaces, func(x kubevirtv1.Interface) bool { return x.Name == Name(nic.Network) })
						if i < 0 || ifaces[i].MacAddress != nic.MAC {
							t.Errorf("VM %s on %s: want the planned MAC %s in %+v", m.Name, nic.Network, nic.MAC, ifaces)
						}
					}
				}
			}
		})
	}
}

// TestWarnings: what has no Kubernetes equivalent is named, with where it
// is written, never dropped silently.
func TestWarnings(t *testing.T) {
	_, _, res := build(t, "testdata/mixed6.yaml")
	var all []string
	for _, w := range res.Warnings {
		all = append(all, w.String())
	}
	text := strings.Join(all, "\n")
	for _, want := range []string{
		"mixed6.yaml:32:39: services.api.volumes.1: a bind mount",
		"vms.probe.qemu_args: KubeVirt runs qemu itself",
		"vms.probe.healthcheck.test: KubeVirt cannot read a guest's serial console",
		"networks.quiet.x-foldup.multicast: Kubernetes has no multicast filtering",
		"vms.db.image: imported by CDI into a DataVolume of 10Gi",
		"services.worker.x-foldup.netem: Kubernetes has no link impairment",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no warning %q in:\n%s", want, text)
		}
	}
	for _, w := range res.Warnings {
		if w.Pos.Line == 0 {
			t.Errorf("warning without a position: %s", w)
		}
	}
}

func TestName(t *testing.T) {
	for in, want := range map[string]string{
		"web_1":                 "web-1",
		"Web.Front":             "web-front",
		"-x-":                   "x",
		strings.Repeat("a", 70): strings.Repeat("a", 63),
	} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

// buildYAML builds the objects of a project written in a file of t's.
func buildYAML(t *testing.T, content string) (*Result, error) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "foldup.yaml")
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := spec.Load(t.Context(), spec.Options{Files: []string{f}, NameOnly: true, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := planner.Compute(p, planner.Observed{}, planner.Intent{})
	if err != nil {
		t.Fatal(err)
	}
	return Build(p, plan, Options{})
}

// TestNames: what Kubernetes would refuse or overwrite is refused here; a
// Service's name starts with a letter.
func TestNames(t *testing.T) {
	res, err := buildYAML(t, "name: n\nservices:\n  3proxy: {image: busybox, ports: [\"8080:80\"]}\n")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, o := range res.Objects {
		if svc, ok := o.(*corev1.Service); ok {
			found = svc.Name == "m-3proxy"
		}
	}
	if !found {
		t.Errorf("no Service m-3proxy for the service 3proxy")
	}
	if _, err := buildYAML(t, "name: n\nservices:\n  web_1: {image: busybox}\n  web-1: {image: busybox}\n"); err == nil || !strings.Contains(err.Error(), "two Deployments would be named web-1") {
		t.Errorf("web_1 beside web-1: %v", err)
	}
	if _, err := buildYAML(t, "name: n\nnetworks:\n  kube-pod: {}\nservices:\n  a: {image: busybox, networks: [kube-pod]}\n"); err == nil || !strings.Contains(err.Error(), "kube-pod") {
		t.Errorf("a network named kube-pod: %v", err)
	}
}

// TestVMKernelAndDisk: a VM that boots a kernel with a disk keeps both;
// its probe's port is forwarded beside its published ones.
func TestVMKernelAndDisk(t *testing.T) {
	res, err := buildYAML(t, `name: kd
vms:
  db:
    kernel: ./vmlinuz
    image: ./disk.qcow2
    cmdline: root=/dev/vda
    ports: ["2222:22"]
    healthcheck: {test: [http, "80/"]}
`)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range res.Objects {
		vm, ok := o.(*kubevirtv1.VirtualMachine)
		if !ok {
			continue
		}
		s := vm.Spec.Template.Spec
		if s.Domain.Firmware == nil || s.Domain.Firmware.KernelBoot == nil || !strings.Contains(s.Domain.Firmware.KernelBoot.Container.Image, "-boot:") {
			t.Errorf("no kernelBoot: %+v", s.Domain.Firmware)
		}
		if len(s.Volumes) != 1 || s.Volumes[0].ContainerDisk == nil || !strings.Contains(s.Volumes[0].ContainerDisk.Image, "-disk:") {
			t.Errorf("the disk is lost: %+v", s.Volumes)
		}
		var ports []int32
		for _, i := range s.Domain.Devices.Interfaces {
			for _, p := range i.Ports {
				ports = append(ports, p.Port)
			}
		}
		if !slices.Contains(ports, 22) || !slices.Contains(ports, 80) {
			t.Errorf("masquerade forwards %v, want 22 (published) and 80 (the probe's)", ports)
		}
		return
	}
	t.Fatal("no VirtualMachine")
}
