package network

import (
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// filterTable is the project's inet-family table: what crosses between
// its networks, the host and the world.
//
//	chain forward { type filter hook forward priority filter
//	    iifname . oifname @same accept                 # within one network (bridged, or hairpin)
//	    iifname @bridges jump from_net
//	    oifname @bridges jump to_net
//	}
//	chain from_net {
//	    ct state established,related accept
//	    ct status dnat accept                          # a forwarded port, used from another network
//	    oifname @bridges drop                          # to another of the project's networks
//	    iifname vmap @outbound                         # accept (nat), drop, or jump to the user's chain
//	    drop
//	}
//	chain to_net { ct state established,related accept; ct status dnat accept; drop }
//	chain input { type filter hook input priority filter; iifname @bridges jump member_input }
//	chain member_input {
//	    ct state established,related accept
//	    udp dport 67 accept; udp dport 547 accept      # DHCP, DHCPv6 (broadcast, multicast)
//	    icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept
//	    meta l4proto { tcp, udp } th dport 53 iifname . ip daddr @gateway_ipv4 accept
//	    meta l4proto { tcp, udp } th dport 53 iifname . ip6 daddr @gateway_ipv6 accept
//	    icmp type echo-request iifname . ip daddr @gateway_ipv4 accept
//	    icmpv6 type echo-request iifname . ip6 daddr @gateway_ipv6 accept
//	    icmpv6 type echo-request ip6 daddr fe80::/10 accept
//	    drop
//	}
//	chain prerouting { type nat hook prerouting priority dstnat; fib daddr type local jump ports }
//	chain output { type nat hook output priority dstnat; fib daddr type local jump ports }
//	chain ports {
//	    dnat ip to ip daddr . meta l4proto . th dport map @forward_ipv4_at
//	    dnat ip to meta l4proto . th dport map @forward_ipv4
//	    dnat ip6 to ip6 daddr . meta l4proto . th dport map @forward_ipv6_at
//	    dnat ip6 to meta l4proto . th dport map @forward_ipv6
//	}
//	chain postrouting { type nat hook postrouting priority srcnat
//	    ct status dnat ip saddr 127.0.0.0/8 oifname @bridges masquerade   # the host's localhost
//	    ct status dnat oifname @bridges ip saddr @member_ipv4 masquerade  # hairpin from a member
//	    ct status dnat oifname @bridges ip6 saddr @member_ipv6 masquerade
//	    oifname @bridges return
//	    iifname @outbound_nat masquerade
//	}
//
// Members reach the host itself (any of its addresses, through their
// network's bridge) for DNS, DHCP, neighbour discovery and a ping of
// their gateway, and for nothing else: a guest is not to talk to the
// services the host runs for itself. Forwarded ports are not the host's:
// their DNAT happens before.
//
// Traffic the host itself sends into a network (a health check, a port
// forward from localhost) is not filtered: isolation keeps a network's
// members in, not the host's operator out. A forwarded port is reachable
// even on an isolated network, because the user asked for it by name.
func filterTable(cfg Config) *tableDef {
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName(cfg.Project)}
	ifT := nftables.TypeIFName
	protoT, svcT := nftables.TypeInetProto, nftables.TypeInetService
	ip4T, ip6T := nftables.TypeIPAddr, nftables.TypeIP6Addr
	set := func(name string, key ...nftables.SetDatatype) *nftables.Set { return newSet(t, name, key) }
	bridges := set("bridges", ifT)
	same := set("same", ifT, ifT)
	masq := set("outbound_nat", ifT)
	isolated := set("isolated", ifT)
	mem4 := set("member_ipv4", ip4T)
	mem6 := set("member_ipv6", ip6T)
	gw4 := set("gateway_ipv4", ifT, ip4T)
	gw6 := set("gateway_ipv6", ifT, ip6T)
	outbound := newSet(t, "outbound", []nftables.SetDatatype{ifT}, nftables.TypeVerdict)
	fwd4 := newSet(t, "forward_ipv4", []nftables.SetDatatype{protoT, svcT}, ip4T, svcT)
	fwd4At := newSet(t, "forward_ipv4_at", []nftables.SetDatatype{ip4T, protoT, svcT}, ip4T, svcT)
	fwd6 := newSet(t, "forward_ipv6", []nftables.SetDatatype{protoT, svcT}, ip6T, svcT)
	fwd6At := newSet(t, "forward_ipv6_at", []nftables.SetDatatype{ip6T, protoT, svcT}, ip6T, svcT)

	d := &tableDef{
		table: t,
		sets:  []*nftables.Set{bridges, same, masq, isolated, mem4, mem6, gw4, gw6, outbound, fwd4, fwd4At, fwd6, fwd6At},
		elems: map[*nftables.Set][]nftables.SetElement{},
	}
	el := func(s *nftables.Set, e nftables.SetElement) { d.elems[s] = append(d.elems[s], e) }
	for _, n := range cfg.Networks {
		br := ifname(n.Bridge)
		el(bridges, nftables.SetElement{Key: br})
		el(same, nftables.SetElement{Key: key(br, br)})
		if n.Gateway4.IsValid() {
			el(gw4, nftables.SetElement{Key: key(br, n.Gateway4.AsSlice())})
		}
		if n.Gateway6.IsValid() {
			el(gw6, nftables.SetElement{Key: key(br, n.Gateway6.AsSlice())})
		}
		if n.Isolated {
			el(isolated, nftables.SetElement{Key: br})
		}
		v := &expr.Verdict{Kind: expr.VerdictAccept}
		switch {
		case n.Isolated:
			v = &expr.Verdict{Kind: expr.VerdictDrop}
		case n.Outbound == OutboundDrop:
			v = &expr.Verdict{Kind: expr.VerdictDrop}
		case n.Outbound != OutboundNAT:
			// The user's chain decides; what it accepts is masqueraded like
			// nat. It returns to a drop.
			v = &expr.Verdict{Kind: expr.VerdictJump, Chain: n.Outbound}
			d.chains = append(d.chains, n.Outbound)
		}
		if v.Kind != expr.VerdictDrop {
			el(masq, nftables.SetElement{Key: br})
		}
		el(outbound, nftables.SetElement{Key: br, VerdictData: v})
	}
	// A member on two networks has its addresses listed once each.
	for _, p := range cfg.Ports {
		for _, a := range p.IPv4 {
			el(mem4, nftables.SetElement{Key: a.AsSlice()})
		}
		for _, a := range p.IPv6 {
			el(mem6, nftables.SetElement{Key: a.AsSlice()})
		}
	}
	for _, f := range cfg.Forwards {
		proto := byte(unix.IPPROTO_TCP)
		if f.Protocol == "udp" {
			proto = unix.IPPROTO_UDP
		}
		val := key(f.To.AsSlice(), be16(f.Port))
		var s *nftables.Set
		var k []byte
		switch {
		case f.HostIP.IsValid():
			s, k = fwd4At, key(f.HostIP.AsSlice(), []byte{proto}, be16(f.HostPort))
			if f.To.Is6() {
				s = fwd6At
			}
		default:
			s, k = fwd4, key([]byte{proto}, be16(f.HostPort))
			if f.To.Is6() {
				s = fwd6
			}
		}
		el(s, nftables.SetElement{Key: k, Val: val})
	}

	d.rules = func(c *nftables.Conn) {
		a := chainAdder{c, t}
		loopback := netip.MustParsePrefix("127.0.0.0/8")
		udpDport := func(p uint16) []expr.Any {
			return rule(l4proto(unix.IPPROTO_UDP), is(dport, expr.CmpOpEq, be16(p)))
		}
		established := ctHas(expr.CtKeySTATE, ctEstablishedRelated)
		dnatted := ctHas(expr.CtKeySTATUS, ctStatusDNAT)

		fwd := a.base("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, 0)
		from, to := a.chain("from_net"), a.chain("to_net")
		a.add(fwd, in(same, false, iif, oif), accept)
		a.add(fwd, in(bridges, false, iif), jump(from.Name))
		a.add(fwd, in(bridges, false, oif), jump(to.Name))

		a.add(from, established, accept)
		// Isolation wins over a forwarded port: a member of an isolated
		// network reaches no other network through one, whichever of the
		// host's addresses it sends to (its own network's members it
		// reaches directly, or hairpinned: that is the same chain's
		// first rule).
		a.add(from, in(isolated, false, iif), drop, comment("nothing out of an isolated network, forwarded ports included"))
		a.add(from, dnatted, accept)
		a.add(from, in(bridges, false, oif), drop)
		a.add(from, vmap(outbound, iif))
		a.add(from, drop)

		a.add(to, established, accept)
		a.add(to, dnatted, accept)
		a.add(to, drop)

		input := a.base("input", nftables.ChainTypeFilter, nftables.ChainHookInput, 0)
		iso := a.chain("member_input")
		a.add(input, in(bridges, false, iif), jump(iso.Name))
		a.add(iso, established, accept)
		a.add(iso, udpDport(67), accept)
		a.add(iso, udpDport(547), accept)
		for _, nd := range []byte{133, 135, 136} {
			a.add(iso, l4proto(unix.IPPROTO_ICMPV6), is(payF(expr.PayloadBaseTransportHeader, 0, 1), expr.CmpOpEq, []byte{nd}), accept)
		}
		for _, p := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
			a.add(iso, l4proto(p), is(dport, expr.CmpOpEq, be16(53)), nfproto(unix.NFPROTO_IPV4), in(gw4, false, iif, ip4dst), accept)
			a.add(iso, l4proto(p), is(dport, expr.CmpOpEq, be16(53)), nfproto(unix.NFPROTO_IPV6), in(gw6, false, iif, ip6dst), accept)
		}
		a.add(iso, l4proto(unix.IPPROTO_ICMP), is(payF(expr.PayloadBaseTransportHeader, 0, 1), expr.CmpOpEq, []byte{8}), nfproto(unix.NFPROTO_IPV4), in(gw4, false, iif, ip4dst), accept)
		a.add(iso, l4proto(unix.IPPROTO_ICMPV6), is(payF(expr.PayloadBaseTransportHeader, 0, 1), expr.CmpOpEq, []byte{128}), nfproto(unix.NFPROTO_IPV6), in(gw6, false, iif, ip6dst), accept)
		a.add(iso, l4proto(unix.IPPROTO_ICMPV6), is(payF(expr.PayloadBaseTransportHeader, 0, 1), expr.CmpOpEq, []byte{128}), nfproto(unix.NFPROTO_IPV6), prefix(ip6dst, netip.MustParsePrefix("fe80::/10")), accept)
		a.add(iso, drop)

		pre := a.base("prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, -100)
		out := a.base("output", nftables.ChainTypeNAT, nftables.ChainHookOutput, -100)
		ports := a.chain("ports")
		a.add(pre, localDst(), jump(ports.Name))
		a.add(out, localDst(), jump(ports.Name))
		a.add(ports, nfproto(unix.NFPROTO_IPV4), dnatMap(fwd4At, false, ip4dst, l4, dport))
		a.add(ports, nfproto(unix.NFPROTO_IPV4), dnatMap(fwd4, false, l4, dport))
		a.add(ports, nfproto(unix.NFPROTO_IPV6), dnatMap(fwd6At, true, ip6dst, l4, dport))
		a.add(ports, nfproto(unix.NFPROTO_IPV6), dnatMap(fwd6, true, l4, dport))

		post := a.base("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, 100)
		a.add(post, dnatted, nfproto(unix.NFPROTO_IPV4), prefix(ip4src, loopback), in(bridges, false, oif), &expr.Masq{})
		// Hairpin: the member's reply would go straight back to the
		// other member, bypassing the host's conntrack. The input
		// interface cannot say it: a DNAT that br_netfilter bridges back
		// out of the same bridge reaches postrouting with none.
		a.add(post, dnatted, in(bridges, false, oif), nfproto(unix.NFPROTO_IPV4), in(mem4, false, ip4src), &expr.Masq{})
		a.add(post, dnatted, in(bridges, false, oif), nfproto(unix.NFPROTO_IPV6), in(mem6, false, ip6src), &expr.Masq{})
		a.add(post, in(bridges, false, oif), verdict(expr.VerdictReturn))
		a.add(post, in(masq, false, iif), &expr.Masq{})
	}
	return d
}
