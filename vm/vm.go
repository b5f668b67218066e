//go:build linux

package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/qemu"
	"github.com/foldup/foldup/spec"
	"github.com/foldup/foldup/state"
)

// A VM's files: sockets and pid under the run directory, its disk
// Overlay, console log and qemu's own log under the state directory (kept
// by down, removed by down -v).
type Files struct{ Run, State string }

func For(d state.Dirs, name string) Files {
	return Files{Run: filepath.Join(d.Run, "vm", name), State: filepath.Join(d.State, "vm", name)}
}

func (f Files) QMP() string        { return filepath.Join(f.Run, "qmp") }
func (f Files) Events() string     { return filepath.Join(f.Run, "events") }
func (f Files) Agent() string      { return filepath.Join(f.Run, "qga") }
func (f Files) LockFile() string   { return f.Run + ".lock" }
func (f Files) Console() string    { return filepath.Join(f.Run, "console") }
func (f Files) PidFile() string    { return filepath.Join(f.Run, "qemu.pid") }
func (f Files) HealthFile() string { return filepath.Join(f.Run, "health.json") }
func (f Files) ConsoleLog() string { return filepath.Join(f.State, "console.log") }
func (f Files) QemuLog() string    { return filepath.Join(f.State, "qemu.log") }
func (f Files) Disk() string       { return filepath.Join(f.State, "disk.qcow2") }
func (f Files) RecordFile() string { return filepath.Join(f.State, "vm.json") }
func (f Files) Seed() string       { return filepath.Join(f.State, "seed.iso") }
func (f Files) EFIVars() string    { return filepath.Join(f.State, "efivars.fd") }

// Record is what the supervisor and the other verbs need of a VM beyond
// the plan: how to start its qemu again, its health check, stop grace,
// restart policy, and how its last qemu ended.
type Record struct {
	Member  string            `json:"member"`
	Image   string            `json:"image"` // the disk image, or the kernel
	PID     int               `json:"pid"`
	Health  *spec.HealthCheck `json:"health,omitempty"`
	Grace   time.Duration     `json:"grace"`
	Addrs   []netip.Addr      `json:"addrs"`
	Started time.Time         `json:"started"`
	Created time.Time         `json:"created,omitzero"` // its first start`
	// ConsoleOffset is where this boot's output begins in the console log.
	ConsoleOffset int64  `json:"console_offset"`
	Restart       string `json:"restart,omitempty"` // no, always, on-failure[:N], unless-stopped
	Launch        Launch `json:"launch"`
	// ConfigHash is the plan's fingerprint of the VM's configuration when
	// up started it: the next up recreates the VM only if it changed.
	ConfigHash string `json:"config_hash"`

	// Stopped: a user stopped it (stop, down, or up recreating it); no
	// restart policy brings it back.
	Stopped  bool      `json:"stopped,omitempty"`
	Restarts int       `json:"restarts,omitempty"`
	Exited   time.Time `json:"exited,omitzero"` // when its last qemu ended, as the supervisor saw
	ExitCode int       `json:"exit_code,omitempty"`
	Exit     string    `json:"exit,omitempty"` // how: guest-shutdown, host-signal, crashed, ...
}

// Launch is how up started a VM's qemu, kept so that start and the
// supervisor's restart policy start it the same way.
type Launch struct {
	// Config has the user's kernel and initrd (given to qemu as
	// descriptors; the kernel through its PVH vmlinux), the taps (opened
	// again each time) and every path qemu opens itself.
	Config qemu.Config `json:"config"`
	// PassSeed: the seed is the user's own ISO, given as a descriptor.
	PassSeed bool `json:"pass_seed,omitempty"`
	// Groups are qemu's supplementary groups: none, or /dev/kvm's group
	// when qemu reaches KVM through it.
	Groups []uint32 `json:"groups,omitempty"`
	// KVMDevice, when set, is opened by foldup and given to qemu as a
	// descriptor (a qemu that takes -accel kvm,device=).
	KVMDevice string `json:"kvm_device,omitempty"`
}

// Health is a VM's health as the supervisor's checks found it, in
// Docker's words: starting, healthy, unhealthy.
type Health struct {
	Status        string    `json:"status"`
	FailingStreak int       `json:"failing_streak"`
	Last          string    `json:"last,omitempty"` // the last probe's result
	At            time.Time `json:"at"`
}

// QemuUser is the unprivileged user qemu runs as (nobody), and whether
// one was found; without it qemu runs as the caller.
func QemuUser() (*syscall.Credential, bool) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, false
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, true
}

// Running returns the pid of the VM's qemu if it runs.
func Running(f Files) int {
	pid := state.ReadPid(f.PidFile())
	if pid <= 0 || !state.Alive(pid) {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(b), "qemu-system-") {
		return 0 // the pid was reused
	}
	return pid
}

// Check validates what a VM needs before anything is made: qemu for
// its architecture and qemu-img for a disk image.
func Check(p *spec.Project, name string) error {
	v := p.VMs[name]
	if _, err := exec.LookPath(qemu.Binary(v.Arch)); err != nil {
		return p.KeyErrorf([]string{"vms", name}, "%s is not installed (Debian: %s)", qemu.Binary(v.Arch), qemu.Package(v.Arch))
	}
	if v.Kernel == "" {
		switch v.Arch {
		case "aarch64":
			for _, f := range []string{UEFICode, UEFIVars} {
				if _, err := os.Stat(f); err != nil {
					return p.Errorf([]string{"vms", name, "image"}, "an aarch64 disk image boots through UEFI, and %s is missing (Debian: qemu-efi-aarch64)", f)
				}
			}
		case "riscv64":
			return p.Errorf([]string{"vms", name, "image"}, "a riscv64 VM boots a kernel here (kernel:, with the image as its disk); foldup sets up no firmware that boots a riscv64 disk")
		}
	}
	if v.Image != "" {
		if _, err := exec.LookPath("qemu-img"); err != nil {
			return p.Errorf([]string{"vms", name, "image"}, "qemu-img is not installed (Debian: qemu-utils)")
		}
	}
	return nil
}

// UEFI for aarch64 disk images, from Debian's qemu-efi-aarch64: the code,
// read-only, and the variable store each VM gets a copy of.
const (
	UEFICode = "/usr/share/AAVMF/AAVMF_CODE.fd"
	UEFIVars = "/usr/share/AAVMF/AAVMF_VARS.fd"
)

// Start starts a VM's qemu as rec.Launch says and records it: its pid,
// when it started, and that no user stopped it. The caller holds the VM's
// lock. qemu, unprivileged, gets what it may not open itself as inherited
// descriptors: its taps (as libvirt passes them), the user's kernel,
// initrd and seed ISO, which may sit in directories it cannot reach.
func Start(ctx context.Context, host *network.Host, f Files, rec *Record) error {
	cfg := rec.Launch.Config
	cfg.NICs = nil
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	nextFD := func(f *os.File) int {
		files = append(files, f)
		return 2 + len(files)
	}
	for _, nic := range rec.Launch.Config.NICs {
		var tap *os.File
		err := host.Do(func() (err error) {
			tap, err = qemu.OpenTap(nic.Tap)
			return err
		})
		if err != nil {
			return err
		}
		cfg.NICs = append(cfg.NICs, qemu.NIC{Tap: nic.Tap, FD: nextFD(tap), MAC: nic.MAC})
	}
	var err error
	if cfg.Kernel != "" {
		boot, err := qemu.BootKernel(cfg.Kernel, kernelCache())
		if err != nil {
			return err
		}
		if cfg.Kernel, err = passFile(boot, nextFD); err != nil {
			return err
		}
	}
	if cfg.Initrd != "" {
		if cfg.Initrd, err = passFile(cfg.Initrd, nextFD); err != nil {
			return err
		}
	}
	if rec.Launch.PassSeed {
		fh, err := os.Open(cfg.Seed)
		if err != nil {
			return err
		}
		cfg.Seed, cfg.SeedFD = "", nextFD(fh)
	}
	if rec.Launch.KVMDevice != "" {
		dev, err := os.OpenFile(rec.Launch.KVMDevice, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		cfg.KVMDeviceFD = nextFD(dev)
	}
	cred, _ := QemuUser()
	if cred != nil {
		cred.Groups = rec.Launch.Groups
	}
	rec.ConsoleOffset = 0
	if st, err := os.Stat(f.ConsoleLog()); err == nil {
		rec.ConsoleOffset = st.Size()
	}
	pid, err := qemu.Start(ctx, cfg, cred, files, f.QemuLog())
	if err != nil {
		// Recorded, so that ps -a lists it, exited with qemu's status, as
		// Docker lists a container that failed to start.
		code := 1
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() > 0 {
			code = ee.ExitCode()
		}
		rec.PID, rec.Started, rec.Stopped = 0, time.Now(), false
		rec.Exited, rec.ExitCode, rec.Exit = rec.Started, code, "failed to start"
		WriteRecord(f, rec)
		return fmt.Errorf("%w (its log: %s)", err, f.QemuLog())
	}
	rec.PID, rec.Started, rec.Stopped = pid, time.Now(), false
	if rec.Created.IsZero() {
		rec.Created = rec.Started
	}
	rec.Exited, rec.ExitCode, rec.Exit = time.Time{}, 0, ""
	os.Remove(f.HealthFile())
	if err := WriteRecord(f, rec); err != nil {
		return err
	}
	LogEvent(f, "start", map[string]string{"pid": strconv.Itoa(pid)})
	return nil
}

// Lock takes a VM's own lock, held by whoever starts or stops its qemu
// (up, stop, start, down, the supervisor's restarts), so that none of them
// acts on a state another is changing.
func Lock(f Files) (func(), error) {
	fh, err := os.OpenFile(f.LockFile(), os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX); err != nil {
		fh.Close()
		return nil, err
	}
	return func() { fh.Close() }, nil
}

// MarkStopped records that a user stopped the VM, before its qemu is
// stopped, so that the supervisor does not restart it. A VM never
// started (no record) has nothing to record; a record that cannot be
// written is an error, and the VM is not stopped: the supervisor would
// start it again.
func MarkStopped(f Files) error {
	rec, err := ReadRecord(f)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", f.RecordFile(), err)
	}
	if rec.Stopped {
		return nil
	}
	rec.Stopped = true
	if err := WriteRecord(f, rec); err != nil {
		return fmt.Errorf("recording that the VM is stopped: %w", err)
	}
	return nil
}

func WriteRecord(f Files, rec *Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return state.WriteFileAtomic(f.RecordFile(), b)
}

// passFile opens a file for qemu, which may not reach it itself, and
// names it as qemu will see the descriptor it inherits. qemu opens that
// name again (its kernel loader takes paths, not fd sets), which skips
// the directories but not the file's own mode: the file must be readable
// by others.
func passFile(path string, nextFD func(*os.File) int) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	if st, err := fh.Stat(); err == nil && st.Mode().Perm()&0o004 == 0 {
		fh.Close()
		return "", fmt.Errorf("%s (mode %v) is not readable by qemu's unprivileged user: make it readable by others (chmod o+r); its directory may stay private", path, st.Mode().Perm())
	}
	return fmt.Sprintf("/proc/self/fd/%d", nextFD(fh)), nil
}

func Grace(v *spec.VM) time.Duration {
	if v.StopGracePeriod != nil {
		return time.Duration(*v.StopGracePeriod)
	}
	return 10 * time.Second
}

// CopyOnce copies src to dst, owned by uid:gid, unless dst exists: a
// VM's own copy of a file it changes (its UEFI variable store).
func CopyOnce(src, dst string, uid, gid int) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := state.WriteFileAtomic(dst+".tmp", b); err != nil {
		return err
	}
	if err := os.Chown(dst+".tmp", uid, gid); err != nil {
		return err
	}
	return os.Rename(dst+".tmp", dst)
}

// kernelCache is where extracted PVH kernels are kept: readable by the
// unprivileged qemu user, shared by every project.
func kernelCache() string {
	if os.Geteuid() == 0 {
		return "/var/cache/foldup/kernels"
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "foldup", "kernels")
}

// Overlay makes the VM's disk, a qcow2 overlay over its read-only base
// image, once: it is kept across down and recreation (removed by down -v).
// When the disk exists over another base (the VM's image: changed since),
// it is kept as it is, and that base is returned: the caller says so.
func Overlay(ctx context.Context, base, path string, uid, gid int) (previous string, err error) {
	if _, err := os.Stat(path); err == nil {
		info, err := imageInfo(ctx, path)
		if err != nil {
			return "", err
		}
		old := info.FullBacking
		if old == "" {
			old = info.Backing
		}
		if abs, err := filepath.Abs(base); err == nil && old != abs && old != base {
			return old, nil
		}
		return "", nil
	}
	info, err := imageInfo(ctx, base)
	if err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", info.Format, "-b", base, tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("qemu-img create: %v: %s", err, out)
	}
	if err := os.Chown(tmp, uid, gid); err != nil {
		return "", err
	}
	return "", os.Rename(tmp, path)
}

type diskInfo struct {
	Format      string `json:"format"`
	Backing     string `json:"backing-filename"`
	FullBacking string `json:"full-backing-filename"`
}

// imageInfo is what qemu-img says of a disk image (-U: a running qemu may
// hold it).
func imageInfo(ctx context.Context, path string) (diskInfo, error) {
	var info diskInfo
	out, err := exec.CommandContext(ctx, "qemu-img", "info", "-U", "--output=json", path).Output()
	if err != nil {
		return info, fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	return info, json.Unmarshal(out, &info)
}

// lockMade takes a VM's lock, if up ever made the VM here; nil and no
// error when it did not.
func lockMade(f Files) (func(), error) {
	if _, err := os.Stat(filepath.Dir(f.Run)); err != nil {
		return nil, nil // never started here
	}
	return Lock(f)
}

// Stop stops a VM's qemu, if it runs: power button, grace (a negative
// one: the VM's own stop_grace_period), quit, kill. It stays stopped: no
// restart policy brings it back.
func Stop(ctx context.Context, d state.Dirs, name string, grace time.Duration) (bool, error) {
	f := For(d, name)
	unlock, err := lockMade(f)
	if unlock == nil {
		return false, err
	}
	defer unlock()
	if err := MarkStopped(f); err != nil {
		return false, err
	}
	pid := Running(f)
	if pid == 0 {
		return false, nil
	}
	if rec, err := ReadRecord(f); err == nil && grace < 0 {
		grace = rec.Grace
	}
	err = StopQemu(ctx, f, pid, max(grace, 0))
	os.Remove(f.PidFile())
	return true, err
}

// StopQemu stops a VM's qemu at pid, under the VM's lock (qemu.Stop), and
// records how it ended, as Docker reports a stopped container: exit 0
// when the guest powered off within grace, 137 when it was forced off
// (Docker's SIGKILL after the grace period). The supervisor, which would
// see only QMP's quit, then leaves the record as it is.
func StopQemu(ctx context.Context, f Files, pid int, grace time.Duration) error {
	graceful, err := qemu.Stop(ctx, f.QMP(), pid, grace)
	if errors.Is(err, qemu.ErrNotRunning) {
		return nil
	}
	if err != nil {
		return err
	}
	rec, rerr := ReadRecord(f)
	if rerr != nil || rec.PID != pid {
		return nil
	}
	defer func() { LogEvent(f, "die", map[string]string{"exitCode": strconv.Itoa(rec.ExitCode)}) }()
	rec.Exited, rec.ExitCode, rec.Exit = time.Now(), ExitGuest, "guest-shutdown"
	switch {
	case !graceful && grace == 0:
		rec.ExitCode, rec.Exit = ExitCrashed, "killed"
	case !graceful:
		rec.ExitCode, rec.Exit = ExitCrashed, fmt.Sprintf("forced off: the guest did not power off within %s", grace)
	}
	return WriteRecord(f, rec)
}

// StartStopped starts a VM made by up and since stopped, as up started
// it; one that runs is left alone.
func StartStopped(ctx context.Context, host *network.Host, d state.Dirs, name string) (bool, error) {
	f := For(d, name)
	rec, err := ReadRecord(f)
	if err != nil {
		return false, fmt.Errorf("vm %s was never started here: use up", name)
	}
	unlock, err := Lock(f)
	if err != nil {
		return false, err
	}
	defer unlock()
	if Running(f) != 0 {
		return false, nil
	}
	if rec, err = ReadRecord(f); err != nil {
		return false, err
	}
	return true, Start(ctx, host, f, rec)
}

// ReadHealth reads a VM's health as the supervisor last wrote it; nil when
// it has no check (or none ran yet).
func ReadHealth(f Files) *Health {
	b, err := os.ReadFile(f.HealthFile())
	if err != nil {
		return nil
	}
	var h Health
	if json.Unmarshal(b, &h) != nil {
		return nil
	}
	return &h
}

func ReadRecord(f Files) (*Record, error) {
	b, err := os.ReadFile(f.RecordFile())
	if err != nil {
		return nil, err
	}
	var rec Record
	return &rec, json.Unmarshal(b, &rec)
}

// Wait waits until a VM meets a depends_on condition: started (qemu
// runs), healthy (its health check passed, as the supervisor reports) or
// completed successfully (the guest powered off: exit 0).
func Wait(ctx context.Context, f Files, name, cond string) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		running := Running(f) != 0
		switch cond {
		case "", "service_started":
			if running {
				return nil
			}
			return fmt.Errorf("vm %s is not running", name)
		case "service_healthy":
			rec, err := ReadRecord(f)
			if err != nil {
				return fmt.Errorf("vm %s: %w", name, err)
			}
			if rec.Health == nil || rec.Health.Disable {
				return fmt.Errorf("vm %s has no healthcheck, so it cannot become healthy", name)
			}
			if h := ReadHealth(f); h != nil {
				switch h.Status {
				case "healthy":
					return nil
				case "unhealthy":
					return fmt.Errorf("vm %s is unhealthy: %s", name, h.Last)
				}
			}
			if !running {
				return fmt.Errorf("vm %s stopped before it was healthy", name)
			}
		case "service_completed_successfully":
			// As Docker's for a container: its last qemu ended, and the
			// guest powered off (exit 0). The supervisor records how
			// it ended; until it has, the VM is still ending.
			rec, err := ReadRecord(f)
			if err != nil {
				return fmt.Errorf("vm %s: %w", name, err)
			}
			switch {
			case running:
			case !rec.Exited.IsZero() && rec.ExitCode == 0:
				return nil
			case !rec.Exited.IsZero():
				return fmt.Errorf("vm %s exited with code %d (%s)", name, rec.ExitCode, rec.Exit)
			case rec.Stopped:
				return fmt.Errorf("vm %s was stopped before it completed", name)
			}
		default:
			return fmt.Errorf("depends_on condition %q is not supported for vm %s", cond, name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// RunningAccel is what a running VM's qemu says it runs under (QMP
// query-kvm): kvm or tcg; what it was started with when qemu does not
// answer.
func RunningAccel(f Files, rec *Record) string {
	kvm := rec.Launch.Config.KVM
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if q, err := qemu.DialQMP(ctx, f.QMP()); err == nil {
		if on, err := q.KVM(ctx); err == nil {
			kvm = on
		}
		q.Close()
	}
	if kvm {
		return "kvm"
	}
	return "tcg"
}

// AgentOpen reports whether a running VM's guest holds its
// qemu-guest-agent channel open: an agent listens there. A qemu started
// without the channel, or one that does not answer in two seconds, has
// none.
func AgentOpen(ctx context.Context, f Files) bool {
	rec, err := ReadRecord(f)
	if err != nil || rec.Launch.Config.Agent == "" || Running(f) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	q, err := qemu.DialQMP(ctx, f.QMP())
	if err != nil {
		return false
	}
	defer q.Close()
	open, err := q.AgentOpen(ctx)
	return err == nil && open
}

// WantsRestart applies a stopped VM's restart policy to how it ended.
func WantsRestart(rec *Record) bool {
	if rec.Stopped || rec.Exited.IsZero() {
		return false
	}
	policy, arg, _ := strings.Cut(rec.Restart, ":")
	switch policy {
	case "always", "unless-stopped":
		return true
	case "on-failure":
		if rec.ExitCode == 0 {
			return false
		}
		n, err := strconv.Atoi(arg)
		return err != nil || n <= 0 || rec.Restarts < n
	}
	return false
}

// Observe takes one probe's result into h, by Docker's rules: a success
// makes it healthy; a failure counts, unless still in the start period,
// and `retries` of them in a row make it unhealthy.
func (h *Health) Observe(result string, err error, inStartPeriod bool, retries int) {
	h.At = time.Now()
	if err == nil {
		h.Status, h.FailingStreak, h.Last = "healthy", 0, result
		return
	}
	h.Last = err.Error()
	if !inStartPeriod {
		h.FailingStreak++
	}
	if h.FailingStreak >= retries {
		h.Status = "unhealthy"
	}
}

// Exit codes as Docker would report them for a container that ended the
// same way.
const (
	ExitGuest   = 0   // the guest powered off
	ExitQuit    = 0   // a QMP quit that was not a stop
	ExitSignal  = 143 // SIGTERM/SIGINT to qemu
	ExitCrashed = 137 // no SHUTDOWN event: killed, or qemu crashed
	ExitPanic   = 1   // guest-panic
	ExitUnknown = 255 // ended while no supervisor watched
)
