package main

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/foldup/foldup/internal/dockertest"
	"github.com/foldup/foldup/internal/foldtest"
	"github.com/foldup/foldup/internal/vmtest"
	"github.com/foldup/foldup/qemu"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestEngineScripts runs the CLI scenarios of testdata/engine against a
// private Docker engine in a fresh network namespace: `foldup-in-ns` is
// foldup run inside that namespace, with the engine as DOCKER_HOST and
// the script's own state directories. Whatever a script leaves up is
// taken down (down -v --force) when it ends, pass or fail.
func TestEngineScripts(t *testing.T) {
	env := foldtest.New(t)
	ns, eng := env.NS, env.Engine
	vmImages := vmtest.Have()
	// [kvmfallback]: this host has KVM, and it cannot run qemu's VMs as
	// foldup runs them (this project's machines: a nested PVM), so VMs
	// fall back to TCG with a warning.
	kvmFallback := false
	if vmImages {
		var cred *syscall.Credential
		if u, err := user.Lookup("nobody"); err == nil && os.Geteuid() == 0 {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		}
		v := qemu.KVMCheck{Cred: cred}.Check(t.Context())
		kvmFallback = !v.Usable && !v.Absent
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/engine",
		// [vm]: qemu and the test images (scripts/images.sh) are here.
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "vm":
				return vmImages, nil
			case "kvmfallback":
				return kvmFallback, nil
			}
			return false, nil
		},
		UpdateScripts: *update,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// multiboot FILE: writes vmtest's unikernel to FILE.
			"multiboot": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: multiboot FILE")
				}
				ts.Check(os.WriteFile(ts.MkAbs(args[0]), vmtest.MultibootEcho(), 0o644))
			},
		},
		Setup: func(env *testscript.Env) error {
			state := filepath.Join(env.WorkDir, ".state")
			// qemu runs as nobody: it must get through to its VM's
			// directories.
			for d := env.WorkDir; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
				os.Chmod(d, 0o711)
			}
			env.Setenv("DOCKER_HOST", eng.Host)
			env.Setenv("FOLDUP_TEST_NETNS", ns.Name)
			env.Setenv("FOLDUP_STATE_ROOT", state)
			env.Setenv("FOLDUP_RUN_ROOT", filepath.Join(env.WorkDir, ".run"))
			env.Setenv("BUSYBOX_IMAGE", dockertest.Image)
			env.Setenv("TEST_KERNEL", filepath.Join(vmtest.Dir(), "vmlinuz"))
			env.Setenv("TEST_INITRD", filepath.Join(vmtest.Dir(), "initrd.img"))
			env.Setenv("TEST_INITRD_AGENT", filepath.Join(vmtest.Dir(), "initrd-agent.img"))
			env.Defer(func() {
				projects, _ := os.ReadDir(state)
				for _, p := range projects {
					cmd := exec.Command("ip", "netns", "exec", ns.Name, "foldup", "-p", p.Name(), "down", "-v", "--force")
					cmd.Env = env.Vars
					if out, err := cmd.CombinedOutput(); err != nil {
						env.T().Log("down at the end of the script: ", err, "\n", string(out))
					}
				}
			})
			return nil
		},
	})
}
