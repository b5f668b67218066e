//go:build linux

package executor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/qemu"
	"github.com/foldup/foldup/spec"
	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/vm"
)

// vmOwner returns the user qemu runs as, and makes the VM's directories:
// the project's are traversable (not readable) by the qemu user, the
// VM's own are its. Each of a VM's steps calls it; it is idempotent.
func (r *upRun) vmOwner(name string) (uid, gid uint32, err error) {
	f := vm.For(r.d, name)
	if cred, ok := vm.QemuUser(); ok {
		uid, gid = cred.Uid, cred.Gid
	}
	for _, dir := range []string{filepath.Dir(r.d.Run), filepath.Dir(r.d.State), r.d.Run, r.d.State, filepath.Dir(f.Run), filepath.Dir(f.State)} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return 0, 0, err
		}
		if err := os.Chmod(dir, 0o711); err != nil {
			return 0, 0, err
		}
	}
	for _, dir := range []string{f.Run, f.State} {
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
	f := vm.For(r.d, name)
	ev := r.prog.start("VM", name)
	ev.update("Recreating")
	if err := os.MkdirAll(filepath.Dir(f.Run), 0o711); err != nil {
		return ev.fail(err)
	}
	unlock, err := vm.Lock(f)
	if err != nil {
		return ev.fail(err)
	}
	defer unlock()
	if err := vm.MarkStopped(f); err != nil {
		return ev.fail(err)
	}
	pid := vm.Running(f)
	if pid == 0 {
		return nil
	}
	if err := vm.StopQemu(ctx, f, pid, vm.Grace(r.p.VMs[r.member(name).Service])); err != nil {
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
	v, f := r.p.VMs[m.Service], vm.For(r.d, name)
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
	previous, err := vm.Overlay(ctx, base, f.Disk(), int(uid), int(gid))
	if err != nil {
		return fail(r.p.Errorf([]string{"vms", m.Service, "image"}, "%w", err))
	}
	if previous != "" {
		// docker compose keeps a volume across an image change too; a
		// disk is the VM's state, not the image's.
		r.prog.warn(spec.Warning{Pos: r.p.Locate("vms", m.Service, "image"), Key: "vms." + m.Service + ".image",
			Msg: "changed: " + name + " keeps its disk, an overlay on the image it was made from (" + previous + "); down -v removes the disk, and the next up makes a fresh one"}.String())
	}
	if v.Arch == "aarch64" && v.Kernel == "" {
		if err := vm.CopyOnce(vm.UEFIVars, f.EFIVars(), int(uid), int(gid)); err != nil {
			return fail(err)
		}
	}
	return nil
}

// seed writes a VM's cloud-init seed.
func (r *upRun) seed(name string) error {
	m := r.member(name)
	v, f := r.p.VMs[m.Service], vm.For(r.d, name)
	uid, gid, err := r.vmOwner(name)
	var key string
	if err == nil {
		_, key, err = vm.ProjectKey(r.d)
	}
	if err == nil {
		err = vm.WriteSeed(r.pl, m, v, key, f.Seed(), int(uid), int(gid))
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
	v, f := r.p.VMs[m.Service], vm.For(r.d, m.Name)
	ev := r.prog.start("VM", m.Name)
	if _, _, err := r.vmOwner(m.Name); err != nil {
		return ev.fail(err)
	}
	unlock, err := vm.Lock(f)
	if err != nil {
		return ev.fail(err)
	}
	defer unlock()
	if vm.Running(f) != 0 {
		// As planned (None), or started again by the supervisor's
		// restart policy since up looked.
		ev.done("Running")
		return nil
	}
	if s.Action == planner.ActionNone {
		return ev.fail(errors.New("its qemu ended while up was planning; up again starts it"))
	}
	acc := r.accels[m.Service]
	l := vm.Launch{Config: qemu.Config{
		Name: m.Name, Arch: v.Arch, KVM: acc.KVM, CPUs: v.CPUs, Memory: v.Memory,
		Kernel: v.Kernel, Initrd: v.Initrd, Cmdline: r.cmdline(m, v),
		QMP: f.QMP(), Events: f.Events(), Console: f.Console(), ConsoleLog: f.ConsoleLog(), Agent: f.Agent(), PidFile: f.PidFile(),
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
		l.Config.Disk = f.Disk()
		if v.Arch == "aarch64" && v.Kernel == "" {
			l.Config.Firmware, l.Config.FirmwareVars = vm.UEFICode, f.EFIVars()
		}
	}
	if ci := v.CloudInit; ci != nil {
		if ci.ISO != "" {
			l.Config.Seed, l.PassSeed = ci.ISO, true
		} else {
			l.Config.Seed = f.Seed()
		}
	}
	if err := r.j.Record(state.KindVM, m.Name); err != nil {
		return ev.fail(err)
	}
	ev.update(map[bool]string{true: "Creating", false: "Starting"}[r.uo.NoStart])
	image := cmp.Or(v.Image, v.Kernel)
	rec := vm.Record{Member: m.Name, Image: image, Health: v.HealthCheck, Grace: vm.Grace(v), Restart: v.Restart, Launch: l, ConfigHash: m.ConfigHash}
	for _, nic := range m.NICs {
		for _, a := range []netip.Addr{nic.IPv4, nic.IPv6} {
			if a.IsValid() {
				rec.Addrs = append(rec.Addrs, a)
			}
		}
	}
	if r.uo.NoStart {
		// Created, as a container up --no-start creates: start (or up)
		// starts it from this record.
		rec.Stopped = true
		if err := vm.WriteRecord(f, &rec); err != nil {
			return ev.fail(err)
		}
		ev.done("Created")
		return nil
	}
	if err := vm.Start(ctx, r.host, f, &rec); err != nil {
		return ev.fail(err)
	}
	ev.done("Started")
	return nil
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
		f := vm.For(d, m.Name)
		rec, err := vm.ReadRecord(f)
		if err != nil {
			continue // never started
		}
		pid := vm.Running(f)
		if pid == 0 && !all && !vm.WantsRestart(rec) {
			continue // docker ps lists restarting containers too
		}
		state, status := "exited", "Exited"
		if rec.Started.IsZero() {
			state, status = "created", "Created" // up --no-start, create
		}
		st := MemberStatus{Name: m.Name, Member: m.Name, Service: m.Service, Kind: planner.VM, Image: rec.Image, State: state, Status: status,
			Project: plan.Project, Created: cmp.Or(rec.Created, rec.Started), Publishers: publishers(m)}
		for _, nic := range m.NICs {
			if n := plan.Network(nic.Network); n != nil {
				st.Networks = append(st.Networks, n.DockerName)
			}
		}
		if !rec.Exited.IsZero() {
			st.ExitCode = rec.ExitCode
			st.Status = fmt.Sprintf("Exited (%d) %s ago", rec.ExitCode, units.HumanDuration(time.Since(rec.Exited)))
			if vm.WantsRestart(rec) {
				st.State = "restarting"
				st.Status = fmt.Sprintf("Restarting (%d) %s ago", rec.ExitCode, units.HumanDuration(time.Since(rec.Exited)))
			}
		}
		if pid != 0 {
			st.State = "running"
			st.Status = "Up " + units.HumanDuration(time.Since(rec.Started))
			st.ID = "qemu:" + strconv.Itoa(pid)
			st.Accel = vm.RunningAccel(f, rec)
			if h := vm.ReadHealth(f); h != nil && rec.Health != nil && !rec.Health.Disable {
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
		if pid != 0 && vm.Paused(f) {
			// As Docker shows a paused container: no health.
			st.State, st.Status = "paused", "Up "+units.HumanDuration(time.Since(rec.Started))+" (Paused)"
		}
		st.Addresses, st.Ports = planned(m)
		out = append(out, st)
	}
	return out
}

// cmdline is a kernel-booted VM's command line: the user's, and for the
// interfaces on stable-privacy networks the RFC 7217 secrets the plan
// formed their addresses with, so that the guest's kernel forms the same,
// unless foldup's cloud-init seed gives them (vm.WriteSeed): one channel a
// guest, the same whether it boots its kernel or foldup does. They are
// given three ways, for what the guest's kernel and init can take:
// sysctl.net.ipv6.conf.default.* (the kernel applies those before init,
// and a NIC whose driver loads later takes them: the first such NIC's
// secret), sysctl.net.ipv6.conf.ethN.* (a NIC whose driver is built in,
// named ethN at boot), and foldup.stable_secret=MAC=SECRET, one per
// interface, for an init to write to net.ipv6.conf.IF.stable_secret
// before the link comes up (scripts/images.sh's test guest does; README,
// IPv6).
func (r *upRun) cmdline(m *planner.Member, v *spec.VM) string {
	args := []string{v.Cmdline}
	first := true
	for i, nic := range m.NICs {
		n := r.pl.Network(nic.Network)
		if v.Kernel == "" || (v.CloudInit != nil && v.CloudInit.ISO == "") || n == nil || n.IPv6Mode != spec.IPv6StablePrivacy || !nic.IPv6.IsValid() {
			continue
		}
		secret := netip.AddrFrom16(planner.StableSecret(r.p.Name, m.Name, n.Name)).String()
		if first {
			args = append(args, "sysctl.net.ipv6.conf.default.stable_secret="+secret, "sysctl.net.ipv6.conf.default.addr_gen_mode=2")
			first = false
		}
		args = append(args, fmt.Sprintf("sysctl.net.ipv6.conf.eth%d.stable_secret=%s", i, secret),
			"foldup.stable_secret="+strings.ToLower(nic.MAC)+"="+secret)
	}
	return strings.TrimSpace(strings.Join(args, " "))
}
