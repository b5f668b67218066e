//go:build linux

package executor

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/vmtest"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/state"
	"github.com/foldup/foldup/vm"
)

const mixedProject = `
name: mix
services:
  web:
    image: foldup-test/busybox:1
    init: true
    command: ["sh", "-c", "mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 80 -h /www"]
  probe:
    image: foldup-test/busybox:1
    init: true
    command: ["sh", "-c", "wget -q -O - http://vm1/ && exec sleep 3600"]
    depends_on:
      vm1: {condition: service_healthy}
vms:
  vm1:
    kernel: %s
    initrd: %s
    cmdline: "console=ttyS0 quiet panic=-1 foldup.peer=web foldup.txt=secret"
    memory: 256m
    stop_grace_period: 1s
    healthcheck:
      test: ["http", "/"]
      interval: 500ms
      retries: 60
    depends_on: [web]
    dns:
      - {name: secret, txt: ["only vm1"]}
dns:
  - {name: secret, txt: ["for everyone"]}
`

// TestVMAndContainers brings up a VM (the test kernel and busybox
// initramfs under real qemu) beside two containers on one network: the VM
// takes its planned address by DHCP from foldup's server, finds the web
// container by name and fetches its page; a container waits for the VM to
// be healthy (an http check the supervisor runs) and fetches the VM's
// page by name; the VM alone sees its own TXT record. down leaves no qemu
// and no tap.
func TestVMAndContainers(t *testing.T) {
	kernel, initrd := vmtest.Images(t)
	e := newTestEnv(t)
	p, res := e.upInProcess(t, "mix", fmt.Sprintf(mixedProject, kernel, initrd))
	ctx := t.Context()
	var vm1, web *planner.Member
	for _, m := range res.Plan.Members {
		switch m.Name {
		case "vm1":
			vm1 = m
		case "web":
			web = m
		}
	}
	f := vm.For(e.o.withDefaults().dirs(p.Name), "vm1")
	console := func(want string) string {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			b, _ := os.ReadFile(f.ConsoleLog())
			for _, l := range strings.Split(string(b), "\n") {
				if i := strings.Index(l, want); i >= 0 {
					return strings.TrimSpace(l[i:]) // the console shell's prompt may come first
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q on vm1's console in 60 s:\n%s", want, b)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	lease := console("FOLDUP-LEASE")
	if !strings.Contains(lease, "ip="+vm1.NICs[0].IPv4.String()+" ") || !strings.Contains(lease, "hostname=vm1 ") {
		t.Errorf("vm1's lease %q, want ip=%s hostname=vm1", lease, vm1.NICs[0].IPv4)
	}
	if got, want := console("FOLDUP-DNS"), "FOLDUP-DNS web="+web.NICs[0].IPv4.String(); got != want {
		t.Errorf("vm1 resolved web: %q, want %q", got, want)
	}
	if got := console("FOLDUP-HTTP"); got != "FOLDUP-HTTP web: hello from web" {
		t.Errorf("vm1 fetched from web: %q", got)
	}
	if got := console("FOLDUP-TXT"); got != `FOLDUP-TXT "only vm1"` {
		t.Errorf("vm1's own TXT record: %q", got)
	}

	// probe started only once vm1 was healthy, and reached it by name.
	if out, code := e.exec(t, "mix-probe-1", "wget", "-q", "-O", "-", "http://vm1/"); code != 0 || strings.TrimSpace(out) != "hello from vm1" {
		t.Errorf("container fetching http://vm1/: %q (exit %d)", out, code)
	}
	if out, _ := e.exec(t, "mix-probe-1", "nslookup", "-type=txt", "secret"); !strings.Contains(out, `"for everyone"`) || strings.Contains(out, "only vm1") {
		t.Errorf("a container sees the project's TXT record, not vm1's:\n%s", out)
	}
	if h := vm.ReadHealth(f); h == nil || h.Status != "healthy" {
		t.Errorf("vm1 health = %+v", h)
	}

	// ps and logs show the VM beside the containers.
	list, err := New(e.o).Ps(ctx, p.Name, false)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, st := range list {
		if st.Name == "vm1" {
			found = true
			if st.Kind != "vm" || st.State != "running" || st.Health != "healthy" || !slices.Contains(st.Addresses, vm1.NICs[0].IPv4.String()) || !strings.HasSuffix(st.Status, "(healthy)") {
				t.Errorf("ps: %+v", st)
			}
		}
	}
	if !found || len(list) != 3 {
		t.Errorf("ps lists %d members, vm1 among them: %v\n%+v", len(list), found, list)
	}
	var logs bytes.Buffer
	if err := New(e.o).Logs(ctx, p.Name, LogOptions{Members: []string{"vm1"}, NoColor: true, Tail: "all"}, &logs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "vm1  | FOLDUP-LEASE event=bound ip=") || strings.Contains(logs.String(), "\r") {
		t.Errorf("logs vm1:\n%s", logs.String())
	}
	logs.Reset()
	if err := New(e.o).Logs(ctx, p.Name, LogOptions{Members: []string{"vm1"}, NoColor: true, Tail: "1"}, &logs); err != nil || strings.Count(logs.String(), "\n") != 1 {
		t.Errorf("logs --tail 1 vm1 = %q, %v", logs.String(), err)
	}

	// qemu is confined: the unprivileged user, no capability, seccomp
	// filtering (-sandbox on), no way back to privileges.
	pid := vm.Running(f)
	assertConfined(t, pid, f)

	// stop vm1 powers it off (busybox ignores the button: quit after the
	// grace); ps -a shows it exited.
	one := 1
	if err := New(e.o).Stop(ctx, p.Name, []string{"vm1"}, &one); err != nil {
		t.Fatal(err)
	}
	if state.Alive(pid) {
		t.Errorf("qemu %d runs after stop vm1", pid)
	}
	list, _ = New(e.o).Ps(ctx, p.Name, true)
	for _, st := range list {
		if st.Name == "vm1" && st.State != "exited" {
			t.Errorf("ps -a after stop: %+v", st)
		}
	}

	if err := New(e.o).Down(ctx, p.Name, DownOptions{}); err != nil {
		t.Fatal(err)
	}
	if out := e.ns.MustRun(t, "ip", "-o", "link", "show", "type", "tun"); strings.TrimSpace(out) != "" {
		t.Errorf("taps left:\n%s", out)
	}
	if _, err := os.Stat(f.ConsoleLog()); err != nil {
		t.Errorf("down removed vm1's state (only down -v does): %v", err)
	}
	if out, _ := exec.Command("pgrep", "-f", "qemu-system.*"+f.Run).Output(); len(out) > 0 {
		t.Errorf("qemu processes left: %s", out)
	}
}

// assertConfined checks, in /proc/PID/status, that a qemu process runs as
// qemu's user (nobody) in every uid and gid slot, with no supplementary
// group but /dev/kvm's when it runs under KVM through it (as its VM's
// record says), holds no capability (effective, permitted, inheritable,
// ambient), is under a seccomp filter (mode 2) and has no_new_privs set.
func assertConfined(t *testing.T, pid int, f vm.Files) {
	t.Helper()
	rec, err := vm.ReadRecord(f)
	if err != nil {
		t.Fatal(err)
	}
	var groups []string
	for _, g := range rec.Launch.Groups {
		groups = append(groups, fmt.Sprint(g))
	}
	if len(groups) > 0 && !rec.Launch.Config.KVM {
		t.Errorf("qemu %d runs under TCG with supplementary groups %v", pid, groups)
	}
	cred, ok := vm.QemuUser()
	if !ok {
		t.Fatal("no unprivileged user for qemu on this machine")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("qemu %d: %v", pid, err)
	}
	status := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			status[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	want := map[string]string{
		"Uid":        strings.Repeat(fmt.Sprint(cred.Uid, " "), 3) + fmt.Sprint(cred.Uid),
		"Gid":        strings.Repeat(fmt.Sprint(cred.Gid, " "), 3) + fmt.Sprint(cred.Gid),
		"Groups":     strings.Join(groups, " "),
		"CapInh":     "0000000000000000",
		"CapPrm":     "0000000000000000",
		"CapEff":     "0000000000000000",
		"CapAmb":     "0000000000000000",
		"NoNewPrivs": "1",
		"Seccomp":    "2",
	}
	for k, v := range want {
		if status[k] != v {
			t.Errorf("qemu %d: %s is %q, want %q", pid, k, status[k], v)
		}
	}
	if cred.Uid == 0 {
		t.Errorf("qemu's user is root")
	}
}
