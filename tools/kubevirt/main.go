// Command kubevirt-check runs KubeVirt's own code offline, for foldup's
// kube tests (kubevirt.io/kubevirt cannot be go installed: it has replace
// directives, which go.mod here repeats):
//
//	kubevirt-check crd          print KubeVirt's VirtualMachine CRD (YAML)
//	kubevirt-check validate F…  run KubeVirt's VirtualMachine admission
//	                            (its validating webhook's spec checks) on
//	                            every VirtualMachine in the YAML files F
//
// validate decodes strictly (an unknown field is an error, as the API
// server's strict field validation makes it) and exits 1 when any VM is
// refused, printing each cause with its field.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfield "k8s.io/apimachinery/pkg/util/validation/field"
	v1 "kubevirt.io/api/core/v1"
	"kubevirt.io/kubevirt/pkg/testutils"
	"kubevirt.io/kubevirt/pkg/virt-api/webhooks/validating-webhook/admitters"
	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kubevirt-check crd | validate FILE...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "crd":
		crd, err := components.NewVirtualMachineCrd()
		if err != nil {
			fail(err)
		}
		b, err := yaml.Marshal(crd)
		if err != nil {
			fail(err)
		}
		os.Stdout.Write(b)
	case "validate":
		cfg, _, _ := testutils.NewFakeClusterConfigUsingKVConfig(&v1.KubeVirtConfiguration{})
		refused := 0
		for _, f := range os.Args[2:] {
			raw, err := os.ReadFile(f)
			if err != nil {
				fail(err)
			}
			for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
				var tm metav1.TypeMeta
				if err := yaml.Unmarshal(doc, &tm); err != nil {
					fail(fmt.Errorf("%s: %w", f, err))
				}
				if tm.Kind != "VirtualMachine" {
					continue
				}
				var vm v1.VirtualMachine
				if err := yaml.UnmarshalStrict(doc, &vm); err != nil {
					fmt.Printf("%s: %v\n", f, err)
					refused++
					continue
				}
				// KubeVirt's types decode some fields themselves, where
				// unknown fields pass unseen: what does not come back
				// from the typed object was not known.
				if unknown := unknownFields(doc, &vm); len(unknown) > 0 {
					for _, u := range unknown {
						fmt.Printf("%s: VirtualMachine %s: %s: unknown field\n", f, vm.Name, u)
					}
					refused++
					continue
				}
				causes := admitters.ValidateVirtualMachineSpec(k8sfield.NewPath("spec"), &vm.Spec, cfg, false)
				for _, c := range causes {
					fmt.Printf("%s: VirtualMachine %s: %s: %s\n", f, vm.Name, c.Field, c.Message)
				}
				if len(causes) > 0 {
					refused++
				} else {
					fmt.Printf("%s: VirtualMachine %s: accepted\n", f, vm.Name)
				}
			}
		}
		if refused > 0 {
			os.Exit(1)
		}
	default:
		fail(fmt.Errorf("unknown command %s", strings.Join(os.Args[1:], " ")))
	}
}

// unknownFields are the paths of doc that typed, decoded from doc, does
// not give back (empty values aside, which omitempty drops).
func unknownFields(doc []byte, typed any) []string {
	var orig, back any
	if err := yaml.Unmarshal(doc, &orig); err != nil {
		return []string{err.Error()}
	}
	b, err := json.Marshal(typed)
	if err != nil {
		return []string{err.Error()}
	}
	json.Unmarshal(b, &back)
	var out []string
	var walk func(path string, o, k any)
	walk = func(path string, o, k any) {
		switch o := o.(type) {
		case map[string]any:
			km, _ := k.(map[string]any)
			for key, v := range o {
				kv, ok := km[key]
				if !ok {
					if !empty(v) {
						out = append(out, path+"."+key)
					}
					continue
				}
				walk(path+"."+key, v, kv)
			}
		case []any:
			kl, _ := k.([]any)
			for i, v := range o {
				if i < len(kl) {
					walk(fmt.Sprintf("%s[%d]", path, i), v, kl[i])
				}
			}
		}
	}
	walk("", orig, back)
	sort.Strings(out)
	return out
}

func empty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
	case string:
		return v == ""
	case bool:
		return !v
	case float64:
		return v == 0
	}
	return false
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kubevirt-check:", err)
	os.Exit(1)
}
