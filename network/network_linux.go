// Package network turns a plan's networks into kernel state and back: one
// Linux bridge per network with its gateway addresses, a tap per VM NIC,
// helpers to attach veths and other links, and the project's two nftables
// tables (FirewallApply). Everything goes through netlink in an explicit
// network namespace, never through ip(8) or nft(8).
//
// Prerequisites: Linux, root (CAP_NET_ADMIN in the namespace), /dev/net/tun.
// Tests: go test ./network (as root; they make and remove their own
// namespaces).
package network

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Host is one network namespace in which foldup makes its segments.
type Host struct {
	ns netns.NsHandle
	nl *netlink.Handle
}

// Open returns a Host for the namespace ns; it keeps its own duplicate of
// the handle, so the caller may close ns. Close releases it.
func Open(ns netns.NsHandle) (*Host, error) {
	fd, err := unix.Dup(int(ns))
	if err != nil {
		return nil, fmt.Errorf("dup netns: %w", err)
	}
	own := netns.NsHandle(fd)
	// Routing only: foldup asks nothing else of netlink here (nftables
	// has its own connection), and a kernel without xfrm or nfnetlink
	// loaded would refuse a handle for all families.
	nl, err := netlink.NewHandleAt(own, unix.NETLINK_ROUTE)
	if err != nil {
		own.Close()
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	return &Host{ns: own, nl: nl}, nil
}

// OpenCurrent returns a Host for the calling thread's namespace.
func OpenCurrent() (*Host, error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return Open(ns)
}

// Close releases the Host's handles.
func (h *Host) Close() error {
	h.nl.Close()
	return h.ns.Close()
}

// Do runs fn on a thread that has entered the Host's namespace: for the
// operations that act on the caller's namespace rather than on a netlink
// socket's (creating a tap through /dev/net/tun, writing /proc/sys/net).
func (h *Host) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is left locked when the goroutine ends, so the runtime
		// throws it away instead of reusing it in the other namespace.
		runtime.LockOSThread()
		if err := netns.Set(h.ns); err != nil {
			errc <- fmt.Errorf("entering netns: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// BridgeOptions describe a bridge.
type BridgeOptions struct {
	Name  string
	MTU   int            // 0: the kernel's default
	Addrs []netip.Prefix // gateway addresses, with the subnet's length
	// MulticastSnooping makes the bridge forward a group's traffic only to
	// ports that joined it, and act as querier so that members report
	// what they joined.
	MulticastSnooping bool
}

// BridgeAdd makes the bridge, with a MAC of its own (bridgeMAC), or
// adopts it when it exists already, and brings it to the state o
// describes: addresses (others removed), MTU, IPv6 settings, up. The
// bridge's IPv6 side takes no router advertisements (foldup's server
// sends them) and skips duplicate address detection, so the server can
// bind its address at once.
//
// Equivalent to: ip link add $name address $mac type bridge; ip addr add ... nodad; ip link set $name up
func (h *Host) BridgeAdd(o BridgeOptions) error {
	link, err := h.nl.LinkByName(o.Name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		snoop := o.MulticastSnooping
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: o.Name, MTU: o.MTU, HardwareAddr: bridgeMAC(o.Name)}, MulticastSnooping: &snoop}
		if err := h.nl.LinkAdd(br); err != nil {
			return fmt.Errorf("creating bridge %s: %w", o.Name, err)
		}
		if link, err = h.nl.LinkByName(o.Name); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("looking up %s: %w", o.Name, err)
	case link.Type() != "bridge":
		return fmt.Errorf("%s exists and is a %s, not a bridge", o.Name, link.Type())
	default:
		// Only name and index: resending every attribute read back from
		// the kernel is refused (some cannot be changed).
		minimal := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: o.Name, Index: link.Attrs().Index}}
		if err := h.nl.BridgeSetMcastSnoop(minimal, o.MulticastSnooping); err != nil {
			return fmt.Errorf("setting multicast snooping on %s: %w", o.Name, err)
		}
	}
	if o.MTU != 0 && link.Attrs().MTU != o.MTU {
		if err := h.nl.LinkSetMTU(link, o.MTU); err != nil {
			return fmt.Errorf("setting mtu of %s: %w", o.Name, err)
		}
	}
	if err := h.bridgeQuerier(link.Attrs().Index, o.MulticastSnooping); err != nil {
		return fmt.Errorf("setting multicast querier on %s: %w", o.Name, err)
	}
	if err := h.sysctls(o.Name, map[string]string{
		"ipv6/conf/%s/accept_ra":  "0",
		"ipv6/conf/%s/accept_dad": "0",
		"ipv6/conf/%s/autoconf":   "0",
		// Port forwards from the host's localhost: packets from 127.0.0.1
		// may leave by the bridge (masqueraded on the way). foldup's inet
		// table drops packets to 127.0.0.0/8 arriving from its bridges.
		"ipv4/conf/%s/route_localnet": "1",
	}); err != nil {
		return err
	}
	if err := h.setAddrs(link, o.Addrs); err != nil {
		return err
	}
	if err := h.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing up %s: %w", o.Name, err)
	}
	return nil
}

// bridgeMAC is the MAC a bridge is made with: derived from its name,
// locally administered. A bridge given its MAC keeps it; one left to
// choose takes the lowest MAC of its ports, and changes it as members
// come and go, and what members have learned of it goes stale: the
// gateway's ARP entry, and the router's link-layer address that foldup's
// server puts in its router advertisements (read once, when it starts).
func bridgeMAC(name string) net.HardwareAddr {
	h := sha256.Sum256([]byte("foldup bridge " + name))
	h[0] = h[0]&0xfc | 0x02 // locally administered, unicast
	return net.HardwareAddr(h[:6])
}

// bridgeQuerier turns the bridge's IGMP/MLD querier on or off (the
// netlink package has no setter for it).
//
// Equivalent to: ip link set $name type bridge mcast_querier 1
func (h *Host) bridgeQuerier(index int, on bool) error {
	return h.Do(func() error {
		req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
		msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
		msg.Index = int32(index)
		req.AddData(msg)
		info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
		info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
		data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
		v := byte(0)
		if on {
			v = 1
		}
		data.AddRtAttr(nl.IFLA_BR_MCAST_QUERIER, []byte{v})
		req.AddData(info)
		_, err := req.Execute(unix.NETLINK_ROUTE, 0)
		return err
	})
}

// EnableForwarding turns on routing in the namespace, as NAT and port
// forwards need: IPv4 always, IPv6 when ipv6 is set. Turning IPv6
// forwarding on makes the kernel ignore router advertisements on
// interfaces with accept_ra=1, which would cost the host its own SLAAC
// address; those are moved to accept_ra=2 (accept them while forwarding)
// first, as libvirt advises.
func (h *Host) EnableForwarding(ipv6 bool) error {
	return h.Do(func() error {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
			return err
		}
		if !ipv6 {
			return nil
		}
		on, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/forwarding")
		if err != nil || strings.TrimSpace(string(on)) == "1" {
			return err
		}
		paths, err := filepath.Glob("/proc/sys/net/ipv6/conf/*/accept_ra")
		if err != nil {
			return err
		}
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == "1" {
				if err := os.WriteFile(p, []byte("2"), 0o644); err != nil {
					return err
				}
			}
		}
		return os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("1"), 0o644)
	})
}

// setAddrs makes want the link's global addresses, leaving link-local ones.
func (h *Host) setAddrs(link netlink.Link, want []netip.Prefix) error {
	have, err := h.nl.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("listing addresses of %s: %w", link.Attrs().Name, err)
	}
	keep := map[netip.Prefix]bool{}
	for _, p := range want {
		keep[p] = true
	}
	for _, a := range have {
		p, ok := prefixOf(a)
		if !ok || p.Addr().IsLinkLocalUnicast() || keep[p] {
			delete(keep, p)
			continue
		}
		if err := h.nl.AddrDel(link, &a); err != nil {
			return fmt.Errorf("removing %s from %s: %w", p, link.Attrs().Name, err)
		}
	}
	for _, p := range want {
		if !keep[p] {
			continue // present already
		}
		a := &netlink.Addr{IPNet: ipNet(p)}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.nl.AddrAdd(link, a); err != nil {
			return fmt.Errorf("adding %s to %s: %w", p, link.Attrs().Name, err)
		}
	}
	return nil
}

// TapAdd makes a persistent tap owned by uid and gid, so that qemu running
// as that user can open it without privileges, and enslaves it to bridge.
// A tap that exists already is adopted.
//
// Equivalent to: ip tuntap add $name mode tap user $uid group $gid; ip link set $name master $bridge up
func (h *Host) TapAdd(name, bridge string, uid, gid uint32, mtu int) error {
	if _, err := h.nl.LinkByName(name); err != nil {
		tap := &netlink.Tuntap{
			LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu},
			Mode:      netlink.TUNTAP_MODE_TAP,
			Flags:     netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR,
			Owner:     uid,
			Group:     gid,
		}
		// Creating a tap opens /dev/net/tun in the caller's namespace.
		err := h.Do(func() error {
			if err := netlink.LinkAdd(tap); err != nil {
				return err
			}
			for _, f := range tap.Fds {
				f.Close() // persistent: the device stays without them
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("creating tap %s: %w", name, err)
		}
	}
	return h.LinkAttach(name, bridge)
}

// VethAdd makes a veth pair, name in this namespace and peer in peerNS
// (or here, when peerNS is -1).
//
// Equivalent to: ip link add $name type veth peer name $peer netns $peerNS
func (h *Host) VethAdd(name, peer string, peerNS netns.NsHandle) error {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}
	if peerNS >= 0 {
		v.PeerNamespace = netlink.NsFd(peerNS)
	}
	if err := h.nl.LinkAdd(v); err != nil {
		return fmt.Errorf("creating veth %s: %w", name, err)
	}
	return nil
}

// LinkAttach enslaves an existing link (a tap, a veth end, a Docker veth)
// to bridge and brings it up.
//
// Equivalent to: ip link set $name master $bridge up
func (h *Host) LinkAttach(name, bridge string) error {
	link, err := h.nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("looking up %s: %w", name, err)
	}
	br, err := h.nl.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("looking up bridge %s: %w", bridge, err)
	}
	if link.Attrs().MasterIndex != br.Attrs().Index {
		if err := h.nl.LinkSetMaster(link, br); err != nil {
			return fmt.Errorf("attaching %s to %s: %w", name, bridge, err)
		}
	}
	if err := h.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing up %s: %w", name, err)
	}
	return nil
}

// LinkDel deletes the link name. A link that does not exist is not an
// error: down must be able to run twice.
//
// Equivalent to: ip link del $name
func (h *Host) LinkDel(name string) error {
	link, err := h.nl.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up %s: %w", name, err)
	}
	if err := h.nl.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

// HasLink reports whether the namespace has a link of that name.
func (h *Host) HasLink(name string) bool {
	_, err := h.nl.LinkByName(name)
	return err == nil
}

// Links returns the names of the links in the namespace.
func (h *Host) Links() ([]string, error) {
	links, err := h.nl.LinkList()
	if err != nil {
		return nil, err
	}
	names := make([]string, len(links))
	for i, l := range links {
		names[i] = l.Attrs().Name
	}
	return names, nil
}

// sysctls writes net.* settings of one interface; keys are paths under
// /proc/sys/net with %s for the interface.
func (h *Host) sysctls(ifname string, kv map[string]string) error {
	return h.Do(func() error {
		// A /proc/sys/net file acts on the namespace of the thread that
		// opens it (net sysctls are looked up from current's nsproxy).
		for k, v := range kv {
			p := filepath.Join("/proc/sys/net", fmt.Sprintf(k, ifname))
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				return fmt.Errorf("sysctl %s: %w", p, err)
			}
		}
		return nil
	})
}

func prefixOf(a netlink.Addr) (netip.Prefix, bool) {
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := a.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Prefixes returns the subnets of the addresses on the namespace's links,
// except those on the links named in skip: automatic subnets avoid them.
func (h *Host) Prefixes(skip ...string) ([]netip.Prefix, error) {
	links, err := h.nl.LinkList()
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, l := range links {
		if slices.Contains(skip, l.Attrs().Name) {
			continue
		}
		addrs, err := h.nl.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			if p, ok := prefixOf(a); ok && !p.Addr().IsLinkLocalUnicast() && !p.Addr().IsLoopback() {
				out = append(out, p.Masked())
			}
		}
	}
	return out, nil
}

// PeerPorts returns, for each interface of the process pid's network
// namespace that is one end of a veth, the name of its other end in this
// namespace, keyed by the interface's MAC: how a container's ports on
// foldup's bridges are found (Docker names them vethXXXXXXX).
func (h *Host) PeerPorts(pid int) (map[string]string, error) {
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return nil, fmt.Errorf("netns of pid %d: %w", pid, err)
	}
	defer ns.Close()
	inner, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, err
	}
	defer inner.Close()
	links, err := inner.LinkList()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, l := range links {
		if l.Type() != "veth" || l.Attrs().ParentIndex == 0 {
			continue
		}
		peer, err := h.nl.LinkByIndex(l.Attrs().ParentIndex)
		if err != nil {
			continue // its peer is in another namespace
		}
		out[l.Attrs().HardwareAddr.String()] = peer.Attrs().Name
	}
	return out, nil
}
