package network

import (
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// serverRate is how many DNS and DHCP packets over UDP a member port may
// send a second, in bursts of as many (see guardTable).
const serverRate = 2000

const (
	etherIPv4 = 0x0800
	etherARP  = 0x0806
	etherIPv6 = 0x86dd
)

// guardTable is the project's bridge-family table: the layer-2 policy of
// every member port.
//
// What a port may send (hook prerouting, before the bridge decides
// anything). TCP from a port's own MAC and address, the bulk of the
// traffic, is accepted after one or two lookups; to another member it is
// also exempted from connection tracking, which would cost every frame
// and decide nothing (between networks, foldup's inet table drops it
// whatever its state). Everything else takes the long way:
//
//	chain prerouting { type filter hook prerouting priority -200
//	    ether type ip meta l4proto tcp iifname . ether saddr . ip saddr @port_mac_ipv4 ip daddr @member_ipv4 notrack accept
//	    ether type ip6 meta l4proto tcp iifname . ether saddr . ip6 saddr @port_mac_ipv6 ip6 daddr @member_ipv6 notrack accept
//	    ether type ip meta l4proto tcp iifname . ether saddr . ip saddr @port_mac_ipv4 ip daddr != 127.0.0.0/8 accept
//	    ether type ip6 meta l4proto tcp iifname . ether saddr . ip6 saddr @port_mac_ipv6 accept
//	    iifname @ports jump port
//	}
//	chain forward { type filter hook forward priority -200
//	    # from a port that is no member's (a container of the project
//	    # whose veth is not yet synced, one joined by hand and not yet
//	    # adopted by the supervisor) to a member's
//	    iifname != @ports oifname @ports jump stranger
//	}
//	chain stranger {
//	    ether saddr != @member_mac drop        # refused, unless it is a member's
//	    udp sport 67 drop; udp dport 68 drop; icmpv6 type nd-router-advert drop
//	    udp sport 547 drop; udp dport 546 drop
//	}
//	chain port {
//	    iifname . ether saddr != @port_mac drop
//	    ether type ip jump port_ipv4; ether type arp jump port_arp; ether type ip6 jump port_ipv6
//	    drop                                   # any other ethertype, VLAN tags included
//	}
//	chain port_ipv4 {
//	    ip daddr 127.0.0.0/8 drop              # the bridge has route_localnet on, for port forwards
//	    udp sport 67 drop                      # no DHCP server but foldup's
//	    udp dport 68 drop                      # nor any answer to a client, from whatever port
//	    udp dport { 53, 67 } update @server_rate { iifname limit rate over 2000/second burst 2000 packets } drop
//	    ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept
//	    iifname . ip saddr != @port_ipv4 drop
//	    ip daddr 224.0.0.0/4 jump mcast_ipv4
//	    accept
//	}
//	chain port_arp {
//	    iifname . arp saddr ether != @port_mac drop
//	    arp saddr ip 0.0.0.0 accept            # address probes
//	    iifname . arp saddr ip != @port_ipv4 drop
//	    accept
//	}
//	chain port_ipv6 {
//	    icmpv6 type nd-router-advert drop      # no router but foldup
//	    udp sport 547 drop                     # no DHCPv6 server but foldup's
//	    udp dport 546 drop                     # nor any answer to a client, from whatever port
//	    udp dport { 53, 547 } update @server_rate { iifname limit rate over 2000/second burst 2000 packets } drop
//	    ip6 saddr @router_ll drop              # nothing from a bridge's link-local address
//	    ip6 saddr @member_ll iifname . ip6 saddr != @port_ll drop   # nor from another member's
//	    icmpv6 type nd-neighbor-advert jump port_na
//	    ip6 saddr != :: ip6 saddr != fe80::/10 iifname . ip6 saddr != @port_ipv6 drop
//	    ip6 daddr ff00::/8 jump mcast_ipv6
//	    accept
//	}
//	chain port_na {
//	    @th,64,128 @router_ll drop
//	    @th,64,128 @member_ll iifname . @th,64,128 != @port_ll drop
//	    @th,64,128 fe80::/10 accept
//	    iifname . @th,64,128 != @port_ipv6 drop
//	    accept
//	}
//
// DNS and DHCP over UDP are rationed per port (server_rate: one token
// bucket per interface, serverRate a second): a member that floods them,
// to foldup's server or through it, loses its own excess in the kernel,
// before the server's socket, whose queue the other members share. What
// a member needs (a lease, its lookups, a load test's few hundred a
// second) is far below it.
//
// Only foldup's server answers DHCP: a client takes an answer from any
// source port (it keys on its own port and its transaction), broadcast or
// unicast, so nothing a member sends may go to a client's port, 68 or
// 546, as well as nothing from a server's.
//
// Link-local addresses: each port has one the plan knows, the EUI-64
// address of its MAC (port_ll), which is what Linux forms by default, in
// a container as in a VM. No port may send from, or advertise as its
// own, another port's (member_ll), nor a bridge's (router_ll, see
// Net.LinkLocal): members route through the one foldup's advertisements
// come from, and a member that claimed it, by an advertisement or by the
// source link-layer option of a solicitation sent from it, would take
// their traffic. Other link-local addresses stay the guests' own to form
// (stable-privacy, random): a port may send from and advertise those, and
// foldup cannot tell whose they are, so it protects only the ones it
// knows.
//
// Multicast: a port may send only to the groups its network lists, plus
// what IPv4 and IPv6 need to work (all-hosts/all-nodes, IGMP/MLD,
// solicited-node, and the all-routers and DHCPv6 groups foldup's server
// listens on). Every member of a network has the same list, so filtering
// where a frame comes in is filtering where it goes out, without a
// second base chain every bridged frame would cross.
//
// Router advertisements from foldup's server (the host, through one of
// the project's bridges, so from that bridge's MAC) go out only to the
// ports that want them (Port.RA): the VMs' taps. Other bridges, another
// project's or libvirt's, are left alone. (meta obrname would say the
// bridge, but not every kernel has it.)
//
//	chain output { type filter hook output priority -200
//	    icmpv6 type nd-router-advert ether saddr @router_mac oifname != @ra_ports drop
//	}
//
//	chain mcast_ipv4 {
//	    meta l4proto igmp accept; ip daddr 224.0.0.1 accept
//	    iifname . ip daddr @mcast_ipv4 accept
//	    drop
//	}
//	chain mcast_ipv6 {
//	    ip6 daddr { ff02::1, ff02::2, ff02::1:2, ff02::1:ff00:0/104 } accept
//	    icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report } accept
//	    iifname . ip6 daddr @mcast_ipv6 accept
//	    drop
//	}
//
// EUI64LinkLocal is the link-local address a host forms from mac by
// default (RFC 4291, appendix A): fe80::, then mac with its
// universal/local bit flipped and ff:fe in the middle.
func EUI64LinkLocal(mac net.HardwareAddr) (netip.Addr, bool) {
	if len(mac) != 6 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 8: mac[0] ^ 2, 9: mac[1], 10: mac[2], 11: 0xff, 12: 0xfe, 13: mac[3], 14: mac[4], 15: mac[5]}), true
}

func portMACs(ports []Port) []net.HardwareAddr {
	out := make([]net.HardwareAddr, len(ports))
	for i, p := range ports {
		out[i] = p.MAC
	}
	return out
}

func guardTable(cfg Config) *tableDef {
	t := &nftables.Table{Family: nftables.TableFamilyBridge, Name: TableName(cfg.Project)}
	ifT, ethT, ip4T, ip6T := nftables.TypeIFName, nftables.TypeEtherAddr, nftables.TypeIPAddr, nftables.TypeIP6Addr
	ports := newSet(t, "ports", []nftables.SetDatatype{ifT})
	macs := newSet(t, "port_mac", []nftables.SetDatatype{ifT, ethT})
	ip4 := newSet(t, "port_ipv4", []nftables.SetDatatype{ifT, ip4T})
	ip6 := newSet(t, "port_ipv6", []nftables.SetDatatype{ifT, ip6T})
	portLL := newSet(t, "port_ll", []nftables.SetDatatype{ifT, ip6T})
	memLL := newSet(t, "member_ll", []nftables.SetDatatype{ip6T})
	macIP4 := newSet(t, "port_mac_ipv4", []nftables.SetDatatype{ifT, ethT, ip4T})
	macIP6 := newSet(t, "port_mac_ipv6", []nftables.SetDatatype{ifT, ethT, ip6T})
	mem4 := newSet(t, "member_ipv4", []nftables.SetDatatype{ip4T})
	mem6 := newSet(t, "member_ipv6", []nftables.SetDatatype{ip6T})
	mc4 := newSet(t, "mcast_ipv4", []nftables.SetDatatype{ifT, ip4T})
	mc6 := newSet(t, "mcast_ipv6", []nftables.SetDatatype{ifT, ip6T})
	routerLL := newSet(t, "router_ll", []nftables.SetDatatype{ip6T})
	raPorts := newSet(t, "ra_ports", []nftables.SetDatatype{ifT})
	routerMAC := newSet(t, "router_mac", []nftables.SetDatatype{ethT})
	memMAC := newSet(t, "member_mac", []nftables.SetDatatype{ethT})
	rate := newSet(t, "server_rate", []nftables.SetDatatype{ifT})
	rate.Dynamic, rate.HasTimeout, rate.Timeout, rate.Size = true, true, time.Minute, 65535

	d := &tableDef{table: t, sets: []*nftables.Set{ports, macs, ip4, ip6, portLL, memLL, macIP4, macIP6, mem4, mem6, mc4, mc6, routerLL, raPorts, routerMAC, memMAC, rate}, elems: map[*nftables.Set][]nftables.SetElement{}}
	el := func(s *nftables.Set, k []byte) { d.elems[s] = append(d.elems[s], nftables.SetElement{Key: k}) }
	seenLL := map[netip.Addr]bool{} // two ports may share a MAC, and so a link-local address
	for _, p := range cfg.Ports {
		name := ifname(p.Name)
		el(ports, name)
		el(macs, key(name, p.MAC))
		if ll, ok := EUI64LinkLocal(p.MAC); ok {
			el(portLL, key(name, ll.AsSlice()))
			if !seenLL[ll] {
				seenLL[ll] = true
				el(memLL, ll.AsSlice())
			}
		}
		if p.RA {
			el(raPorts, name)
		}
		for _, a := range p.IPv4 {
			el(ip4, key(name, a.AsSlice()))
			el(macIP4, key(name, p.MAC, a.AsSlice()))
			el(mem4, a.AsSlice())
		}
		for _, a := range p.IPv6 {
			el(ip6, key(name, a.AsSlice()))
			el(macIP6, key(name, p.MAC, a.AsSlice()))
			el(mem6, a.AsSlice())
		}
	}
	seenMAC := map[string]bool{}
	for _, m := range slices.Concat(cfg.MACs, portMACs(cfg.Ports)) {
		if len(m) == 6 && !seenMAC[string(m)] {
			seenMAC[string(m)] = true
			el(memMAC, m)
		}
	}
	groups := map[string][]netip.Addr{}
	lls := map[netip.Addr]bool{}
	for _, n := range cfg.Networks {
		if len(n.MAC) == 6 {
			el(routerMAC, n.MAC)
		}
		groups[n.Bridge] = n.Multicast
		for _, a := range n.LinkLocal {
			if !lls[a] { // Docker gives every IPv6 bridge fe80::1
				lls[a] = true
				el(routerLL, a.AsSlice())
			}
		}
	}
	for _, p := range cfg.Ports {
		for _, g := range groups[p.Bridge] {
			if g.Is4() {
				el(mc4, key(ifname(p.Name), g.AsSlice()))
			} else {
				el(mc6, key(ifname(p.Name), g.AsSlice()))
			}
		}
	}

	d.rules = func(c *nftables.Conn) {
		a := chainAdder{c, t}
		nh, th := expr.PayloadBaseNetworkHeader, expr.PayloadBaseTransportHeader
		udpSport := func(p uint16) []expr.Any {
			return rule(l4proto(unix.IPPROTO_UDP), is(payF(th, 0, 2), expr.CmpOpEq, be16(p)))
		}
		udpDport := func(p uint16) []expr.Any {
			return rule(l4proto(unix.IPPROTO_UDP), is(dport, expr.CmpOpEq, be16(p)))
		}
		icmp6Type := func(t byte) []expr.Any {
			return rule(l4proto(unix.IPPROTO_ICMPV6), is(payF(th, 0, 1), expr.CmpOpEq, []byte{t}))
		}
		linkLocal := netip.MustParsePrefix("fe80::/10")
		// rationed: UDP to port p, beyond the port's share.
		rationed := func(p uint16) []expr.Any {
			return rule(l4proto(unix.IPPROTO_UDP), is(dport, expr.CmpOpEq, be16(p)), loadAt([]field{iif}),
				&expr.Dynset{SrcRegKey: regFirst, SetName: rate.Name, SetID: rate.ID, Operation: unix.NFT_DYNSET_OP_UPDATE,
					Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: serverRate, Unit: expr.LimitTimeSecond, Burst: serverRate, Over: true}}})
		}

		pre := a.base("prerouting", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, -200) // NF_BR_PRI_FILTER_BRIDGED
		port, p4, parp, p6, pna := a.chain("port"), a.chain("port_ipv4"), a.chain("port_arp"), a.chain("port_ipv6"), a.chain("port_na")
		v4, arp, v6 := etherType(etherIPv4), etherType(etherARP), etherType(etherIPv6)
		tcp := l4proto(unix.IPPROTO_TCP)
		loopback := netip.MustParsePrefix("127.0.0.0/8")
		a.add(pre, v4, tcp, in(macIP4, false, iif, ethSrc, ip4src), in(mem4, false, ip4dst), &expr.Notrack{}, accept)
		a.add(pre, v6, tcp, in(macIP6, false, iif, ethSrc, ip6src), in(mem6, false, ip6dst), &expr.Notrack{}, accept)
		a.add(pre, v4, tcp, in(macIP4, false, iif, ethSrc, ip4src), notPrefix(ip4dst, loopback), accept)
		a.add(pre, v6, tcp, in(macIP6, false, iif, ethSrc, ip6src), accept)
		a.add(pre, in(ports, false, iif), jump(port.Name))

		a.add(port, in(macs, true, iif, ethSrc), drop)
		a.add(port, etherType(etherIPv4), jump(p4.Name))
		a.add(port, etherType(etherARP), jump(parp.Name))
		a.add(port, etherType(etherIPv6), jump(p6.Name))
		a.add(port, drop)

		m4, m6 := a.chain("mcast_ipv4"), a.chain("mcast_ipv6")
		a.add(p4, v4, prefix(ip4dst, loopback), drop)
		a.add(p4, udpSport(67), drop)
		a.add(p4, udpDport(68), drop, comment("to a DHCP client: only foldup's server answers, from any port"))
		a.add(p4, rationed(53), drop)
		a.add(p4, rationed(67), drop)
		a.add(p4, v4, is(ip4src, expr.CmpOpEq, []byte{0, 0, 0, 0}), udpSport(68), is(dport, expr.CmpOpEq, be16(67)), accept)
		a.add(p4, v4, in(ip4, true, iif, ip4src), drop)
		a.add(p4, v4, prefix(ip4dst, netip.MustParsePrefix("224.0.0.0/4")), jump(m4.Name))
		a.add(p4, accept)

		arpSHA, arpSPA := payF(nh, 8, 6), payF(nh, 14, 4)
		a.add(parp, arp, in(macs, true, iif, arpSHA), drop)
		a.add(parp, arp, is(arpSPA, expr.CmpOpEq, []byte{0, 0, 0, 0}), accept)
		a.add(parp, arp, in(ip4, true, iif, arpSPA), drop)
		a.add(parp, accept)

		a.add(p6, icmp6Type(134), drop)
		a.add(p6, udpSport(547), drop)
		a.add(p6, udpDport(546), drop, comment("to a DHCPv6 client: only foldup's server answers, from any port"))
		a.add(p6, rationed(53), drop)
		a.add(p6, rationed(547), drop)
		a.add(p6, v6, in(routerLL, false, ip6src), drop, comment("from a bridge's link-local address"))
		a.add(p6, v6, in(memLL, false, ip6src), in(portLL, true, iif, ip6src), drop, comment("from another member's link-local address"))
		a.add(p6, icmp6Type(136), jump(pna.Name))
		// From :: (duplicate address detection) and link-local (formed
		// by the guest) any port may send; from anything else, only its
		// own addresses.
		a.add(p6, v6, is(ip6src, expr.CmpOpNeq, make([]byte, 16)), notPrefix(ip6src, linkLocal), in(ip6, true, iif, ip6src), drop)
		a.add(p6, v6, prefix(ip6dst, netip.MustParsePrefix("ff00::/8")), jump(m6.Name))
		a.add(p6, accept)

		naTarget := payF(th, 8, 16)
		a.add(pna, in(routerLL, false, naTarget), drop, comment("target a bridge's link-local address"))
		a.add(pna, in(memLL, false, naTarget), in(portLL, true, iif, naTarget), drop, comment("target another member's link-local address"))
		a.add(pna, prefix(naTarget, linkLocal), accept, comment("target fe80::/10"))
		a.add(pna, in(ip6, true, iif, naTarget), drop, comment("target not the port's"))
		a.add(pna, accept)

		a.add(m4, l4proto(unix.IPPROTO_IGMP), accept)
		a.add(m4, v4, is(ip4dst, expr.CmpOpEq, []byte{224, 0, 0, 1}), accept)
		a.add(m4, v4, in(mc4, false, iif, ip4dst), accept)
		a.add(m4, drop)

		for _, g := range []string{"ff02::1", "ff02::2", "ff02::1:2"} {
			a.add(m6, v6, is(ip6dst, expr.CmpOpEq, netip.MustParseAddr(g).AsSlice()), accept)
		}
		a.add(m6, v6, prefix(ip6dst, netip.MustParsePrefix("ff02::1:ff00:0/104")), accept)
		for _, mld := range []byte{130, 131, 132, 143} {
			a.add(m6, icmp6Type(mld), accept)
		}
		a.add(m6, v6, in(mc6, false, iif, ip6dst), accept)
		a.add(m6, drop)

		// A port that is no member's (a container joined by hand, before
		// the supervisor adopts it; the bridge's own frames come by
		// output, not here) reaches no member from its first frame, until
		// it is adopted and so held to its own MAC and addresses. A
		// project's container sends from its planned MAC before its veth
		// is synced: it gets through, and is no DHCP, DHCPv6 or
		// router-advertisement server either. (meta ibrname would say
		// which bridge a frame came in on; not every kernel has it.) A
		// member's frame costs one lookup here.
		fwd, stranger := a.base("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, -200), a.chain("stranger")
		a.add(fwd, in(ports, true, iif), in(ports, false, oif), jump(stranger.Name))
		a.add(stranger, in(memMAC, true, ethSrc), drop, comment("from no member's MAC"))
		for _, r := range [][]expr.Any{udpSport(67), udpDport(68), icmp6Type(134), udpSport(547), udpDport(546)} {
			a.add(stranger, r, drop)
		}

		out := a.base("output", nftables.ChainTypeFilter, nftables.ChainHookOutput, -200)
		a.add(out, etherType(etherIPv6), icmp6Type(134), in(routerMAC, false, ethSrc), in(raPorts, true, oif), drop)
	}
	return d
}
