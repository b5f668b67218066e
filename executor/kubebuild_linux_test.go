//go:build linux

package executor

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/client"
	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/foldup/foldup/internal/vmtest"
	"github.com/foldup/foldup/kube"
	"github.com/foldup/foldup/planner"
)

// TestKubeBuild: kube build makes the images foldup kube names for its
// VMs with the real engine, a kernel-and-initrd image and a disk image,
// their files where KubeVirt looks and owned by its qemu (107), and
// pushes them to a registry (an in-process one, listening in the test's
// namespace, where the engine reaches it as 127.0.0.1).
func TestKubeBuild(t *testing.T) {
	e := newTestEnv(t)
	kernel, initrd := vmtest.Images(t)
	disk := filepath.Join(e.dir, "cache.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-f", "qcow2", disk, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v\n%s", err, out)
	}

	var l net.Listener
	if err := e.host.Do(func() (err error) {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	reg := l.Addr().String()

	p := e.load(t, "kb", fmt.Sprintf(`name: kb
x-foldup: {kube: {registry: %q}}
vms:
  boot: {kernel: %s, initrd: %s, memory: 256m}
  cache: {image: %s, memory: 256m}
`, reg, kernel, initrd, disk))
	plan, err := planner.Compute(p, planner.Observed{}, planner.Intent{})
	if err != nil {
		t.Fatal(err)
	}
	images := kube.Images(p, plan)
	if len(images) != 2 {
		t.Fatalf("kube.Images = %+v, want a boot and a disk image", images)
	}
	x := New(e.o)
	defer x.Close()
	if err := x.KubeBuild(t.Context(), p.Name, images, true); err != nil {
		t.Fatal(err)
	}

	dc, err := client.NewClientWithOpts(client.WithHost(e.eng.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	for _, im := range images {
		files := imageFiles(t, dc, im.Ref)
		for path, src := range im.File {
			want, _ := os.ReadFile(src)
			f, ok := files[strings.TrimPrefix(path, "/")]
			switch {
			case !ok:
				t.Errorf("%s has no %s; it has %v", im.Ref, path, keys(files))
			case !bytes.Equal(f.data, want):
				t.Errorf("%s: %s is not %s", im.Ref, path, src)
			case f.uid != 107 || f.gid != 107:
				t.Errorf("%s: %s is owned by %d:%d, want 107:107", im.Ref, path, f.uid, f.gid)
			}
		}
		// The registry has it, under its name and tag.
		name, tag, _ := strings.Cut(strings.TrimPrefix(im.Ref, reg+"/"), ":")
		var tags struct{ Tags []string }
		// The connection is made in the namespace, where the registry is.
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
			e.host.Do(func() error {
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return nil
			})
			return conn, err
		}}}
		resp, err := hc.Get("http://" + reg + "/v2/" + name + "/tags/list")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&tags)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(tags.Tags, " "), tag) {
			t.Errorf("the registry has %s with tags %v, not %s", name, tags.Tags, tag)
		}
	}
}

type imageFile struct {
	data     []byte
	uid, gid int
}

// imageFiles reads an image's files from docker save: every layer's.
func imageFiles(t *testing.T, dc *client.Client, ref string) map[string]imageFile {
	t.Helper()
	rc, err := dc.ImageSave(t.Context(), []string{ref})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]imageFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(h.Name, "layer.tar") && !strings.HasPrefix(h.Name, "blobs/") {
			continue
		}
		raw, _ := io.ReadAll(tr)
		lr := tar.NewReader(bytes.NewReader(raw))
		for {
			lh, err := lr.Next()
			if err != nil {
				break
			}
			if lh.Typeflag == tar.TypeReg {
				data, _ := io.ReadAll(lr)
				out[strings.TrimPrefix(lh.Name, "./")] = imageFile{data: data, uid: lh.Uid, gid: lh.Gid}
			}
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
