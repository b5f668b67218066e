package dockertest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/foldup/foldup/internal/nstest"
	"github.com/foldup/foldup/internal/systest"
)

// PodmanUlimits are the ulimits a container needs under this Podman when
// the host's hard limits are lower than the ones Podman's Docker API gives
// every container (nofile 1048576; a test machine may allow 20,000), which
// a process without CAP_SYS_RESOURCE cannot raise. In Compose syntax.
const PodmanUlimits = "{nofile: 16384, nproc: 4096}"

// StartPodman starts Podman's Docker-compatible API service inside ns and
// imports Image into it. All of its state is the test's: its storage and
// run root in a temporary directory, and the host-wide directories Podman,
// its CNI plugins and its OCI runtime write to (network configurations,
// IPAM leases, caches, runc's or crun's container state) hidden under
// tmpfs mounts in the mount namespace it runs in.
// It is stopped in t.Cleanup, its containers removed first.
func StartPodman(t testing.TB, ns *nstest.NS) *Engine {
	t.Helper()
	systest.Root(t)
	systest.Command(t, "podman")
	systest.Command(t, "busybox")
	dir, err := os.MkdirTemp("/tmp", "fu-p-")
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{NS: ns, Dir: dir, Host: "unix://" + dir + "/podman.sock"}
	conf := `[engine]
tmp_dir = "` + dir + `/tmp"
events_logger = "file"
cgroup_manager = "cgroupfs"
[network]
network_backend = "cni"
network_config_dir = "` + dir + `/cni"
`
	if err := os.WriteFile(filepath.Join(dir, "containers.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// A directory that must be made on the host to mount on goes at the
	// end (empty: what was written went to the tmpfs).
	hidden := []string{"/var/lib/cni", "/var/lib/containers", "/etc/cni/net.d", "/run/libpod", "/run/containers", "/run/runc", "/run/crun"}
	var made []string
	for _, d := range hidden {
		if _, err := os.Stat(d); os.IsNotExist(err) {
			made = append(made, d)
		}
	}
	e.script = cgroupMounts(t) +
		"for d in " + strings.Join(hidden, " ") + "; do mkdir -p $d && mount -t tmpfs -o mode=0755 tmpfs $d; done\n" +
		"export CONTAINERS_CONF=" + dir + "/containers.conf\n" +
		"exec podman --root " + dir + "/root --runroot " + dir + "/run system service --time=0 " + e.Host
	e.logName = "podman.log"
	e.run(t, func() {
		for _, d := range made {
			os.Remove(d)
		}
	})
	return e
}
