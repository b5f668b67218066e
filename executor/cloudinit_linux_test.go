//go:build linux

package executor

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/vmtest"
	"github.com/foldup/foldup/vm"
)

const cloudInitProject = `
name: ci
networks:
  lan:
    enable_ipv6: true
    ipam: {config: [{subnet: 10.83.0.0/24}]}
    x-foldup: {dhcp: false, ipv6: stable-privacy}
vms:
  deb:
    image: %s
    kernel: %s
    initrd: %s
    cmdline: "root=/dev/vda rw console=ttyS0 net.ifnames=0"
    cpus: 2
    memory: 1g
    stop_grace_period: 1s
    networks:
      lan: {ipv4_address: 10.83.0.30}
    cloud_init:
      user_data: ./user-data
      ssh_authorized_keys: ["%s"]
`

const cloudInitUserData = `#cloud-config
write_files:
  - path: /usr/local/bin/dnsq
    permissions: "0755"
    content: |
      #!/usr/bin/python3
      # Asks foldup's DNS server for deb's A record, without resolv.conf.
      import socket
      s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
      s.settimeout(5)
      q = bytes.fromhex("123401000001000000000000") + b"\x03deb\x02ci\x06foldup\x08internal\x00\x00\x01\x00\x01"
      s.sendto(q, ("10.83.0.1", 53))
      print(socket.inet_ntoa(s.recv(512)[-4:]))
runcmd:
  - echo "FOLDUP-CI host=$(hostname) ip=$(ip -4 -o addr show eth0 | awk '{print $4}')" | tee -a /var/tmp/foldup-ci > /dev/ttyS0
  - echo "FOLDUP-CI iid=$(cat /var/lib/cloud/data/instance-id)" | tee -a /var/tmp/foldup-ci > /dev/ttyS0
  - echo "FOLDUP-CI key=$(cat /home/debian/.ssh/authorized_keys)" | tee -a /var/tmp/foldup-ci > /dev/ttyS0
  - echo "FOLDUP-CI dns=$(/usr/local/bin/dnsq)" | tee -a /var/tmp/foldup-ci > /dev/ttyS0
  - for i in $(seq 30); do ip -6 -o addr show dev eth0 scope global | grep -q . && ! ip -6 -o addr show dev eth0 | grep -q tentative && break; sleep 1; done
  - echo "FOLDUP-CI ip6=$(ip -6 -o addr show dev eth0 scope global | awk '{print $4}' | tr '\n' ' ')" | tee -a /var/tmp/foldup-ci > /dev/ttyS0
  - echo "FOLDUP-CI done" | tee -a /var/tmp/foldup-ci > /dev/ttyS0
`

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEx7xJ3Qe9s2mNqL0fP8rQ3ZbH5tW1uV0yY2kX4aB6cD ci@foldup"

// TestCloudInit boots a real Debian 12 image with real cloud-init under
// qemu, with the seed foldup writes: cloud-init reads its meta-data (the
// hostname and the stable instance-id), runs the user's user-data, puts
// the SSH key in the default user's authorized_keys, and, on a network
// without DHCP, configures the planned address from foldup's
// network-config, with which the guest asks foldup's DNS server for its
// own name.
func TestCloudInit(t *testing.T) {
	disk, kernel, initrd := vmtest.Debian(t)
	e := newTestEnv(t)
	os.MkdirAll(filepath.Join(e.dir, "ci"), 0o755)
	if err := os.WriteFile(filepath.Join(e.dir, "ci", "user-data"), []byte(cloudInitUserData), 0o644); err != nil {
		t.Fatal(err)
	}
	p, res := e.upInProcess(t, "ci", fmt.Sprintf(cloudInitProject, disk, kernel, initrd, testKey))
	f := vm.For(e.o.withDefaults().dirs(p.Name), "deb")
	var got map[string]string
	deadline := time.Now().Add(5 * time.Minute)
	for {
		b, _ := os.ReadFile(f.ConsoleLog())
		got = map[string]string{}
		for _, l := range strings.Split(strings.ReplaceAll(string(b), "\r", ""), "\n") {
			if _, rest, ok := strings.Cut(l, "FOLDUP-CI "); ok {
				k, v, _ := strings.Cut(rest, "=")
				got[k] = v
			}
		}
		if _, ok := got["done"]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cloud-init did not finish the user-data in 5 minutes; the console:\n%s", b)
		}
		time.Sleep(time.Second)
	}
	// The values as runcmd wrote them to a file too: the serial console
	// carries them, but a kernel message may cut a line there.
	var file bytes.Buffer
	for try := 0; ; try++ { // sshd may come up a moment after runcmd
		file.Reset()
		code, err := New(e.o).Exec(t.Context(), p.Name, "deb", []string{"cat", "/var/tmp/foldup-ci"}, ExecOptions{Stdout: &file, Stderr: &file})
		if err == nil && code == 0 {
			break
		}
		if try == 60 {
			t.Fatalf("reading runcmd's file: %v, exit %d: %s", err, code, file.String())
		}
		time.Sleep(time.Second)
	}
	got = map[string]string{}
	for _, l := range strings.Split(file.String(), "\n") {
		if _, rest, ok := strings.Cut(l, "FOLDUP-CI "); ok {
			k, v, _ := strings.Cut(rest, "=")
			got[k] = v
		}
	}
	t.Logf("cloud-init's runcmd: %q", got)
	want := map[string]string{
		"iid": "foldup-ci-deb",
		"key": testKey,
		"dns": "10.83.0.30",
	}
	if got["host"] != "deb ip=10.83.0.30/24" {
		t.Errorf("hostname and address: %q, want %q", got["host"], "deb ip=10.83.0.30/24")
	}
	for _, k := range []string{"iid", "key", "dns"} {
		if got[k] != want[k] {
			t.Errorf("%s = %q, want %q", k, got[k], want[k])
		}
	}
	// On a stable-privacy network Debian's kernel forms the planned
	// address, and no other: the secret came in the seed's vendor-data
	// (a boothook), not on the command line, which foldup leaves to the
	// user for a VM with its seed.
	checkWayIn(t, e, p.Name)
	if rec, err := vm.ReadRecord(f); err != nil {
		t.Fatal(err)
	} else if strings.Contains(rec.Launch.Config.Cmdline, "stable_secret") {
		t.Fatalf("the secret is on deb's command line (%s): the seed's channel is not what is tested", rec.Launch.Config.Cmdline)
	}
	if want := planMember(t, res.Plan, "deb").NICs[0].IPv6.String() + "/64"; strings.TrimSpace(got["ip6"]) != want {
		t.Errorf("deb's global IPv6 addresses: %q, want %q", got["ip6"], want)
	}
}

// checkWayIn: exec, cp and ssh reach the guest as the user foldup, which
// the seed's vendor-data made with the project's key, with no key in the
// file: a command's output and exit status, sudo for -u, a file and a
// directory both ways, and the host's OpenSSH client with SSHArgs.
func checkWayIn(t *testing.T, e *testEnv, project string) {
	t.Helper()
	x := New(e.o)
	run := func(opts ExecOptions, argv ...string) (string, int) {
		var out, errb bytes.Buffer
		opts.Stdout, opts.Stderr = &out, &errb
		code, err := x.Exec(t.Context(), project, "deb", argv, opts)
		if err != nil {
			t.Fatalf("exec %q: %v", argv, err)
		}
		if errb.Len() > 0 {
			t.Logf("exec %q: stderr: %s", argv, errb.String())
		}
		return strings.TrimSpace(out.String()), code
	}
	// sshd may come up a moment after cloud-init's runcmd.
	var out string
	var code int
	deadline := time.Now().Add(time.Minute)
	for {
		var b, eb bytes.Buffer
		c, err := x.Exec(t.Context(), project, "deb", []string{"id", "-un"}, ExecOptions{Stdout: &b, Stderr: &eb})
		if err == nil {
			out, code = strings.TrimSpace(b.String()), c
			t.Logf("exec id -un: %q, stderr %q, exit %d", b.String(), eb.String(), c)
			break
		}
		if time.Now().After(deadline) {
			if args, aerr := x.SSHArgs(project, "deb"); aerr == nil {
				o, _ := e.ns.Run(t, append(append([]string{"ssh", "-v"}, args...), "--", "true")...)
				t.Logf("ssh -v:\n%s", o)
			}
			t.Fatalf("exec in deb for a minute: %v", err)
		}
		time.Sleep(time.Second)
	}
	if out != "foldup" || code != 0 {
		t.Errorf("exec id -un = %q, exit %d; want foldup, 0", out, code)
	}
	if out, code := run(ExecOptions{}, "sh", "-c", `echo "it's"; exit 7`); out != "it's" || code != 7 {
		t.Errorf("exec sh -c ... = %q, exit %d; want \"it's\", 7", out, code)
	}
	if out, _ := run(ExecOptions{User: "root", Workdir: "/etc", Env: []string{"A=b c"}}, "sh", "-c", `echo "$(id -un) $(pwd) $A"`); out != "root /etc b c" {
		t.Errorf("exec -u root -w /etc -e 'A=b c' = %q", out)
	}

	if _, code := run(ExecOptions{Detach: true}, "sh", "-c", "sleep 0.5; echo detached > /tmp/det"); code != 0 {
		t.Errorf("exec -d: exit %d", code)
	}
	if out, _ := run(ExecOptions{}, "sh", "-c", "for i in $(seq 50); do [ -s /tmp/det ] && exec cat /tmp/det; sleep 0.1; done; exit 1"); out != "detached" {
		t.Errorf("after exec -d: %q", out)
	}

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f.txt"), []byte("to the guest\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "tree", "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "tree", "sub", "g.txt"), []byte("deep\n"), 0o644)
	if err := x.Copy(t.Context(), project, filepath.Join(dir, "f.txt"), "deb:/tmp/"); err != nil {
		t.Fatal(err)
	}
	if err := x.Copy(t.Context(), project, filepath.Join(dir, "tree"), "deb:/tmp/copied"); err != nil {
		t.Fatal(err)
	}
	if out, _ := run(ExecOptions{}, "cat", "/tmp/f.txt", "/tmp/copied/sub/g.txt"); out != "to the guest\ndeep" {
		t.Errorf("in the guest after cp: %q", out)
	}
	back := filepath.Join(dir, "back")
	if err := x.Copy(t.Context(), project, "deb:/tmp/copied", back); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(back, "sub", "g.txt")); err != nil || string(b) != "deep\n" {
		t.Errorf("copied back: %q, %v", b, err)
	}
	if err := x.Copy(t.Context(), project, "deb:/etc/hostname", dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "hostname")); strings.TrimSpace(string(b)) != "deb" {
		t.Errorf("deb:/etc/hostname copied into a directory: %q", b)
	}

	args, err := x.SSHArgs(project, "deb")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := e.ns.Run(t, append(append([]string{"ssh"}, args...), "--", "uname", "-s")...); err != nil || strings.TrimSpace(out) != "Linux" {
		t.Errorf("ssh %v uname -s = %q, %v", args, out, err)
	}
}
