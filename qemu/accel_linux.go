package qemu

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/foldup/foldup/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// KVMDevice is where Linux puts KVM.
const KVMDevice = "/dev/kvm"

// KVMVerdict is whether VMs of the host's architecture may run under KVM
// here, and how qemu, unprivileged, reaches the device.
type KVMVerdict struct {
	Usable bool `json:"usable"`
	// Absent: this host has no KVM at all (no device, or no driver
	// behind it), so TCG is the only choice and nothing needs saying.
	Absent bool `json:"absent,omitempty"`
	// Reason says why KVM is not used, when the host has it.
	Reason string `json:"reason,omitempty"`
	// DeviceFD: qemu takes the device as an inherited descriptor
	// (-accel kvm,device=/dev/fdset/N, qemu 8.2 and later), opened by
	// foldup, and needs no group.
	DeviceFD bool `json:"device_fd,omitempty"`
	// Group, when not -1, is the one supplementary group qemu's user
	// needs to open the device: the device's own group.
	Group int `json:"group"`
	// Probe is how long the probe guest took.
	Probe time.Duration `json:"probe"`
	// Cached: the verdict was read from the cache, not probed now.
	Cached bool `json:"-"`
}

// KVMCheck finds out whether KVM works for qemu run as Cred: the device
// must be there and open to qemu's user, and a probe guest (ProbeKernel)
// must reach 64-bit mode under it within Timeout (on x86_64 hosts: the
// probe is x86 code; other hosts' KVM is trusted once it opens). Opening
// the device is not enough there: a nested paravirtual hypervisor (PVM)
// opens and creates VMs, then hangs a stock guest the moment it leaves
// real mode.
type KVMCheck struct {
	Device string              // default KVMDevice
	Binary string              // qemu for the host's architecture; default from PATH
	Cred   *syscall.Credential // qemu's user; nil: the caller
	// CacheDir keeps verdicts for the host's boot (a directory under the
	// run root, a tmpfs that a reboot empties); "" probes every time.
	CacheDir string
	Timeout  time.Duration // the probe's bound; default 2 s
	// Fresh probes again even when a verdict is cached.
	Fresh bool
}

// ProbeTimeout is how long the probe guest has to report under KVM: a few
// milliseconds of guest code after qemu's start and its firmware.
const ProbeTimeout = 2 * time.Second

// Check returns the verdict, from the cache when one was kept for the
// same qemu binary, kernel, device, user and boot.
func (c KVMCheck) Check(ctx context.Context) KVMVerdict {
	if c.Device == "" {
		c.Device = KVMDevice
	}
	if c.Timeout <= 0 {
		c.Timeout = ProbeTimeout
	}
	v := KVMVerdict{Group: -1}
	st, err := os.Stat(c.Device)
	if err != nil || st.Mode().Type() != fs.ModeDevice|fs.ModeCharDevice {
		v.Absent = true
		return v
	}
	if c.Binary == "" {
		if c.Binary, err = exec.LookPath(Binary(HostArch())); err != nil {
			v.Reason = err.Error()
			return v
		}
	}
	key := c.cacheKey(st)
	cache := ""
	if c.CacheDir != "" && key != "" {
		cache = filepath.Join(c.CacheDir, "kvm-"+key+".json")
		if !c.Fresh {
			if b, err := os.ReadFile(cache); err == nil && json.Unmarshal(b, &v) == nil {
				v.Cached = true
				return v
			}
		}
	}
	v = c.check(ctx, st)
	if cache != "" && ctx.Err() == nil {
		if b, err := json.Marshal(v); err == nil && os.MkdirAll(c.CacheDir, 0o700) == nil {
			atomicfile.WriteFile(cache, b, 0o600)
		}
	}
	return v
}

func (c KVMCheck) check(ctx context.Context, st os.FileInfo) KVMVerdict {
	v := KVMVerdict{Group: -1}
	// The driver behind the node: without it (a node left by a module
	// since unloaded, or a host without KVM) open fails with ENXIO or
	// ENODEV, and there is nothing to say.
	dev, err := os.OpenFile(c.Device, os.O_RDWR|syscall.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.ENODEV):
		v.Absent = true
		return v
	case err != nil && c.Cred == nil:
		v.Reason = fmt.Sprintf("%s: %v", c.Device, unwrapPath(err))
		return v
	}
	if dev != nil {
		defer dev.Close()
	}
	if dev != nil && DeviceFDSupported(c.Binary) {
		v.DeviceFD = true
	} else if c.Cred != nil {
		g, why := deviceGroup(st, c.Cred)
		if why != "" {
			v.Reason = why
			return v
		}
		v.Group = g
	}
	if HostArch() != "x86_64" {
		// The probe guest is x86 code: elsewhere (an aarch64 host's KVM)
		// what opens is trusted, as before the probe existed.
		v.Usable = true
		return v
	}
	start := time.Now()
	why := c.probe(ctx, v, dev)
	v.Probe = time.Since(start).Round(time.Millisecond)
	if why != "" {
		v.Reason = why
		return v
	}
	v.Usable = true
	return v
}

// deviceGroup says how cred reaches the device: -1 when it needs no
// group (it owns the device, is in its group, or others may use it),
// else the device's group, when that group may read and write it.
func deviceGroup(st os.FileInfo, cred *syscall.Credential) (int, string) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, ""
	}
	perm := st.Mode().Perm()
	switch {
	case sys.Uid == cred.Uid:
		if perm&0o600 == 0o600 {
			return -1, ""
		}
	case sys.Gid == cred.Gid:
		if perm&0o060 == 0o060 {
			return -1, ""
		}
	case perm&0o006 == 0o006:
		return -1, ""
	case perm&0o060 == 0o060:
		return int(sys.Gid), ""
	}
	return -1, fmt.Sprintf("%s is %s %s:%s, which qemu's user %s may not open (hosts usually give it to group kvm, mode 0660)",
		KVMDevice, "c"+st.Mode().Perm().String()[1:], userName(sys.Uid), groupName(sys.Gid), userName(cred.Uid))
}

// probe boots ProbeKernel under KVM as qemu will run a VM (the same user
// and group, -cpu host) and returns "" when it reached 64-bit mode in
// time, else why not.
func (c KVMCheck) probe(ctx context.Context, v KVMVerdict, dev *os.File) string {
	kernel, err := probeFile()
	if err != nil {
		return "writing the probe guest: " + err.Error()
	}
	defer kernel.Close()
	files := []*os.File{kernel}
	accel := "kvm"
	args := []string{c.Binary}
	if v.DeviceFD {
		files = append(files, dev)
		args = append(args, "-add-fd", "fd=4,set=1,opaque=kvm")
		accel = "kvm,device=/dev/fdset/1"
	}
	args = append(args, "-machine", "q35", "-accel", accel, "-cpu", "host", "-m", "32",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
		"-kernel", "/proc/self/fd/3", "-device", ProbeDebugExit)
	pctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(pctx, args[0], args[1:]...)
	cmd.Args = args
	cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = &out, &out, files
	cmd.WaitDelay = time.Second
	if c.Cred != nil {
		cred := *c.Cred
		cred.Groups = nil
		if v.Group >= 0 {
			cred.Groups = []uint32{uint32(v.Group)}
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &cred}
	}
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return "the probe guest stopped before reaching 64-bit mode (qemu exited 0: the guest reset)"
	case pctx.Err() != nil && ctx.Err() == nil:
		switch o := out.String(); {
		case strings.Contains(o, ProbeMarker64):
			return fmt.Sprintf("a probe guest reached 64-bit mode under KVM but ran too slowly to finish within %v", c.Timeout)
		case strings.Contains(o, ProbeMarker32):
			return fmt.Sprintf("a probe guest reached 32-bit mode under KVM, not 64-bit mode, within %v", c.Timeout)
		}
		return fmt.Sprintf("a probe guest printed nothing under KVM within %v", c.Timeout)
	case errors.As(err, &exit) && exit.ExitCode() == ProbeExitCode:
		return ""
	}
	if w := lastQemuLine(out.String()); w != "" {
		return "the probe guest's qemu failed: " + w
	}
	return "the probe guest's qemu failed: " + err.Error()
}

// probeFile is ProbeKernel in an unlinked temporary file, readable by
// others (qemu opens /proc/self/fd/3, which checks the file's mode).
func probeFile() (*os.File, error) {
	f, err := os.CreateTemp("", "foldup-kvm-probe-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	if _, err := f.Write(ProbeKernel()); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// lastQemuLine is the last line qemu wrote that says something, without
// Debian's notes on missing display modules.
func lastQemuLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" && !strings.Contains(l, "module ui-") {
			return l
		}
	}
	return ""
}

// cacheKey names what could change the verdict: the boot, the kernel, the
// qemu binary, the device node and the user qemu runs as.
func (c KVMCheck) cacheKey(st os.FileInfo) string {
	bin, err := os.Stat(c.Binary)
	if err != nil {
		return ""
	}
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	var uts unix.Utsname
	unix.Uname(&uts)
	h := sha256.New()
	fmt.Fprintf(h, "v1\n%s\n%s\n%s\n", bytes.TrimSpace(boot), unix.ByteSliceToString(uts.Release[:]), c.Binary)
	for _, fi := range []os.FileInfo{bin, st} {
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			fmt.Fprintf(h, "%d %d %d %d %d %d %d %d\n", sys.Dev, sys.Ino, sys.Mode, sys.Uid, sys.Gid, sys.Rdev, sys.Size, fi.ModTime().UnixNano())
		}
	}
	if c.Cred != nil {
		fmt.Fprintf(h, "%d %d\n", c.Cred.Uid, c.Cred.Gid)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

var versionRE = regexp.MustCompile(`version (\d+)\.(\d+)`)

// DeviceFDSupported reports whether qemu at bin takes the KVM device as a
// path of its own choosing (-accel kvm,device=, in qemu since 8.2), so
// that it can be handed an fd set instead of opening /dev/kvm. qemu 7.2
// (Debian 12's) opens /dev/kvm by name.
func DeviceFDSupported(bin string) bool {
	out, err := exec.Command(bin, "-version").Output()
	if err != nil {
		return false
	}
	return versionAtLeast(string(out), 8, 2)
}

func versionAtLeast(out string, major, minor int) bool {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return false
	}
	ma, _ := strconv.Atoi(m[1])
	mi, _ := strconv.Atoi(m[2])
	return ma > major || ma == major && mi >= minor
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		return u.Username
	}
	return strconv.Itoa(int(uid))
}

func groupName(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.Itoa(int(gid))); err == nil {
		return g.Name
	}
	return strconv.Itoa(int(gid))
}
