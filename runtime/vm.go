//go:build linux

package runtime

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/go-units"
	"github.com/foldup/foldup/cloudinit"
	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/qemu"
	"github.com/foldup/foldup/spec"
	"github.com/foldup/foldup/state"
)

// A VM's files: sockets and pid under the run directory, its disk
// overlay, console log and qemu's own log under the state directory (kept
// by down, removed by down -v).
type vmFiles struct{ run, state string }

func vmFilesOf(d state.Dirs, name string) vmFiles {
	return vmFiles{run: filepath.Join(d.Run, "vm", name), state: filepath.Join(d.State, "vm", name)}
}

func (f vmFiles) qmp() string        { return filepath.Join(f.run, "qmp") }
func (f vmFiles) events() string     { return filepath.Join(f.run, "events") }
func (f vmFiles) lock() string       { return f.run + ".lock" }
func (f vmFiles) console() string    { return filepath.Join(f.run, "console") }
func (f vmFiles) pid() string        { return filepath.Join(f.run, "qemu.pid") }
func (f vmFiles) health() string     { return filepath.Join(f.run, "health.json") }
func (f vmFiles) consoleLog() string { return filepath.Join(f.state, "console.log") }
func (f vmFiles) qemuLog() string    { return filepath.Join(f.state, "qemu.log") }
func (f vmFiles) disk() string       { return filepath.Join(f.state, "disk.qcow2") }
func (f vmFiles) record() string     { return filepath.Join(f.state, "vm.json") }
func (f vmFiles) seed() string       { return filepath.Join(f.state, "seed.iso") }
func (f vmFiles) efiVars() string    { return filepath.Join(f.state, "efivars.fd") }

// vmRecord is what the supervisor and the other verbs need of a VM beyond
// the plan: how to start its qemu again, its health check, stop grace,
// restart policy, and how its last qemu ended.
type vmRecord struct {
	Member  string            `json:"member"`
	Image   string            `json:"image"` // the disk image, or the kernel
	PID     int               `json:"pid"`
	Health  *spec.HealthCheck `json:"health,omitempty"`
	Grace   time.Duration     `json:"grace"`
	Addrs   []netip.Addr      `json:"addrs"`
	Started time.Time         `json:"started"`
	// ConsoleOffset is where this boot's output begins in the console log.
	ConsoleOffset int64    `json:"console_offset"`
	Restart       string   `json:"restart,omitempty"` // no, always, on-failure[:N], unless-stopped
	Launch        vmLaunch `json:"launch"`
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

// vmLaunch is how up started a VM's qemu, kept so that start and the
// supervisor's restart policy start it the same way.
type vmLaunch struct {
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

// qemuUser is the unprivileged user qemu runs as (nobody), and whether
// one was found; without it qemu runs as the caller.
func qemuUser() (*syscall.Credential, bool) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, false
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, true
}

// vmRunning returns the pid of the VM's qemu if it runs.
func vmRunning(f vmFiles) int {
	pid := state.ReadPid(f.pid())
	if pid <= 0 || !state.Alive(pid) {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(b), "qemu-system-") {
		return 0 // the pid was reused
	}
	return pid
}

// checkVM validates what a VM needs before anything is made: qemu for
// its architecture and qemu-img for a disk image.
func checkVM(p *spec.Project, name string) error {
	v := p.VMs[name]
	if _, err := exec.LookPath(qemu.Binary(v.Arch)); err != nil {
		return p.KeyErrorf([]string{"vms", name}, "%s is not installed (Debian: %s)", qemu.Binary(v.Arch), qemu.Package(v.Arch))
	}
	if v.Kernel == "" {
		switch v.Arch {
		case "aarch64":
			for _, f := range []string{uefiCode, uefiVars} {
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
	uefiCode = "/usr/share/AAVMF/AAVMF_CODE.fd"
	uefiVars = "/usr/share/AAVMF/AAVMF_VARS.fd"
)

// vmOwner returns the user qemu runs as, and makes the VM's directories:
// the project's are traversable (not readable) by the qemu user, the
// VM's own are its. Each of a VM's steps calls it; it is idempotent.
func (r *upRun) vmOwner(name string) (uid, gid uint32, err error) {
	f := vmFilesOf(r.d, name)
	if cred, ok := qemuUser(); ok {
		uid, gid = cred.Uid, cred.Gid
	}
	for _, dir := range []string{filepath.Dir(r.d.Run), filepath.Dir(r.d.State), r.d.Run, r.d.State, filepath.Dir(f.run), filepath.Dir(f.state)} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return 0, 0, err
		}
		if err := os.Chmod(dir, 0o711); err != nil {
			return 0, 0, err
		}
	}
	for _, dir := range []string{f.run, f.state} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return 0, 0, err
		}
		if err := os.Chown(dir, int(uid), int(gid)); err != nil {
			return 0, 0, err
		}
	}
	return uid, gid, nil
}

// vmStop stops a running VM's qemu, to recreate it: recorded as stopped
// first, so that the supervisor does not start it again.
func (r *upRun) vmStop(ctx context.Context, name string) error {
	f := vmFilesOf(r.d, name)
	ev := r.prog.start("VM", name)
	ev.update("Recreating")
	if err := os.MkdirAll(filepath.Dir(f.run), 0o711); err != nil {
		return ev.fail(err)
	}
	unlock, err := lockVM(f)
	if err != nil {
		return ev.fail(err)
	}
	defer unlock()
	if err := markStopped(f); err != nil {
		return ev.fail(err)
	}
	pid := vmRunning(f)
	if pid == 0 {
		return nil
	}
	if err := qemu.Stop(ctx, f.qmp(), pid, vmGrace(r.p.VMs[r.member(name).Service])); err != nil && !errors.Is(err, qemu.ErrNotRunning) {
		return ev.fail(err)
	}
	return nil
}

// tap makes a VM's tap on its network's bridge, owned by qemu's user.
func (r *upRun) tap(s *planner.Step) error {
	m := r.member(s.Member)
	nic := m.NICs[slices.IndexFunc(m.NICs, func(n *planner.NIC) bool { return n.Tap == s.Name })]
	n := r.pl.Network(nic.Network)
	uid, gid, err := r.vmOwner(m.Name)
	if err == nil {
		err = r.j.Record(state.KindTap, nic.Tap)
	}
	if err == nil {
		err = r.host.TapAdd(nic.Tap, n.Bridge, uid, gid, n.MTU)
	}
	if err != nil {
		return r.prog.start("VM", m.Name).fail(fmt.Errorf("tap %s: %w", nic.Tap, err))
	}
	return nil
}

// overlay makes a VM's disk, once: a qcow2 overlay on its image, and for
// an aarch64 disk its copy of the UEFI variable store.
func (r *upRun) overlay(ctx context.Context, name string) error {
	m := r.member(name)
	v, f := r.p.VMs[m.Service], vmFilesOf(r.d, name)
	fail := func(err error) error { return r.prog.start("VM", name).fail(err) }
	uid, gid, err := r.vmOwner(name)
	if err != nil {
		return fail(err)
	}
	base := v.Image
	if spec.IsURL(base) {
		r.mu.Lock()
		base = r.vmImages[m.Service]
		r.mu.Unlock()
	}
	if err := overlay(ctx, base, f.disk(), int(uid), int(gid)); err != nil {
		return fail(r.p.Errorf([]string{"vms", m.Service, "image"}, "%w", err))
	}
	if v.Arch == "aarch64" && v.Kernel == "" {
		if err := copyOnce(uefiVars, f.efiVars(), int(uid), int(gid)); err != nil {
			return fail(err)
		}
	}
	return nil
}

// seed writes a VM's cloud-init seed.
func (r *upRun) seed(name string) error {
	m := r.member(name)
	v, f := r.p.VMs[m.Service], vmFilesOf(r.d, name)
	uid, gid, err := r.vmOwner(name)
	if err == nil {
		err = r.writeSeed(m, v, f.seed(), int(uid), int(gid))
	}
	if err != nil {
		return r.prog.start("VM", name).fail(r.p.Errorf([]string{"vms", m.Service, "cloud_init"}, "%w", err))
	}
	return nil
}

// qemu starts a VM's qemu on what its earlier steps made: taps, disk and
// seed.
func (r *upRun) qemu(ctx context.Context, s *planner.Step) error {
	m := r.member(s.Name)
	v, f := r.p.VMs[m.Service], vmFilesOf(r.d, m.Name)
	ev := r.prog.start("VM", m.Name)
	if _, _, err := r.vmOwner(m.Name); err != nil {
		return ev.fail(err)
	}
	unlock, err := lockVM(f)
	if err != nil {
		return ev.fail(err)
	}
	defer unlock()
	if vmRunning(f) != 0 {
		// As planned (None), or started again by the supervisor's
		// restart policy since up looked.
		ev.done("Running")
		return nil
	}
	if s.Action == planner.ActionNone {
		return ev.fail(errors.New("its qemu ended while up was planning; up again starts it"))
	}
	acc := r.accels[m.Service]
	l := vmLaunch{Config: qemu.Config{
		Name: m.Name, Arch: v.Arch, KVM: acc.KVM, CPUs: v.CPUs, Memory: v.Memory,
		Kernel: v.Kernel, Initrd: v.Initrd, Cmdline: v.Cmdline,
		QMP: f.qmp(), Events: f.events(), Console: f.console(), ConsoleLog: f.consoleLog(), PidFile: f.pid(),
		Extra: v.QemuArgs,
	}}
	switch {
	case acc.DeviceFD:
		l.KVMDevice = qemu.KVMDevice
	case acc.Group >= 0:
		l.Groups = []uint32{uint32(acc.Group)}
	}
	for _, nic := range m.NICs {
		l.Config.NICs = append(l.Config.NICs, qemu.NIC{Tap: nic.Tap, MAC: nic.MAC})
	}
	if v.Image != "" {
		l.Config.Disk = f.disk()
		if v.Arch == "aarch64" && v.Kernel == "" {
			l.Config.Firmware, l.Config.FirmwareVars = uefiCode, f.efiVars()
		}
	}
	if ci := v.CloudInit; ci != nil {
		if ci.ISO != "" {
			l.Config.Seed, l.PassSeed = ci.ISO, true
		} else {
			l.Config.Seed = f.seed()
		}
	}
	if err := r.j.Record(state.KindVM, m.Name); err != nil {
		return ev.fail(err)
	}
	ev.update("Starting")
	image := cmp.Or(v.Image, v.Kernel)
	rec := vmRecord{Member: m.Name, Image: image, Health: v.HealthCheck, Grace: vmGrace(v), Restart: v.Restart, Launch: l, ConfigHash: m.ConfigHash}
	for _, nic := range m.NICs {
		for _, a := range []netip.Addr{nic.IPv4, nic.IPv6} {
			if a.IsValid() {
				rec.Addrs = append(rec.Addrs, a)
			}
		}
	}
	if err := startVM(ctx, r.host, f, &rec); err != nil {
		return ev.fail(err)
	}
	ev.done("Started")
	return nil
}

// startVM starts a VM's qemu as rec.Launch says and records it: its pid,
// when it started, and that no user stopped it. The caller holds the VM's
// lock. qemu, unprivileged, gets what it may not open itself as inherited
// descriptors: its taps (as libvirt passes them), the user's kernel,
// initrd and seed ISO, which may sit in directories it cannot reach.
func startVM(ctx context.Context, host *network.Host, f vmFiles, rec *vmRecord) error {
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
	cred, _ := qemuUser()
	if cred != nil {
		cred.Groups = rec.Launch.Groups
	}
	rec.ConsoleOffset = 0
	if st, err := os.Stat(f.consoleLog()); err == nil {
		rec.ConsoleOffset = st.Size()
	}
	pid, err := qemu.Start(ctx, cfg, cred, files, f.qemuLog())
	if err != nil {
		return fmt.Errorf("%w (its log: %s)", err, f.qemuLog())
	}
	rec.PID, rec.Started, rec.Stopped = pid, time.Now(), false
	rec.Exited, rec.ExitCode, rec.Exit = time.Time{}, 0, ""
	os.Remove(f.health())
	return writeVMRecord(f, rec)
}

// lockVM takes a VM's own lock, held by whoever starts or stops its qemu
// (up, stop, start, down, the supervisor's restarts), so that none of them
// acts on a state another is changing.
func lockVM(f vmFiles) (func(), error) {
	fh, err := os.OpenFile(f.lock(), os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX); err != nil {
		fh.Close()
		return nil, err
	}
	return func() { fh.Close() }, nil
}

// markStopped records that a user stopped the VM, before its qemu is
// stopped, so that the supervisor does not restart it. A VM never
// started (no record) has nothing to record; a record that cannot be
// written is an error, and the VM is not stopped: the supervisor would
// start it again.
func markStopped(f vmFiles) error {
	rec, err := readVMRecord(f)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", f.record(), err)
	}
	if rec.Stopped {
		return nil
	}
	rec.Stopped = true
	if err := writeVMRecord(f, rec); err != nil {
		return fmt.Errorf("recording that the VM is stopped: %w", err)
	}
	return nil
}

func writeVMRecord(f vmFiles, rec *vmRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return state.WriteFileAtomic(f.record(), b)
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

// writeSeed writes a VM's cloud-init NoCloud seed: the user's files, or
// what foldup generates (meta-data, user-data with the SSH keys, and a
// network-config when a network does not serve DHCP or the VM has more
// than one NIC).
func (r *upRun) writeSeed(m *planner.Member, v *spec.VM, path string, uid, gid int) error {
	ci := v.CloudInit
	c := cloudinit.Config{
		InstanceID:        "foldup-" + r.pl.Project + "-" + m.Name,
		Hostname:          m.Name,
		SSHAuthorizedKeys: ci.SSHAuthorizedKeys,
	}
	for _, f := range []struct {
		path string
		dst  *[]byte
	}{{ci.UserData, &c.UserData}, {ci.MetaData, &c.MetaData}, {ci.NetworkConfig, &c.NetworkConfig}} {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return err
		}
		*f.dst = b
	}
	static := len(m.NICs) > 1
	var nics []cloudinit.NIC
	for i, nic := range m.NICs {
		n := r.pl.Network(nic.Network)
		if n == nil {
			continue
		}
		static = static || !n.DHCP
		cn := cloudinit.NIC{MAC: nic.MAC, DHCP: n.DHCP, Gateway4: n.Gateway4, DNS: n.DNSAddrs(), DefaultVia: i == 0}
		if nic.IPv4.IsValid() {
			cn.Addresses = append(cn.Addresses, netip.PrefixFrom(nic.IPv4, n.Subnet4.Bits()))
		}
		if nic.IPv6.IsValid() && n.IPv6Mode == spec.IPv6Static {
			cn.Addresses = append(cn.Addresses, netip.PrefixFrom(nic.IPv6, n.Subnet6.Bits()))
			cn.Gateway6 = n.Gateway6
		}
		if r.pl.Domain != "" {
			cn.DNSSearch = []string{r.pl.Domain}
		}
		nics = append(nics, cn)
	}
	if static {
		c.NICs = nics
	}
	var b bytes.Buffer
	if err := c.WriteISO(&b); err != nil {
		return err
	}
	if err := state.WriteFileAtomic(path, b.Bytes()); err != nil {
		return err
	}
	return os.Chown(path, uid, gid)
}

func vmGrace(v *spec.VM) time.Duration {
	if v.StopGracePeriod != nil {
		return time.Duration(*v.StopGracePeriod)
	}
	return 10 * time.Second
}

// copyOnce copies src to dst, owned by uid:gid, unless dst exists: a
// VM's own copy of a file it changes (its UEFI variable store).
func copyOnce(src, dst string, uid, gid int) error {
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

// overlay makes the VM's qcow2 overlay over its read-only base image,
// once: it is the VM's disk, kept across down and recreation (removed by
// down -v).
func overlay(ctx context.Context, base, path string, uid, gid int) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	out, err := exec.CommandContext(ctx, "qemu-img", "info", "--output=json", base).Output()
	if err != nil {
		return fmt.Errorf("qemu-img info %s: %w", base, err)
	}
	var info struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", info.Format, "-b", base, tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("qemu-img create: %v: %s", err, out)
	}
	if err := os.Chown(tmp, uid, gid); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// vmPorts are the firewall member ports of the plan's VMs: their taps,
// known from the plan whether or not the VM runs yet.
func vmPorts(pl *planner.Plan) map[string]network.Port {
	out := map[string]network.Port{}
	for _, m := range pl.Members {
		if m.Kind != planner.VM {
			continue
		}
		for _, nic := range m.NICs {
			n := pl.Network(nic.Network)
			hw, err := net.ParseMAC(nic.MAC)
			if n == nil || err != nil || nic.Tap == "" {
				continue
			}
			p := network.Port{Name: nic.Tap, Bridge: n.Bridge, MAC: hw, RA: true}
			if nic.IPv4.IsValid() {
				p.IPv4 = []netip.Addr{nic.IPv4}
			}
			if nic.IPv6.IsValid() {
				p.IPv6 = []netip.Addr{nic.IPv6}
			}
			out[nic.Tap] = p
		}
	}
	return out
}

// stopVM stops a VM's qemu, if it runs: power button, grace (a negative
// one: the VM's own stop_grace_period), quit, kill. It stays stopped: no
// restart policy brings it back.
func stopVM(ctx context.Context, d state.Dirs, name string, grace time.Duration) (bool, error) {
	f := vmFilesOf(d, name)
	if _, err := os.Stat(filepath.Dir(f.run)); err != nil {
		return false, nil // never started here
	}
	unlock, err := lockVM(f)
	if err != nil {
		return false, err
	}
	defer unlock()
	if err := markStopped(f); err != nil {
		return false, err
	}
	pid := vmRunning(f)
	if pid == 0 {
		return false, nil
	}
	if rec, err := readVMRecord(f); err == nil && grace < 0 {
		grace = rec.Grace
	}
	err = qemu.Stop(ctx, f.qmp(), pid, max(grace, 0))
	if errors.Is(err, qemu.ErrNotRunning) {
		err = nil
	}
	os.Remove(f.pid())
	return true, err
}

// startStoppedVM starts a VM made by up and since stopped, as up started
// it; one that runs is left alone.
func startStoppedVM(ctx context.Context, host *network.Host, d state.Dirs, name string) (bool, error) {
	f := vmFilesOf(d, name)
	rec, err := readVMRecord(f)
	if err != nil {
		return false, fmt.Errorf("vm %s was never started here: use up", name)
	}
	unlock, err := lockVM(f)
	if err != nil {
		return false, err
	}
	defer unlock()
	if vmRunning(f) != 0 {
		return false, nil
	}
	if rec, err = readVMRecord(f); err != nil {
		return false, err
	}
	return true, startVM(ctx, host, f, rec)
}

// vmHealth reads a VM's health as the supervisor last wrote it; nil when
// it has no check (or none ran yet).
func vmHealth(f vmFiles) *Health {
	b, err := os.ReadFile(f.health())
	if err != nil {
		return nil
	}
	var h Health
	if json.Unmarshal(b, &h) != nil {
		return nil
	}
	return &h
}

func readVMRecord(f vmFiles) (*vmRecord, error) {
	b, err := os.ReadFile(f.record())
	if err != nil {
		return nil, err
	}
	var rec vmRecord
	return &rec, json.Unmarshal(b, &rec)
}

// waitVM waits until a VM meets a depends_on condition: started (qemu
// runs), healthy (its health check passed, as the supervisor reports).
func waitVM(ctx context.Context, f vmFiles, name, cond string) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		running := vmRunning(f) != 0
		switch cond {
		case "", "service_started":
			if running {
				return nil
			}
			return fmt.Errorf("vm %s is not running", name)
		case "service_healthy":
			rec, err := readVMRecord(f)
			if err != nil {
				return fmt.Errorf("vm %s: %w", name, err)
			}
			if rec.Health == nil || rec.Health.Disable {
				return fmt.Errorf("vm %s has no healthcheck, so it cannot become healthy", name)
			}
			if h := vmHealth(f); h != nil {
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

// vmAccel is what a running VM's qemu says it runs under (QMP
// query-kvm): kvm or tcg; what it was started with when qemu does not
// answer.
func vmAccel(f vmFiles, rec *vmRecord) string {
	kvm := rec.Launch.Config.KVM
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if q, err := qemu.DialQMP(ctx, f.qmp()); err == nil {
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

// vmStatuses are ps's lines for the plan's VMs: those that run, and with
// all those made and stopped too.
func vmStatuses(d state.Dirs, plan *planner.Plan, all bool) []MemberStatus {
	if plan == nil {
		return nil
	}
	var out []MemberStatus
	for _, m := range plan.Members {
		if m.Kind != planner.VM {
			continue
		}
		f := vmFilesOf(d, m.Name)
		rec, err := readVMRecord(f)
		if err != nil {
			continue // never started
		}
		pid := vmRunning(f)
		if pid == 0 && !all && !wantsRestart(rec) {
			continue // docker ps lists restarting containers too
		}
		st := MemberStatus{Name: m.Name, Member: m.Name, Service: m.Service, Kind: planner.VM, Image: rec.Image, State: "exited", Status: "Exited"}
		if !rec.Exited.IsZero() {
			st.ExitCode = rec.ExitCode
			st.Status = fmt.Sprintf("Exited (%d) %s ago", rec.ExitCode, units.HumanDuration(time.Since(rec.Exited)))
			if wantsRestart(rec) {
				st.State = "restarting"
				st.Status = fmt.Sprintf("Restarting (%d) %s ago", rec.ExitCode, units.HumanDuration(time.Since(rec.Exited)))
			}
		}
		if pid != 0 {
			st.State = "running"
			st.Status = "Up " + units.HumanDuration(time.Since(rec.Started))
			st.ID = "qemu:" + strconv.Itoa(pid)
			st.Accel = vmAccel(f, rec)
			if h := vmHealth(f); h != nil && rec.Health != nil && !rec.Health.Disable {
				st.Health = h.Status
				if h.Status == "starting" {
					st.Status += " (health: starting)"
				} else {
					st.Status += " (" + h.Status + ")"
				}
			} else if rec.Health != nil && !rec.Health.Disable {
				st.Health = "starting"
				st.Status += " (health: starting)"
			}
		}
		st.Addresses, st.Ports = planned(m)
		out = append(out, st)
	}
	return out
}
