package kube_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"

	"github.com/foldup/foldup/internal/kubetest"
	"github.com/foldup/foldup/kube"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
)

const nadCRD = "testdata/crds/network-attachment-definitions.yaml"

// corpus is every awesome-compose project beside the repository.
func corpus(t *testing.T) []string {
	dirs, _ := filepath.Glob("../../shared/corpus/awesome-compose/*")
	var out []string
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			out = append(out, d)
		}
	}
	if len(out) == 0 && os.Getenv("FOLDUP_REQUIRE_SYSTEM") == "1" {
		t.Fatal("no corpus beside the repository (shared/corpus)")
	}
	return out
}

func objects(t *testing.T, opts spec.Options) *kube.Result {
	t.Helper()
	opts.NameOnly = true
	if opts.Environ == nil {
		opts.Environ = []string{"PLEX_MEDIA_PATH=/srv/media"}
	}
	p, err := spec.Load(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := planner.Compute(p, planner.Observed{}, planner.Intent{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := kube.Build(p, plan, kube.Options{Version: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestAPIServer: a real API server (etcd and kube-apiserver on loopback,
// KubeVirt's VM CRD and Multus' NAD CRD) admits, with strict field
// validation and server-side apply as a dry run, everything foldup kube
// writes for the example, foldup kube's own input, every golden-plan
// input and every awesome-compose project; KubeVirt's own admission
// checks, run offline, accept every VM. Then one project is applied for
// real, is there, is deleted, and is gone.
func TestAPIServer(t *testing.T) {
	s := kubetest.Start(t, nadCRD)
	check := kubetest.Binary(t, "kubevirt-check")
	var inputs []spec.Options
	for _, f := range append([]string{"testdata/mixed6.yaml", "../examples/webapp-with-db/foldup.yaml"}, glob(t, "../planner/testdata/*.yaml")...) {
		inputs = append(inputs, spec.Options{Files: []string{f}, Environ: []string{}})
	}
	for _, d := range corpus(t) {
		inputs = append(inputs, spec.Options{WorkingDir: d})
	}
	vmFiles := 0
	for _, in := range inputs {
		name := filepath.Base(in.WorkingDir)
		if len(in.Files) > 0 {
			name = filepath.Base(in.Files[0])
		}
		t.Run(name, func(t *testing.T) {
			res := objects(t, in)
			if err := kube.Apply(t.Context(), s.Config, res.Objects, kube.ApplyOptions{DryRun: true}); err != nil {
				t.Fatalf("the API server refused foldup kube's output: %v", err)
			}
			var vms []kube.Object
			for _, o := range res.Objects {
				if o.GetObjectKind().GroupVersionKind().Kind == "VirtualMachine" {
					vms = append(vms, o)
				}
			}
			if len(vms) == 0 {
				return
			}
			vmFiles++
			f := filepath.Join(t.TempDir(), "vms.yaml")
			var b bytes.Buffer
			if err := kube.Write(&b, vms); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(f, b.Bytes(), 0o644)
			if out, err := exec.Command(check, "validate", f).CombinedOutput(); err != nil {
				t.Errorf("KubeVirt's admission refused foldup kube's VMs: %v\n%s", err, out)
			}
		})
	}
	if vmFiles < 3 {
		t.Errorf("only %d inputs had VMs for KubeVirt's admission", vmFiles)
	}

	t.Run("apply-delete", func(t *testing.T) {
		res := objects(t, spec.Options{Files: []string{"testdata/mixed6.yaml"}, Environ: []string{}})
		if err := kube.Apply(t.Context(), s.Config, res.Objects, kube.ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		// A second apply changes nothing and is no conflict.
		if err := kube.Apply(t.Context(), s.Config, res.Objects, kube.ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		// A Job whose command changed (its pod template, which
		// Kubernetes keeps immutable) is made again.
		for _, o := range res.Objects {
			if j, ok := o.(*batchv1.Job); ok && j.Name == "migrate" {
				j.Spec.Template.Spec.Containers[0].Args = []string{"migrate", "--again"}
			}
		}
		if err := kube.Apply(t.Context(), s.Config, res.Objects, kube.ApplyOptions{}); err != nil {
			t.Fatalf("applying a changed Job: %v", err)
		}
		there, err := kube.Exists(t.Context(), s.Config, res.Objects)
		if err != nil {
			t.Fatal(err)
		}
		for k, ok := range there {
			if !ok {
				t.Errorf("%s not in the API server after apply", k)
			}
		}
		if err := kube.Delete(t.Context(), s.Config, res.Objects, kube.ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		there, err = kube.Exists(t.Context(), s.Config, res.Objects)
		if err != nil {
			t.Fatal(err)
		}
		for k, ok := range there {
			if ok {
				t.Errorf("%s still in the API server after delete", k)
			}
		}
		// Deleting what is gone is no error.
		if err := kube.Delete(t.Context(), s.Config, res.Objects, kube.ApplyOptions{}); err != nil {
			t.Errorf("a second delete: %v", err)
		}
	})
}

// TestAPIServerRefuses: the checks can fail. A VM with a misspelt field
// is refused by the API server's strict validation; KubeVirt's admission
// refuses it too, and a readiness probe with two handlers, and
// user-data over KubeVirt's inline limit.
func TestAPIServerRefuses(t *testing.T) {
	s := kubetest.Start(t, nadCRD)
	check := kubetest.Binary(t, "kubevirt-check")
	res := objects(t, spec.Options{Files: []string{"../examples/webapp-with-db/foldup.yaml"}, Environ: []string{}})
	var vm kube.Object
	var b bytes.Buffer
	for _, o := range res.Objects {
		if o.GetObjectKind().GroupVersionKind().Kind == "VirtualMachine" {
			vm = o
		}
	}
	if err := kube.Write(&b, []kube.Object{vm}); err != nil {
		t.Fatal(err)
	}
	good := b.String()
	broken := map[string]string{
		"misspelt": strings.Replace(good, "macAddress:", "macAdress:", 1),
		"probe":    strings.Replace(good, "        httpGet:\n", "        tcpSocket:\n          port: 80\n        httpGet:\n", 1),
		"userdata": strings.Replace(good, "      readinessProbe:", "      volumes:\n      - name: cloudinit\n        cloudInitNoCloud:\n          userData: \"#cloud-config\\n# "+strings.Repeat("x", 3000)+"\"\n      readinessProbe:", 1),
	}
	for name, doc := range broken {
		if doc == good {
			t.Fatalf("%s: the copy is not broken: the golden VM changed shape", name)
		}
		f := filepath.Join(t.TempDir(), name+".yaml")
		os.WriteFile(f, []byte(doc), 0o644)
		out, err := exec.Command(check, "validate", f).CombinedOutput()
		if err == nil {
			t.Errorf("KubeVirt's admission accepted the %s copy:\n%s", name, out)
		}
	}
	// The API server: the namespace, then the misspelt VM as raw YAML.
	if err := kube.Apply(t.Context(), s.Config, res.Objects[:1], kube.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "misspelt.yaml")
	os.WriteFile(f, []byte(broken["misspelt"]), 0o644)
	err := kubetest.ApplyFile(t, s, f)
	if err == nil || !strings.Contains(err.Error(), "macAdress") {
		t.Errorf("the API server took a VM with a misspelt field: %v", err)
	}
}

func glob(t *testing.T, pattern string) []string {
	files, _ := filepath.Glob(pattern)
	if len(files) == 0 {
		t.Fatalf("nothing matches %s", pattern)
	}
	return files
}
