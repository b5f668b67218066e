package network

import (
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

const (
	etherIPv4 = 0x0800
	etherARP  = 0x0806
	etherIPv6 = 0x86dd
)

// guardTable is the project's bridge-family table: the layer-2 policy of
// every member port.
//
// What a port may send (hook prerouting, before the bridge decides
// anything):
//
//	chain prerouting { type filter hook prerouting priority -200; iifname @ports jump port }
//	chain port {
//	    iifname . ether saddr != @port_mac drop
//	    ether type ip jump port_ipv4; ether type arp jump port_arp; ether type ip6 jump port_ipv6
//	    drop                                   # any other ethertype, VLAN tags included
//	}
//	chain port_ipv4 {
//	    udp sport 67 drop                      # no DHCP server but foldup's
//	    ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept
//	    iifname . ip saddr != @port_ipv4 drop
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
//	    icmpv6 type nd-neighbor-advert jump port_na
//	    ip6 saddr :: accept                    # DAD
//	    ip6 saddr fe80::/10 accept             # link-local, formed by the guest
//	    iifname . ip6 saddr != @port_ipv6 drop
//	    accept
//	}
//	chain port_na { @th,64,128 fe80::/10 accept; iifname . @th,64,128 != @port_ipv6 drop; accept }
//
// What a port may receive (hook forward, for each port a frame leaves
// by): multicast only to the groups its network lists, plus what IPv4 and
// IPv6 need to work (all-hosts/all-nodes, IGMP/MLD, solicited-node). The
// sets are keyed by port, not by bridge: `meta ibrname` needs the
// nft_meta_bridge module, which not every kernel has.
//
//	chain forward { type filter hook forward priority -200; oifname @ports jump port_out }
//	chain port_out { ip daddr 224.0.0.0/4 jump mcast_ipv4; ip6 daddr ff00::/8 jump mcast_ipv6 }
//	chain mcast_ipv4 {
//	    ip protocol igmp accept; ip daddr 224.0.0.1 accept
//	    oifname . ip daddr @mcast_ipv4 accept
//	    drop
//	}
//	chain mcast_ipv6 {
//	    ip6 daddr ff02::1 accept; ip6 daddr ff02::1:ff00:0/104 accept
//	    icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report } accept
//	    oifname . ip6 daddr @mcast_ipv6 accept
//	    drop
//	}
func guardTable(cfg Config) *tableDef {
	t := &nftables.Table{Family: nftables.TableFamilyBridge, Name: TableName(cfg.Project)}
	ifT, ethT, ip4T, ip6T := nftables.TypeIFName, nftables.TypeEtherAddr, nftables.TypeIPAddr, nftables.TypeIP6Addr
	ports := newSet(t, "ports", []nftables.SetDatatype{ifT})
	macs := newSet(t, "port_mac", []nftables.SetDatatype{ifT, ethT})
	ip4 := newSet(t, "port_ipv4", []nftables.SetDatatype{ifT, ip4T})
	ip6 := newSet(t, "port_ipv6", []nftables.SetDatatype{ifT, ip6T})
	mc4 := newSet(t, "mcast_ipv4", []nftables.SetDatatype{ifT, ip4T})
	mc6 := newSet(t, "mcast_ipv6", []nftables.SetDatatype{ifT, ip6T})

	d := &tableDef{table: t, sets: []*nftables.Set{ports, macs, ip4, ip6, mc4, mc6}, elems: map[*nftables.Set][]nftables.SetElement{}}
	el := func(s *nftables.Set, k []byte) { d.elems[s] = append(d.elems[s], nftables.SetElement{Key: k}) }
	for _, p := range cfg.Ports {
		name := ifname(p.Name)
		el(ports, name)
		el(macs, key(name, p.MAC))
		for _, a := range p.IPv4 {
			el(ip4, key(name, a.AsSlice()))
		}
		for _, a := range p.IPv6 {
			el(ip6, key(name, a.AsSlice()))
		}
	}
	groups := map[string][]netip.Addr{}
	for _, n := range cfg.Networks {
		groups[n.Bridge] = n.Multicast
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
		icmp6Type := func(t byte) []expr.Any {
			return rule(l4proto(unix.IPPROTO_ICMPV6), is(payF(th, 0, 1), expr.CmpOpEq, []byte{t}))
		}
		linkLocal := netip.MustParsePrefix("fe80::/10")

		pre := a.base("prerouting", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, -200) // NF_BR_PRI_FILTER_BRIDGED
		port, p4, parp, p6, pna := a.chain("port"), a.chain("port_ipv4"), a.chain("port_arp"), a.chain("port_ipv6"), a.chain("port_na")
		a.add(pre, in(ports, false, iif), jump(port.Name))

		a.add(port, in(macs, true, iif, ethSrc), drop)
		a.add(port, etherType(etherIPv4), jump(p4.Name))
		a.add(port, etherType(etherARP), jump(parp.Name))
		a.add(port, etherType(etherIPv6), jump(p6.Name))
		a.add(port, drop)

		v4, arp, v6 := etherType(etherIPv4), etherType(etherARP), etherType(etherIPv6)
		a.add(p4, udpSport(67), drop)
		a.add(p4, v4, is(ip4src, expr.CmpOpEq, []byte{0, 0, 0, 0}), udpSport(68), is(dport, expr.CmpOpEq, be16(67)), accept)
		a.add(p4, v4, in(ip4, true, iif, ip4src), drop)
		a.add(p4, accept)

		arpSHA, arpSPA := payF(nh, 8, 6), payF(nh, 14, 4)
		a.add(parp, arp, in(macs, true, iif, arpSHA), drop)
		a.add(parp, arp, is(arpSPA, expr.CmpOpEq, []byte{0, 0, 0, 0}), accept)
		a.add(parp, arp, in(ip4, true, iif, arpSPA), drop)
		a.add(parp, accept)

		a.add(p6, icmp6Type(134), drop)
		a.add(p6, udpSport(547), drop)
		a.add(p6, icmp6Type(136), jump(pna.Name))
		a.add(p6, v6, is(ip6src, expr.CmpOpEq, make([]byte, 16)), accept)
		a.add(p6, v6, prefix(ip6src, linkLocal), accept)
		a.add(p6, v6, in(ip6, true, iif, ip6src), drop)
		a.add(p6, accept)

		naTarget := payF(th, 8, 16)
		a.add(pna, prefix(naTarget, linkLocal), accept, comment("target fe80::/10"))
		a.add(pna, in(ip6, true, iif, naTarget), drop, comment("target not the port's"))
		a.add(pna, accept)

		fwd := a.base("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, -200)
		out, m4, m6 := a.chain("port_out"), a.chain("mcast_ipv4"), a.chain("mcast_ipv6")
		a.add(fwd, in(ports, false, oif), jump(out.Name))
		a.add(out, etherType(etherIPv4), prefix(ip4dst, netip.MustParsePrefix("224.0.0.0/4")), jump(m4.Name))
		a.add(out, etherType(etherIPv6), prefix(ip6dst, netip.MustParsePrefix("ff00::/8")), jump(m6.Name))

		a.add(m4, l4proto(unix.IPPROTO_IGMP), accept)
		a.add(m4, v4, is(ip4dst, expr.CmpOpEq, []byte{224, 0, 0, 1}), accept)
		a.add(m4, v4, in(mc4, false, oif, ip4dst), accept)
		a.add(m4, drop)

		a.add(m6, v6, is(ip6dst, expr.CmpOpEq, netip.MustParseAddr("ff02::1").AsSlice()), accept)
		a.add(m6, v6, prefix(ip6dst, netip.MustParsePrefix("ff02::1:ff00:0/104")), accept)
		for _, mld := range []byte{130, 131, 132, 143} {
			a.add(m6, icmp6Type(mld), accept)
		}
		a.add(m6, v6, in(mc6, false, oif, ip6dst), accept)
		a.add(m6, drop)
	}
	return d
}
