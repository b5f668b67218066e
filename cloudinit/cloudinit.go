// Package cloudinit makes a VM's cloud-init NoCloud seed: meta-data,
// user-data and, where the VM's addresses are not served by DHCP, a
// network-config, written to a small ISO9660 image labelled "cidata"
// that cloud-init finds among the VM's disks.
package cloudinit

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/kdomanski/iso9660"
	"gopkg.in/yaml.v3"
)

// Label is the volume label cloud-init's NoCloud data source looks for.
const Label = "cidata"

// Config is what a VM's seed says.
type Config struct {
	// InstanceID names the instance: cloud-init runs its once-per-instance
	// modules again when it changes, so it stays the same for one VM of
	// one project.
	InstanceID string
	Hostname   string

	// MetaData, UserData and NetworkConfig are the user's own files'
	// contents, used as they are (meta-data gets instance-id and
	// local-hostname where it has none). A nil UserData is generated:
	// a #cloud-config installing SSHAuthorizedKeys.
	MetaData, UserData, NetworkConfig []byte

	// SSHAuthorizedKeys go into the generated user-data, or, beside the
	// user's own user-data, into meta-data's public-keys (which
	// cloud-init installs for the default user too).
	SSHAuthorizedKeys []string

	// StableSecrets are the RFC 7217 secrets of the interfaces on
	// stable-privacy networks, which the seed's vendor-data gives the
	// guest (see vendorData).
	StableSecrets []StableSecret

	// SSHKey, an authorized_keys line, is the project's key: the seed's
	// vendor-data adds a user foldup with it and passwordless sudo (see
	// vendorData), through which foldup exec, ssh and cp reach the guest.
	SSHKey string

	// NICs, when not nil and NetworkConfig is nil, make a network-config
	// (version 2) matching each interface by MAC: DHCP where the network
	// serves it, the planned addresses otherwise.
	NICs []NIC
}

// NIC is one interface of a VM as its network-config describes it.
type NIC struct {
	MAC        string
	DHCP       bool           // DHCPv4 (and the kernel's own SLAAC for IPv6)
	Addresses  []netip.Prefix // static addresses, when not DHCP
	Gateway4   netip.Addr
	Gateway6   netip.Addr
	DNS        []netip.Addr
	DNSSearch  []string
	DefaultVia bool // this NIC carries the default routes
}

// StableSecret is the stable_secret of the interface with MAC, written
// as an IPv6 address, as the kernel takes it.
type StableSecret struct {
	MAC    string
	Secret netip.Addr
}

// Files returns the seed's files by name: meta-data, user-data and, when
// there is one, network-config and vendor-data.
func (c Config) Files() (map[string][]byte, error) {
	meta := map[string]any{}
	if len(c.MetaData) > 0 {
		if err := yaml.Unmarshal(c.MetaData, &meta); err != nil {
			return nil, fmt.Errorf("meta-data: %w", err)
		}
		if meta == nil {
			meta = map[string]any{}
		}
	}
	if _, ok := meta["instance-id"]; !ok {
		meta["instance-id"] = c.InstanceID
	}
	if _, ok := meta["local-hostname"]; !ok && c.Hostname != "" {
		meta["local-hostname"] = c.Hostname
	}
	user := c.UserData
	if user == nil {
		doc := map[string]any{}
		if len(c.SSHAuthorizedKeys) > 0 {
			doc["ssh_authorized_keys"] = c.SSHAuthorizedKeys
		}
		b, err := marshal(doc)
		if err != nil {
			return nil, err
		}
		user = append([]byte("#cloud-config\n"), b...)
	} else if len(c.SSHAuthorizedKeys) > 0 {
		keys, _ := meta["public-keys"].([]any)
		for _, k := range c.SSHAuthorizedKeys {
			keys = append(keys, k)
		}
		meta["public-keys"] = keys
	}
	metaYAML, err := marshal(meta)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{"meta-data": metaYAML, "user-data": user}
	if len(c.StableSecrets) > 0 || c.SSHKey != "" {
		files["vendor-data"] = vendorData(c.StableSecrets, c.SSHKey)
	}
	switch {
	case c.NetworkConfig != nil:
		files["network-config"] = c.NetworkConfig
	case c.NICs != nil:
		b, err := networkConfig(c.NICs)
		if err != nil {
			return nil, err
		}
		files["network-config"] = b
	}
	return files, nil
}

// WriteISO writes the seed as an ISO9660 image labelled cidata. Plain
// ISO9660 names are enough: Linux shows "meta-data;1" as meta-data.
func (c Config) WriteISO(w io.Writer) error {
	files, err := c.Files()
	if err != nil {
		return err
	}
	iw, err := iso9660.NewWriter()
	if err != nil {
		return err
	}
	defer iw.Cleanup()
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := iw.AddFile(bytes.NewReader(files[name]), name); err != nil {
			return fmt.Errorf("seed %s: %w", name, err)
		}
	}
	return iw.WriteTo(w, Label)
}

// vendorData is a boothook (cloud-init runs those on every boot, early in
// its network stage, as root) that does two things. A boothook in
// vendor-data leaves the user's user-data as it is, whatever its format; a
// user can turn vendor-data off (vendor_data: {enabled: false}).
//
// With secrets, it gives each interface its stable_secret and
// addr_gen_mode 2 (RFC 7217), so that the kernel forms the addresses the
// plan did. The links are up by then, with addresses formed another way,
// so it turns IPv6 off and on again on each interface it changes (IPv4 is
// left alone), and the kernel forms them again, asking the router anew. It
// also writes /etc/sysctl.d/60-foldup-stable-secret.conf, which
// systemd-sysctl applies as each interface appears on later boots, before
// it is up.
//
// With key, it makes the user foldup (no password, not locked, so that
// sshd takes its key), puts key in its authorized_keys and gives it
// passwordless sudo, as Vagrant's box user and Lima's user are made.
func vendorData(secrets []StableSecret, key string) []byte {
	var b strings.Builder
	b.WriteString("#cloud-boothook\n#!/bin/sh\n")
	if len(secrets) > 0 {
		b.WriteString(`# foldup: the RFC 7217 secrets of this VM's interfaces on stable-privacy networks.
conf=/etc/sysctl.d/60-foldup-stable-secret.conf
echo "# written by foldup's cloud-init vendor-data" >"$conf.tmp"
secret() {
	for d in /sys/class/net/*; do
		[ "$(cat "$d/address" 2>/dev/null)" = "$1" ] || continue
		n=${d##*/} c=/proc/sys/net/ipv6/conf/${d##*/}
		printf 'net.ipv6.conf.%s.stable_secret = %s\nnet.ipv6.conf.%s.addr_gen_mode = 2\n' "$n" "$2" "$n" >>"$conf.tmp"
		if [ "$(cat "$c/stable_secret" 2>/dev/null)" != "$2" ] || [ "$(cat "$c/addr_gen_mode")" != 2 ]; then
			echo "$2" >"$c/stable_secret" && echo 2 >"$c/addr_gen_mode" &&
				echo 1 >"$c/disable_ipv6" && echo 0 >"$c/disable_ipv6"
		fi
	done
}
`)
		for _, s := range secrets {
			// Expanded, as the kernel shows it back (%pI6): the hook compares.
			fmt.Fprintf(&b, "secret %s %s\n", strings.ToLower(s.MAC), s.Secret.StringExpanded())
		}
		b.WriteString("mv \"$conf.tmp\" \"$conf\"\n")
	}
	if key != "" {
		fmt.Fprintf(&b, `# foldup: the user foldup exec, ssh and cp log in as, with the project's key.
id foldup >/dev/null 2>&1 || useradd -m -s /bin/sh foldup || adduser -D -s /bin/sh foldup
usermod -p '*' foldup 2>/dev/null || passwd -u foldup 2>/dev/null
h=$(getent passwd foldup | cut -d: -f6)
mkdir -p "$h/.ssh" && echo %s >"$h/.ssh/authorized_keys" &&
	chmod 700 "$h/.ssh" && chmod 600 "$h/.ssh/authorized_keys" && chown -R foldup "$h/.ssh"
mkdir -p /etc/sudoers.d && echo 'foldup ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/90-foldup && chmod 440 /etc/sudoers.d/90-foldup
`, shellQuote(key))
	}
	return []byte(b.String())
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// networkConfig is a network-config version 2 for the NICs, each matched
// by its MAC and named by cloud-init's usual eth0, eth1, ...
func networkConfig(nics []NIC) ([]byte, error) {
	type nameservers struct {
		Addresses []string `yaml:"addresses,omitempty"`
		Search    []string `yaml:"search,omitempty"`
	}
	type route struct {
		To  string `yaml:"to"`
		Via string `yaml:"via"`
	}
	type ethernet struct {
		Match       map[string]string `yaml:"match"`
		SetName     string            `yaml:"set-name"`
		DHCP4       bool              `yaml:"dhcp4"`
		DHCP6       bool              `yaml:"dhcp6"`
		Addresses   []string          `yaml:"addresses,omitempty"`
		Routes      []route           `yaml:"routes,omitempty"`
		Nameservers *nameservers      `yaml:"nameservers,omitempty"`
	}
	eth := map[string]ethernet{}
	for i, n := range nics {
		e := ethernet{Match: map[string]string{"macaddress": strings.ToLower(n.MAC)}, SetName: fmt.Sprintf("eth%d", i), DHCP4: n.DHCP}
		if !n.DHCP {
			for _, a := range n.Addresses {
				e.Addresses = append(e.Addresses, a.String())
			}
			if n.DefaultVia {
				if n.Gateway4.IsValid() {
					e.Routes = append(e.Routes, route{To: "0.0.0.0/0", Via: n.Gateway4.String()})
				}
				if n.Gateway6.IsValid() {
					e.Routes = append(e.Routes, route{To: "::/0", Via: n.Gateway6.String()})
				}
			}
			if len(n.DNS) > 0 || len(n.DNSSearch) > 0 {
				ns := &nameservers{Search: n.DNSSearch}
				for _, a := range n.DNS {
					ns.Addresses = append(ns.Addresses, a.String())
				}
				e.Nameservers = ns
			}
		}
		eth[e.SetName] = e
	}
	return marshal(map[string]any{"version": 2, "ethernets": eth})
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
