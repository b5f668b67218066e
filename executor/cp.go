//go:build linux

package executor

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/vm"
)

// Copy copies a file or directory between the host and a VM, as docker
// compose cp does for a container: one of src and dst is MEMBER:PATH.
// dst, when it is a directory, receives the copy under src's name;
// otherwise the copy becomes dst. It goes as a tar stream over SSH (the
// guest needs tar and sh, as the user foldup's seed makes), or through
// qemu-guest-agent (whole, up to the agent's 16 MiB of output).
func (x *Executor) Copy(ctx context.Context, project, src, dst string) error {
	plan, err := state.LoadPlan(x.o.dirs(project).PlanFile())
	if err != nil {
		return err
	}
	if plan == nil {
		return fmt.Errorf("project %s is not up here", project)
	}
	sm, sp, sRemote := splitRemote(plan, src)
	dm, dp, dRemote := splitRemote(plan, dst)
	switch {
	case sRemote && dRemote:
		return errors.New("copying between two members is not supported: copy to the host first")
	case !sRemote && !dRemote:
		return errors.New("one of source and destination must be MEMBER:PATH")
	case dRemote:
		return x.copyTo(ctx, project, plan, dm, src, dp)
	}
	return x.copyFrom(ctx, project, plan, sm, sp, dst)
}

// splitRemote reads MEMBER:PATH, where MEMBER is one of the plan's VMs.
func splitRemote(plan *planner.Plan, arg string) (*planner.Member, string, bool) {
	name, p, ok := strings.Cut(arg, ":")
	if !ok || strings.ContainsRune(name, '/') {
		return nil, arg, false
	}
	for _, m := range plan.Members {
		if m.Name == name || m.Service == name {
			return m, p, true
		}
	}
	return nil, arg, false
}

func (x *Executor) copyTo(ctx context.Context, project string, plan *planner.Plan, m *planner.Member, src, dst string) error {
	if m.Kind != planner.VM {
		return fmt.Errorf("%s is a container: docker cp copies to it", m.Name)
	}
	if err := x.canCopy(ctx, project, m); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := tarTree(&buf, src); err != nil {
		return err
	}
	base := filepath.Base(filepath.Clean(src))
	script := `set -e; d=$1 b=$2
if [ -d "$d" ]; then exec tar -C "$d" -xf -; fi
t=$(mktemp -d "$(dirname "$d")/.foldup-cp.XXXXXX"); tar -C "$t" -xf -; mv "$t/$b" "$d"; rmdir "$t"`
	return x.vmRun(ctx, project, plan, m, []string{"sh", "-c", script, "sh", dst, base}, &buf, io.Discard)
}

func (x *Executor) copyFrom(ctx context.Context, project string, plan *planner.Plan, m *planner.Member, src, dst string) error {
	if m.Kind != planner.VM {
		return fmt.Errorf("%s is a container: docker cp copies from it", m.Name)
	}
	if err := x.canCopy(ctx, project, m); err != nil {
		return err
	}
	var buf bytes.Buffer
	src = path.Clean(src)
	if err := x.vmRun(ctx, project, plan, m, []string{"tar", "-C", path.Dir(src), "-cf", "-", path.Base(src)}, nil, &buf); err != nil {
		return err
	}
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		return untar(&buf, dst)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(dst)), ".foldup-cp.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := untar(&buf, tmp); err != nil {
		return err
	}
	return os.Rename(filepath.Join(tmp, path.Base(src)), dst)
}

// canCopy: a copy needs SSH or the guest agent; the serial console
// carries no binary stream.
func (x *Executor) canCopy(ctx context.Context, project string, m *planner.Member) error {
	d := x.o.dirs(project)
	_, err := x.wayIn(d, m)
	if errors.Is(err, errNoWayIn) && vm.AgentOpen(ctx, vm.For(d, m.Name)) {
		return nil
	}
	return err
}

// vmRun runs argv in a VM as exec does, its stderr in the error.
func (x *Executor) vmRun(ctx context.Context, project string, plan *planner.Plan, m *planner.Member, argv []string, in io.Reader, out io.Writer) error {
	var errb bytes.Buffer
	code, err := x.execVM(ctx, project, plan, m, argv, ExecOptions{Stdin: in, Stdout: out, Stderr: &errb})
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("vm %s: %s exited %d: %s", m.Name, argv[0], code, strings.TrimSpace(errb.String()))
	}
	return nil
}

// tarTree writes src (a file or a directory, recursively) as a tar stream
// whose one top entry is src's base name.
func tarTree(w io.Writer, src string) error {
	tw := tar.NewWriter(w)
	root := filepath.Clean(src)
	parent := filepath.Dir(root)
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(parent, p)
		h.Name = filepath.ToSlash(rel)
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// untar extracts a tar stream under dir, refusing any entry that would
// land outside it, by its name or through a symbolic link the stream made
// before (a guest is not trusted with the host's files).
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if !filepath.IsLocal(name) {
			return fmt.Errorf("tar entry %q leaves the destination", h.Name)
		}
		p := filepath.Join(dir, name)
		if err := noSymlinkOnWay(dir, name); err != nil {
			return err
		}
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			os.Remove(p) // replaced, not written through
		}
		mode := fs.FileMode(h.Mode).Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		}
	}
}

// noSymlinkOnWay refuses a name under dir whose parent directories,
// below dir, include a symbolic link.
func noSymlinkOnWay(dir, name string) error {
	p := dir
	parts := strings.Split(filepath.Dir(name), string(filepath.Separator))
	for _, part := range parts {
		if part == "." || part == "" {
			continue
		}
		p = filepath.Join(p, part)
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("tar entry %q goes through the symbolic link %s", name, p)
		}
	}
	return nil
}

// SSHArgs are the arguments of an ssh command that logs in to a VM as
// the user foldup's seed made, with the project's key (foldup ssh).
func (x *Executor) SSHArgs(project, member string) ([]string, error) {
	d := x.o.dirs(project)
	plan, err := state.LoadPlan(d.PlanFile())
	if err != nil {
		return nil, err
	}
	if plan == nil {
		return nil, fmt.Errorf("project %s is not up here", project)
	}
	m, _, ok := splitRemote(plan, member+":")
	if !ok || m.Kind != planner.VM {
		return nil, fmt.Errorf("no such VM: %s (ssh reaches VMs; exec reaches containers)", member)
	}
	addr, err := x.wayIn(d, m)
	if err != nil {
		return nil, err
	}
	return []string{"-i", vm.KeyFile(d), "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", vm.SSHUser + "@" + addr.String()}, nil
}
