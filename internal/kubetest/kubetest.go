// Package kubetest runs a real Kubernetes API server for the kube tests:
// etcd and kube-apiserver (built by scripts/kubeapi.sh from the Go module
// proxy) on 127.0.0.1 only, with KubeVirt's VirtualMachine CRD and
// Multus' NetworkAttachmentDefinition CRD installed. No controllers run:
// objects are admitted, validated and stored, and nothing acts on them.
// Tests skip without the binaries, or fail with FOLDUP_REQUIRE_SYSTEM=1.
package kubetest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/foldup/foldup/internal/systest"
	"github.com/foldup/foldup/kube"
)

// Dir is where scripts/kubeapi.sh puts the binaries and the VM CRD.
func Dir() string {
	if d := os.Getenv("FOLDUP_TEST_KUBE"); d != "" {
		return d
	}
	return "/var/cache/foldup-test/kube"
}

// Binary is one of the binaries kubeapi.sh builds; t skips (or fails)
// when it is missing.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(Dir(), name)
	_, err := os.Stat(p)
	systest.Need(t, err == nil, "needs "+p+": run scripts/kubeapi.sh "+Dir())
	return p
}

// token is the tests' client's bearer token (system:masters).
const token = "foldup-kube-test-token"

// Server is a running API server.
type Server struct {
	Config     *rest.Config
	Kubeconfig string // a kubeconfig file for it
}

// Start runs etcd and kube-apiserver on free loopback ports in t's
// temporary directory, waits until the server is ready, and installs the
// CRDs (crdFiles: YAML files of CustomResourceDefinitions, besides
// KubeVirt's VirtualMachine CRD from Dir). Both processes end with t.
func Start(t testing.TB, crdFiles ...string) *Server {
	t.Helper()
	etcdBin, apiBin := Binary(t, "etcd"), Binary(t, "kube-apiserver")
	vmCRD := filepath.Join(Dir(), "virtualmachines.crd.yaml")
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	client, peer := freePort(t), freePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(client)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peer)
	start(t, ctx, filepath.Join(dir, "etcd.log"), etcdBin,
		"--name", "foldup-test", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "foldup-test="+peerURL, "--listen-metrics-urls", "")

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "sa.key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	// A static token for the tests' client; anonymous requests get no
	// further than the health checks.
	tokenFile := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(token+`,foldup-test,1,"system:masters"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	apiDone := start(t, ctx, filepath.Join(dir, "apiserver.log"), apiBin,
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(port),
		"--cert-dir", filepath.Join(dir, "certs"),
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", keyFile,
		"--service-account-signing-key-file", keyFile, "--service-cluster-ip-range", "10.255.0.0/24",
		"--authorization-mode", "AlwaysAllow", "--token-auth-file", tokenFile, "--endpoint-reconciler-type", "none",
		"--enable-priority-and-fairness=false", "--storage-backend", "etcd3")

	host := "https://127.0.0.1:" + strconv.Itoa(port)
	cfg := &rest.Config{Host: host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 200, Burst: 400}
	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	defer wcancel()
	go func() {
		select {
		case <-apiDone: // exited: no use waiting
			wcancel()
		case <-wctx.Done():
		}
	}()
	if err := kube.WaitReady(wctx, cfg); err != nil {
		logTail(t, filepath.Join(dir, "apiserver.log"))
		logTail(t, filepath.Join(dir, "etcd.log"))
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: test, user: {token: %q}}]
contexts: [{name: test, context: {cluster: test, user: test}}]
current-context: test
`, host, token)
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Server{Config: cfg, Kubeconfig: kubeconfig}
	for _, f := range append([]string{vmCRD}, crdFiles...) {
		s.installCRD(t, ctx, f)
	}
	return s
}

// start runs a server process until ctx ends (then kills it and waits).
// The channel is closed when the process has exited.
func start(t testing.TB, ctx context.Context, logFile, bin string, args ...string) <-chan struct{} {
	t.Helper()
	log, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		log.Close()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			logTail(t, logFile)
		}
	})
	go func() {
		select {
		case <-ctx.Done():
			cmd.Process.Kill()
		case <-done:
		}
	}()
	return done
}

func logTail(t testing.TB, file string) {
	b, _ := os.ReadFile(file)
	s := string(b)
	if len(s) > 4000 {
		s = s[len(s)-4000:]
	}
	t.Logf("%s, last lines:\n%s", filepath.Base(file), s)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installCRD creates the CRDs in file and waits until each is
// established (its API served).
func (s *Server) installCRD(t testing.TB, ctx context.Context, file string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if obj == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		if _, err := dyn.Resource(crdResource).Create(ctx, u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("installing %s from %s: %v", u.GetName(), file, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, err := dyn.Resource(crdResource).Get(ctx, u.GetName(), metav1.GetOptions{})
			if err == nil && established(got) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not established in 30 s", u.GetName())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// established: the CRD's Established condition is True.
func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// ApplyFile server-side applies the one object in a YAML file as a dry
// run with strict field validation, as kube.Apply does, but as the file
// has it: for objects no Go type can hold (a misspelt field).
func ApplyFile(t testing.TB, s *Server, file string) error {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: obj}
	gvk := u.GroupVersionKind()
	resource := strings.ToLower(gvk.Kind) + "s"
	dyn, err := dynamic.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	data, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	force := true
	_, err = dyn.Resource(gvk.GroupVersion().WithResource(resource)).Namespace(u.GetNamespace()).Patch(t.Context(), u.GetName(),
		types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: kube.FieldManager, Force: &force, FieldValidation: "Strict", DryRun: []string{metav1.DryRunAll}})
	return err
}
