package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// Config is the firewall of one project: its networks, the ports of its
// members on them, and the host ports forwarded to members.
type Config struct {
	Project  string
	Networks []Net
	Ports    []Port
	Forwards []Forward
	// MACs are every member's planned MACs, its port known or not. A
	// port that is not in Ports (a container of the project just started,
	// its veth not yet synced, or one joined by hand, not yet adopted)
	// reaches members only from one of these.
	MACs []net.HardwareAddr
}

// Net is one of the project's networks as the firewall sees it.
type Net struct {
	Bridge   string
	Gateway4 netip.Addr // where the project's DNS/DHCP server listens
	Gateway6 netip.Addr
	// Isolated networks exchange nothing with the world beyond the
	// bridge; their members reach the host only for DNS, DHCP and NDP.
	Isolated bool
	// Outbound decides what happens to traffic leaving the network for
	// anywhere but its own bridge: OutboundNAT (masquerade), OutboundDrop,
	// or the name of a chain in the project's inet table to jump to.
	Outbound string
	// Multicast lists the groups members may receive (beyond those IPv6
	// needs to work at all).
	Multicast []netip.Addr
	// LinkLocal lists the bridge's own link-local addresses, which no
	// member may send from or advertise. FirewallApply reads them from
	// the bridge when none are given.
	LinkLocal []netip.Addr
	// MAC is the bridge's, the source of foldup's advertisements on it.
	// FirewallApply reads it from the bridge when none is given.
	MAC net.HardwareAddr
}

// Outbound policies.
const (
	OutboundNAT  = "nat"
	OutboundDrop = "drop"
)

// Port is one member's port on a foldup bridge (a VM's tap, a container's
// veth) and what it may send as: its MAC and its addresses.
type Port struct {
	Name   string // interface name on the host side
	Bridge string // the bridge it is on: which network's multicast groups it receives
	MAC    net.HardwareAddr
	IPv4   []netip.Addr
	IPv6   []netip.Addr
	// RA lets foldup's router advertisements out to the port: a VM's
	// tap, whose guest configures IPv6 from them. No other port gets
	// them: Docker configures a container's address and gateway itself,
	// and an advertisement that lands while it does makes the container
	// fail to start ("failed to set IPv6 gateway ...: file exists").
	RA bool
}

// Forward is a host port forwarded to a member's address.
type Forward struct {
	Protocol string     // "tcp" or "udp"
	HostIP   netip.Addr // the zero Addr: every address of the host, of To's family
	HostPort uint16
	To       netip.Addr
	Port     uint16
}

// TableName is the name of a project's nftables tables (one in the bridge
// family, one in inet).
func TableName(project string) string { return "foldup-" + project }

// FirewallApply makes the project's two nftables tables, or brings their
// sets to cfg when they exist:
//
//   - bridge foldup-<project>: what each member port may send (its MAC,
//     its addresses, no DHCP server replies, no router advertisements,
//     nothing as a bridge's link-local address) and which multicast
//     groups it may receive;
//   - inet foldup-<project>: isolation, cross-network drops, outbound
//     policy and masquerade, port forwards.
//
// The rules are written once, when a table is made; they look everything
// up in sets and maps keyed by interface, address and port, so the cost
// per packet does not grow with the number of members, and later calls
// only add and delete elements. Run `nft list table inet foldup-<project>`
// to read them.
func (h *Host) FirewallApply(cfg Config) error {
	if err := cfg.check(); err != nil {
		return err
	}
	cfg, err := h.bridgeAddrs(cfg)
	if err != nil {
		return err
	}
	if err := h.apply(filterTable(cfg)); err != nil {
		return err
	}
	return h.apply(guardTable(cfg))
}

// bridgeAddrs fills in, from each network's bridge as it is now, the MAC
// of each that has none, and the LinkLocal of each that has none: the
// bridge's link-local addresses (Docker adds fe80::1 to an IPv6 bridge)
// and the EUI-64 one of its MAC, which the kernel forms only once the
// bridge has a port. A bridge not made yet has neither.
func (h *Host) bridgeAddrs(cfg Config) (Config, error) {
	nets := slices.Clone(cfg.Networks)
	for i, n := range nets {
		if len(n.LinkLocal) > 0 && len(n.MAC) > 0 {
			continue
		}
		link, err := h.nl.LinkByName(n.Bridge)
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			continue
		}
		if err != nil {
			return cfg, fmt.Errorf("looking up %s: %w", n.Bridge, err)
		}
		hw := link.Attrs().HardwareAddr
		if len(n.MAC) == 0 && len(hw) == 6 {
			n.MAC = hw
		}
		if len(n.LinkLocal) == 0 {
			if ll, ok := EUI64LinkLocal(hw); ok {
				n.LinkLocal = append(n.LinkLocal, ll)
			}
			addrs, err := h.nl.AddrList(link, netlink.FAMILY_V6)
			if err != nil {
				return cfg, fmt.Errorf("reading %s's addresses: %w", n.Bridge, err)
			}
			for _, a := range addrs {
				if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.IsLinkLocalUnicast() && !slices.Contains(n.LinkLocal, ip) {
					n.LinkLocal = append(n.LinkLocal, ip)
				}
			}
		}
		nets[i] = n
	}
	cfg.Networks = nets
	return cfg, nil
}

// FirewallRemove deletes the project's tables, and nothing else. Missing
// tables are not an error.
func (h *Host) FirewallRemove(project string) error {
	if err := h.removeTable(TableName(project), nftables.TableFamilyBridge); err != nil {
		return err
	}
	return h.removeTable(TableName(project), nftables.TableFamilyINet)
}

func (cfg Config) check() error {
	for _, n := range cfg.Networks {
		if n.Outbound == "" {
			return fmt.Errorf("network %s: no outbound policy", n.Bridge)
		}
	}
	for _, f := range cfg.Forwards {
		if f.Protocol != "tcp" && f.Protocol != "udp" {
			return fmt.Errorf("forward to %s: protocol %q is not tcp or udp", f.To, f.Protocol)
		}
		if f.HostIP.IsValid() && f.HostIP.Is4() != f.To.Is4() {
			return fmt.Errorf("forward %s:%d to %s: the addresses are of different families", f.HostIP, f.HostPort, f.To)
		}
	}
	seen := map[string]bool{}
	for _, p := range cfg.Ports {
		if seen[p.Name] {
			return fmt.Errorf("port %s listed twice", p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}
