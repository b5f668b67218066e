package dockertest

import (
	"strings"
	"testing"

	"github.com/docker/docker/api/types/image"
	"github.com/foldup/foldup/internal/nstest"
)

func TestEngine(t *testing.T) {
	ns := nstest.New(t)
	e := Start(t, ns)
	imgs, err := e.Client.ImageList(t.Context(), image.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || len(imgs[0].RepoTags) != 1 || imgs[0].RepoTags[0] != Image {
		t.Fatalf("images = %+v, want only %s", imgs, Image)
	}
	// The engine runs inside the test's namespace: its containers do too.
	out := ns.MustRun(t, "docker", "-H", e.Host, "run", "--rm", "--network", "none", Image, "echo", "hello from busybox")
	if !strings.Contains(out, "hello from busybox") {
		t.Fatalf("docker run printed %q", out)
	}
}
