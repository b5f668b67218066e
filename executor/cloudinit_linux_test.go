//go:build linux

package executor

import (
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
  - echo "FOLDUP-CI host=$(hostname) ip=$(ip -4 -o addr show eth0 | awk '{print $4}')" > /dev/ttyS0
  - echo "FOLDUP-CI iid=$(cat /var/lib/cloud/data/instance-id)" > /dev/ttyS0
  - echo "FOLDUP-CI key=$(cat /home/debian/.ssh/authorized_keys)" > /dev/ttyS0
  - echo "FOLDUP-CI dns=$(/usr/local/bin/dnsq)" > /dev/ttyS0
  - for i in $(seq 30); do ip -6 -o addr show dev eth0 scope global | grep -q . && ! ip -6 -o addr show dev eth0 | grep -q tentative && break; sleep 1; done
  - echo "FOLDUP-CI ip6=$(ip -6 -o addr show dev eth0 scope global | awk '{print $4}' | tr '\n' ' ')" > /dev/ttyS0
  - echo "FOLDUP-CI done" > /dev/ttyS0
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
	if rec, err := vm.ReadRecord(f); err != nil {
		t.Fatal(err)
	} else if strings.Contains(rec.Launch.Config.Cmdline, "stable_secret") {
		t.Fatalf("the secret is on deb's command line (%s): the seed's channel is not what is tested", rec.Launch.Config.Cmdline)
	}
	if want := planMember(t, res.Plan, "deb").NICs[0].IPv6.String() + "/64"; strings.TrimSpace(got["ip6"]) != want {
		t.Errorf("deb's global IPv6 addresses: %q, want %q", got["ip6"], want)
	}
}
