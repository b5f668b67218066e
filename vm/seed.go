//go:build linux

package vm

import (
	"bytes"
	"net/netip"
	"os"

	"github.com/foldup/foldup/cloudinit"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
	"github.com/foldup/foldup/state"
)

// WriteSeed writes a VM's cloud-init NoCloud seed: the user's files, or
// what foldup generates (meta-data, user-data with the SSH keys, and a
// network-config when a network does not serve DHCP or the VM has more
// than one NIC), and a vendor-data giving the interfaces on stable-privacy
// networks their RFC 7217 secrets and adds the user foldup with sshKey
// (the project's, ProjectKey).
func WriteSeed(pl *planner.Plan, m *planner.Member, v *spec.VM, sshKey, path string, uid, gid int) error {
	ci := v.CloudInit
	c := cloudinit.Config{
		InstanceID:        "foldup-" + pl.Project + "-" + m.Name,
		Hostname:          m.Name,
		SSHAuthorizedKeys: ci.SSHAuthorizedKeys,
		SSHKey:            sshKey,
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
		n := pl.Network(nic.Network)
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
		if pl.Domain != "" {
			cn.DNSSearch = []string{pl.Domain}
		}
		if nic.IPv6.IsValid() && n.IPv6Mode == spec.IPv6StablePrivacy {
			c.StableSecrets = append(c.StableSecrets, cloudinit.StableSecret{MAC: nic.MAC, Secret: netip.AddrFrom16(planner.StableSecret(pl.Project, m.Name, n.Name))})
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
