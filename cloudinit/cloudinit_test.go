package cloudinit

import (
	"bytes"
	"io"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/kdomanski/iso9660"
	"gopkg.in/yaml.v3"
)

const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEx7xJ3Qe9s2mNqL0fP8rQ3ZbH5tW1uV0yY2kX4aB6cD test@foldup"

func TestFiles(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want map[string]string // file: what it must hold, as YAML text
	}{{
		name: "generated user-data",
		c:    Config{InstanceID: "foldup-p-vm1", Hostname: "vm1", SSHAuthorizedKeys: []string{key}},
		want: map[string]string{
			"meta-data": "instance-id: foldup-p-vm1\nlocal-hostname: vm1\n",
			"user-data": "#cloud-config\nssh_authorized_keys:\n  - " + key + "\n",
		},
	}, {
		name: "no keys",
		c:    Config{InstanceID: "i", Hostname: "h"},
		want: map[string]string{
			"meta-data": "instance-id: i\nlocal-hostname: h\n",
			"user-data": "#cloud-config\n{}\n",
		},
	}, {
		name: "user's files; keys move to meta-data",
		c: Config{
			InstanceID: "i", Hostname: "vm1",
			MetaData:          []byte("local-hostname: custom\nfoo: bar\n"),
			UserData:          []byte("#!/bin/sh\necho hi\n"),
			NetworkConfig:     []byte("version: 1\n"),
			SSHAuthorizedKeys: []string{key},
			NICs:              []NIC{{MAC: "52:54:00:00:00:01", DHCP: true}},
		},
		want: map[string]string{
			"meta-data":      "foo: bar\ninstance-id: i\nlocal-hostname: custom\npublic-keys:\n  - " + key + "\n",
			"user-data":      "#!/bin/sh\necho hi\n",
			"network-config": "version: 1\n",
		},
	}, {
		name: "static and DHCP NICs",
		c: Config{InstanceID: "i", NICs: []NIC{{
			MAC: "52:54:00:AA:00:01", Addresses: []netip.Prefix{netip.MustParsePrefix("10.9.0.5/24"), netip.MustParsePrefix("fd00::5/64")},
			Gateway4: netip.MustParseAddr("10.9.0.1"), Gateway6: netip.MustParseAddr("fd00::1"),
			DNS: []netip.Addr{netip.MustParseAddr("10.9.0.1")}, DNSSearch: []string{"p.test"}, DefaultVia: true,
		}, {MAC: "52:54:00:aa:00:02", DHCP: true}}},
		want: map[string]string{
			"meta-data": "instance-id: i\n",
			"user-data": "#cloud-config\n{}\n",
			"network-config": `version: 2
ethernets:
  eth0:
    match: {macaddress: "52:54:00:aa:00:01"}
    set-name: eth0
    dhcp4: false
    dhcp6: false
    addresses: [10.9.0.5/24, fd00::5/64]
    routes:
      - {to: 0.0.0.0/0, via: 10.9.0.1}
      - {to: "::/0", via: "fd00::1"}
    nameservers: {addresses: [10.9.0.1], search: [p.test]}
  eth1:
    match: {macaddress: "52:54:00:aa:00:02"}
    set-name: eth1
    dhcp4: true
    dhcp6: false
`,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := tt.c.Files()
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != len(tt.want) {
				t.Errorf("files %v, want %d of them", keys(files), len(tt.want))
			}
			for name, want := range tt.want {
				got, ok := files[name]
				if !ok {
					t.Errorf("no %s", name)
					continue
				}
				// The user's own files pass through byte for byte; the
				// generated ones are compared as YAML.
				if strings.HasPrefix(want, "#!") || want == "version: 1\n" {
					if string(got) != want {
						t.Errorf("%s = %q, want %q", name, got, want)
					}
					continue
				}
				if !strings.HasPrefix(want, "#cloud-config") != !strings.HasPrefix(string(got), "#cloud-config") {
					t.Errorf("%s = %q: #cloud-config header differs from %q", name, got, want)
				}
				var g, w any
				if err := yaml.Unmarshal(got, &g); err != nil {
					t.Fatalf("%s: %v\n%s", name, err, got)
				}
				if err := yaml.Unmarshal([]byte(want), &w); err != nil {
					t.Fatal(err)
				}
				gy, _ := yaml.Marshal(g)
				wy, _ := yaml.Marshal(w)
				if string(gy) != string(wy) {
					t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
				}
			}
		})
	}
}

func TestBadMetaData(t *testing.T) {
	_, err := Config{InstanceID: "i", MetaData: []byte("a: [")}.Files()
	if err == nil || !strings.Contains(err.Error(), "meta-data") {
		t.Errorf("err = %v, want a meta-data error", err)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestWriteISO reads the seed back with an independent ISO9660 reader:
// the label, and each file under the name Linux shows for it.
func TestWriteISO(t *testing.T) {
	c := Config{InstanceID: "foldup-p-vm1", Hostname: "vm1", SSHAuthorizedKeys: []string{key}, NICs: []NIC{{MAC: "52:54:00:00:00:01"}}}
	var b bytes.Buffer
	if err := c.WriteISO(&b); err != nil {
		t.Fatal(err)
	}
	want, _ := c.Files()
	img, err := iso9660.OpenImage(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	label, err := img.Label()
	if err != nil || label != Label {
		t.Errorf("label %q (%v), want %q", label, err, Label)
	}
	root, err := img.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	children, err := root.GetChildren()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	for _, f := range children {
		data, err := io.ReadAll(f.Reader())
		if err != nil {
			t.Fatal(err)
		}
		// Linux's isofs (map=normal) drops the version and lowercases.
		got[strings.ToLower(strings.TrimSuffix(f.Name(), ";1"))] = data
	}
	if len(got) != len(want) {
		t.Errorf("ISO holds %v, want %v", keys(got), keys(want))
	}
	for name, data := range want {
		if !bytes.Equal(got[name], data) {
			t.Errorf("%s in the ISO = %q, want %q", name, got[name], data)
		}
	}
}

// TestVendorData: a seed with stable secrets carries a boothook in
// vendor-data that gives each interface, by MAC, its secret as the kernel
// shows it back (expanded), and the user's user-data is left alone. The
// hook's effect on a real guest is TestCloudInit's (executor).
func TestVendorData(t *testing.T) {
	c := Config{InstanceID: "i", UserData: []byte("#!/bin/sh\necho hi\n"), StableSecrets: []StableSecret{
		{MAC: "52:54:00:AA:00:01", Secret: netip.MustParseAddr("fd00::1:2")},
	}}
	files, err := c.Files()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(files["user-data"]); got != "#!/bin/sh\necho hi\n" {
		t.Errorf("user-data = %q", got)
	}
	vd := string(files["vendor-data"])
	if !strings.HasPrefix(vd, "#cloud-boothook\n#!/bin/sh\n") {
		t.Errorf("vendor-data is no boothook:\n%s", vd)
	}
	if want := "\nsecret 52:54:00:aa:00:01 fd00:0000:0000:0000:0000:0000:0001:0002\n"; !strings.Contains(vd, want) {
		t.Errorf("vendor-data has no line %q:\n%s", want, vd)
	}
	if files, _ := (Config{InstanceID: "i"}).Files(); files["vendor-data"] != nil {
		t.Errorf("vendor-data without secrets:\n%s", files["vendor-data"])
	}
	// The hook is valid sh.
	if out, err := exec.Command("sh", "-n", "-c", vd).CombinedOutput(); err != nil {
		t.Errorf("sh -n: %v\n%s", err, out)
	}
}
