//go:build linux

package executor

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/foldup/foldup/cloudinit"
	"github.com/foldup/foldup/internal/systest"
	"github.com/foldup/foldup/internal/vmtest"
	"github.com/foldup/foldup/vm"
)

const urlImageProject = `
name: %s
vms:
  vm1:
    image: %s
    sha256: "%s"
    kernel: %s
    initrd: %s
    cmdline: "console=ttyS0 quiet panic=-1"
    memory: 256m
    stop_grace_period: 1s
    cloud_init: {iso: %s}
`

// TestVMImageURL boots a VM whose disk image is downloaded (from a server
// on loopback) into the image cache and verified: the guest reads the
// image on /dev/vda, its writes land in its qcow2 overlay and leave the
// cached base as it was, a second up downloads nothing, and an image
// whose digest is wrong stops up before it makes anything. The VM's seed
// is the user's own ISO, in a directory qemu's user cannot enter: qemu
// gets it as a descriptor, and the guest sees it as its second disk.
func TestVMImageURL(t *testing.T) {
	kernel, initrd := vmtest.Images(t)
	systest.Command(t, "qemu-img")
	disk := make([]byte, 1<<20)
	copy(disk, "FOLDUP-DISK-MARKER\n")
	sum := sha256.Sum256(disk)
	digest := hex.EncodeToString(sum[:])
	disk2 := make([]byte, 1<<20)
	copy(disk2, "FOLDUP-DISK-TWO\n")
	sum2 := sha256.Sum256(disk2)
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.URL.Path == "/disk2.img" {
			http.ServeContent(w, r, "disk2.img", time.Time{}, bytes.NewReader(disk2))
			return
		}
		http.ServeContent(w, r, "disk.img", time.Time{}, bytes.NewReader(disk))
	}))
	defer srv.Close()

	e := newTestEnv(t)
	e.o.ImageCache = filepath.Join(e.dir, "images")
	private := filepath.Join(e.dir, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(private, "seed.iso")
	var seed bytes.Buffer
	if err := (cloudinit.Config{InstanceID: "i", Hostname: "vm1"}).WriteISO(&seed); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(iso, seed.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := e.upInProcess(t, "img", fmt.Sprintf(urlImageProject, "img", srv.URL+"/disk.img", digest, kernel, initrd, iso))
	cached := filepath.Join(e.o.ImageCache, "sha256-"+digest)
	if requests.Load() != 1 {
		t.Errorf("%d requests for the image, want 1", requests.Load())
	}
	f := vm.For(e.o.withDefaults().dirs(p.Name), "vm1")
	out, err := exec.Command("qemu-img", "info", "-U", "--output=json", f.Disk()).Output()
	if err != nil || !strings.Contains(string(out), `"backing-filename": "`+cached+`"`) {
		t.Errorf("the overlay's backing file is not the cached image (%v):\n%s", err, out)
	}

	g := dialGuest(t, f, "vm1")
	if got := g.must(t, "head -c 18 /dev/vda"); got != "FOLDUP-DISK-MARKER" {
		t.Errorf("the guest reads %q from its disk, want the image's FOLDUP-DISK-MARKER", got)
	}
	// ISO9660's volume identifier is at byte 32808.
	if got := g.must(t, "dd if=/dev/vdb bs=1 skip=32808 count=6 2>/dev/null"); got != "cidata" {
		t.Errorf("the guest's second disk has volume id %q, want the seed's cidata", got)
	}
	if got := g.must(t, "echo WRITTEN-BY-GUEST | dd of=/dev/vda conv=fsync 2>/dev/null; head -c 16 /dev/vda"); got != "WRITTEN-BY-GUEST" {
		t.Errorf("the guest reads %q back from its disk after writing WRITTEN-BY-GUEST", got)
	}
	if b, err := os.ReadFile(cached); err != nil || sha256.Sum256(b) != sum {
		t.Errorf("the guest's write reached the cached base image (%v)", err)
	}

	// A second up of the same project finds the image in the cache.
	p2 := e.load(t, "img", fmt.Sprintf(urlImageProject, "img", srv.URL+"/disk.img", digest, kernel, initrd, iso))
	if _, err := New(e.o).Up(t.Context(), p2, UpOptions{InProcess: true}); err != nil {
		t.Fatal(err)
	}
	if requests.Load() != 1 {
		t.Errorf("%d requests after a second up, want 1", requests.Load())
	}

	// Another image: the VM is recreated on the disk it has (as a
	// container keeps its volumes), and up says so, where the file
	// changed it.
	p3 := e.load(t, "img", fmt.Sprintf(urlImageProject, "img", srv.URL+"/disk2.img", hex.EncodeToString(sum2[:]), kernel, initrd, iso))
	var said strings.Builder
	o := e.o
	o.Events = eventsTo(&said)
	if _, err := New(o).Up(t.Context(), p3, UpOptions{InProcess: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(said.String(), "foldup.yaml:5:12: vms.vm1.image: changed: vm1 keeps its disk, an overlay on the image it was made from ("+cached+"); down -v removes the disk") {
		t.Errorf("up after the image changed said:\n%s", said.String())
	}
	out, err = exec.Command("qemu-img", "info", "-U", "--output=json", f.Disk()).Output()
	if err != nil || !strings.Contains(string(out), `"backing-filename": "`+cached+`"`) {
		t.Errorf("the disk was not kept over its first image (%v):\n%s", err, out)
	}

	// A wrong digest: a positioned error, and nothing made.
	other := strings.Repeat("0", 64)
	bad := e.load(t, "bad", fmt.Sprintf(urlImageProject, "bad", srv.URL+"/disk.img", other, kernel, initrd, iso))
	links := e.ns.MustRun(t, "ip", "-o", "link")
	_, err = New(e.o).Up(t.Context(), bad, UpOptions{InProcess: true})
	want := fmt.Sprintf("foldup.yaml:5:12: vms.vm1.image: sha256 mismatch for %s/disk.img: expected %s, got %s; nothing was changed", srv.URL, other, digest)
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("up with a wrong sha256: %v\nwant …%s", err, want)
	}
	if after := e.ns.MustRun(t, "ip", "-o", "link"); after != links {
		t.Errorf("up with a wrong sha256 changed the links:\n%s\nwere:\n%s", after, links)
	}
	if _, err := os.Stat(e.o.withDefaults().dirs(bad.Name).PlanFile()); err == nil {
		t.Error("up with a wrong sha256 wrote a plan")
	}
	if _, err := os.Stat(filepath.Join(e.o.ImageCache, "sha256-"+other)); err == nil {
		t.Error("an image that failed its check is in the cache")
	}

	// down keeps the VM's disk, as it keeps volumes; down -v removes it.
	if err := New(e.o).Down(t.Context(), p.Name, DownOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.Disk()); err != nil {
		t.Errorf("down removed the VM's disk: %v", err)
	}
	if err := New(e.o).Down(t.Context(), p.Name, DownOptions{Volumes: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.Disk()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("down -v left the VM's disk: %v", err)
	}
}

// TestPull: pull downloads a VM's image into the cache, verified, and
// makes nothing else; a second pull finds it there; a wrong digest is a
// positioned error.
func TestPull(t *testing.T) {
	img := make([]byte, 64<<10)
	copy(img, "FOLDUP-PULL\n")
	sum := sha256.Sum256(img)
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.ServeContent(w, r, "disk.img", time.Time{}, bytes.NewReader(img))
	}))
	defer srv.Close()
	e := newTestEnv(t)
	e.o.ImageCache = filepath.Join(e.dir, "images")
	const project = "name: pull\nvms:\n  vm1:\n    image: %s\n    sha256: %q\n"
	p := e.load(t, "pull", fmt.Sprintf(project, srv.URL+"/disk.img", hex.EncodeToString(sum[:])))
	if err := New(e.o).Pull(t.Context(), p, nil); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(e.o.ImageCache, "sha256-"+hex.EncodeToString(sum[:]))); err != nil || !bytes.Equal(b, img) {
		t.Errorf("the cached image: %v", err)
	}
	if err := New(e.o).Pull(t.Context(), p, nil); err != nil || requests.Load() != 1 {
		t.Errorf("a second pull: %v, %d requests in all; want 1", err, requests.Load())
	}
	if _, err := os.Stat(e.o.withDefaults().dirs("pull").PlanFile()); err == nil {
		t.Error("pull left a plan: it made the project")
	}
	bad := e.load(t, "pull", fmt.Sprintf(project, srv.URL+"/disk.img", strings.Repeat("0", 64)))
	err := New(e.o).Pull(t.Context(), bad, nil)
	if err == nil || !strings.Contains(err.Error(), "vms.vm1.image") {
		t.Errorf("pull of an image with the wrong digest: %v", err)
	}
}
