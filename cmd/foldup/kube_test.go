package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/foldup/foldup/internal/kubetest"
)

// TestKubeCLI: foldup kube writes the example's objects to stdout or a
// directory (a file each, in apply order), warns on stderr with
// positions, and kube apply (a server dry run, then for real) and kube
// delete reach the API server of a kubeconfig.
func TestKubeCLI(t *testing.T) {
	file, _ := filepath.Abs("../../examples/webapp-with-db/foldup.yaml")
	foldup := func(args ...string) (string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(t.Context(), append([]string{"-f", file}, args...), strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("foldup %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
		}
		return out.String(), errb.String()
	}
	out, warnings := foldup("kube")
	for _, want := range []string{"kind: Namespace", "kind: NetworkAttachmentDefinition", "kind: VirtualMachine", "kind: Deployment", "10.80.1.5/24"} {
		if !strings.Contains(out, want) {
			t.Errorf("foldup kube: no %q in its output", want)
		}
	}
	if !strings.Contains(warnings, "foldup.yaml:35:9: services.db.volumes.1: a bind mount") {
		t.Errorf("foldup kube: no positioned warning of the bind mount on stderr:\n%s", warnings)
	}
	dir := t.TempDir()
	foldup("kube", "-o", dir)
	files, _ := os.ReadDir(dir)
	if len(files) != strings.Count(out, "\n---\n")+1 || !strings.HasPrefix(files[0].Name(), "00-namespace-webapp") {
		t.Errorf("kube -o: %d files for %d objects, first %v", len(files), strings.Count(out, "\n---\n")+1, files)
	}

	s := kubetest.Start(t, "../../kube/testdata/crds/network-attachment-definitions.yaml")
	out, _ = foldup("kube", "apply", "--dry-run", "--kubeconfig", s.Kubeconfig)
	if !strings.Contains(out, "VirtualMachine web applied (server dry run)") {
		t.Errorf("kube apply --dry-run:\n%s", out)
	}
	out, _ = foldup("kube", "apply", "--kubeconfig", s.Kubeconfig)
	if !strings.Contains(out, "VirtualMachine web applied\n") || !strings.Contains(out, "Deployment foldup-dns applied\n") {
		t.Errorf("kube apply:\n%s", out)
	}
	out, _ = foldup("kube", "delete", "--kubeconfig", s.Kubeconfig)
	if !strings.Contains(out, "VirtualMachine web deleted") || !strings.Contains(out, "Namespace webapp deleted") {
		t.Errorf("kube delete:\n%s", out)
	}
	out, _ = foldup("kube", "delete", "--kubeconfig", s.Kubeconfig)
	if strings.Contains(out, "VirtualMachine web deleted") {
		t.Errorf("a second kube delete deleted the VM again:\n%s", out)
	}
}
