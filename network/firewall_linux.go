package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Port is one member's port on a foldup bridge (a VM's tap, a container's
// veth) and what it may send as: its MAC and its addresses.
type Port struct {
	Name string // interface name on the host side
	MAC  net.HardwareAddr
	IPv4 []netip.Addr
	IPv6 []netip.Addr
}

// GuardConfig is the layer-2 policy of one project's ports.
type GuardConfig struct {
	Project string
	Ports   []Port
}

// TableName is the name of a project's nftables tables (one in the bridge
// family, one in inet).
func TableName(project string) string { return "foldup-" + project }

// 32-bit nftables registers; a concatenation fills consecutive ones.
const (
	regIf   = 8  // NFT_REG32_00: the input interface name, 16 bytes (8..11)
	regNext = 12 // the field concatenated after it
	reg1    = 1  // NFT_REG_1, for plain compares
)

// guardSets are the sets the guard rules look up; their elements are the
// only thing that changes as members come and go.
type guardSets struct {
	ports, macs, ip4, ip6 *nftables.Set
}

func newGuardSets(t *nftables.Table) (guardSets, error) {
	mk := func(name string, types ...nftables.SetDatatype) (*nftables.Set, error) {
		s := &nftables.Set{Table: t, Name: name, KeyType: types[0]}
		if len(types) > 1 {
			kt, err := nftables.ConcatSetType(types...)
			if err != nil {
				return nil, err
			}
			s.KeyType, s.Concatenation = kt, true
		}
		return s, nil
	}
	var g guardSets
	var err error
	if g.ports, err = mk("ports", nftables.TypeIFName); err != nil {
		return g, err
	}
	if g.macs, err = mk("port_mac", nftables.TypeIFName, nftables.TypeEtherAddr); err != nil {
		return g, err
	}
	if g.ip4, err = mk("port_ipv4", nftables.TypeIFName, nftables.TypeIPAddr); err != nil {
		return g, err
	}
	g.ip6, err = mk("port_ipv6", nftables.TypeIFName, nftables.TypeIP6Addr)
	return g, err
}

// ifname is an interface name as nftables keys hold it: 16 bytes,
// zero-padded.
func ifname(s string) []byte {
	b := make([]byte, 16)
	copy(b, s)
	return b
}

// pad4 pads a concatenation field to the 4-byte register boundary.
func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func (g guardSets) elements(ports []Port) map[*nftables.Set][][]byte {
	out := map[*nftables.Set][][]byte{}
	for _, p := range ports {
		name := ifname(p.Name)
		out[g.ports] = append(out[g.ports], name)
		out[g.macs] = append(out[g.macs], append(slices.Clone(name), pad4(slices.Clone(p.MAC))...))
		for _, a := range p.IPv4 {
			out[g.ip4] = append(out[g.ip4], append(slices.Clone(name), a.AsSlice()...))
		}
		for _, a := range p.IPv6 {
			out[g.ip6] = append(out[g.ip6], append(slices.Clone(name), a.AsSlice()...))
		}
	}
	return out
}

// GuardApply makes the project's bridge table and brings its sets to
// cfg's ports: a port may send only from its MAC and addresses (plus
// 0.0.0.0 for a DHCP request and link-local IPv6), may claim only its own
// addresses in ARP and neighbour advertisements, and may not answer as a
// DHCP server or advertise itself as a router. Frames of any other
// ethertype (VLAN tags included) are dropped.
//
// The rules are made once; later calls only add and remove set elements,
// so a member coming or going touches nothing else, and the cost per
// packet does not grow with the number of members.
func (h *Host) GuardApply(cfg GuardConfig) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(h.ns)))
	if err != nil {
		return err
	}
	t := &nftables.Table{Family: nftables.TableFamilyBridge, Name: TableName(cfg.Project)}
	g, err := newGuardSets(t)
	if err != nil {
		return err
	}
	existing, err := c.ListTableOfFamily(t.Name, t.Family)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("listing table %s: %w", t.Name, err)
	}
	if existing == nil {
		c.AddTable(t)
		for _, s := range []*nftables.Set{g.ports, g.macs, g.ip4, g.ip6} {
			if err := c.AddSet(s, nil); err != nil {
				return fmt.Errorf("adding set %s: %w", s.Name, err)
			}
		}
		addGuardRules(c, t, g)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("creating table %s: %w", t.Name, err)
		}
	}
	return h.syncSets(c, g, cfg.Ports)
}

// syncSets adds missing elements and deletes stale ones, in one
// transaction.
func (h *Host) syncSets(c *nftables.Conn, g guardSets, ports []Port) error {
	want := g.elements(ports)
	for _, s := range []*nftables.Set{g.ports, g.macs, g.ip4, g.ip6} {
		have, err := c.GetSetElements(s)
		if err != nil {
			return fmt.Errorf("reading set %s: %w", s.Name, err)
		}
		haveKeys := map[string]bool{}
		for _, e := range have {
			haveKeys[string(e.Key)] = true
		}
		wantKeys := map[string]bool{}
		var add []nftables.SetElement
		for _, k := range want[s] {
			wantKeys[string(k)] = true
			if !haveKeys[string(k)] {
				add = append(add, nftables.SetElement{Key: k})
			}
		}
		var del []nftables.SetElement
		for _, e := range have {
			if !wantKeys[string(e.Key)] {
				del = append(del, nftables.SetElement{Key: e.Key})
			}
		}
		if len(add) > 0 {
			if err := c.SetAddElements(s, add); err != nil {
				return err
			}
		}
		if len(del) > 0 {
			if err := c.SetDeleteElements(s, del); err != nil {
				return err
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("updating sets: %w", err)
	}
	return nil
}

// GuardRemove deletes the project's bridge table. A missing table is not
// an error.
func (h *Host) GuardRemove(project string) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(h.ns)))
	if err != nil {
		return err
	}
	t, err := c.ListTableOfFamily(TableName(project), nftables.TableFamilyBridge)
	if errors.Is(err, unix.ENOENT) || t == nil {
		return nil
	}
	if err != nil {
		return err
	}
	c.DelTable(t)
	return c.Flush()
}

// Rule building: each helper returns the expressions of one match.

func ifIn(s *nftables.Set, invert bool) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: regIf},
		&expr.Lookup{SourceRegister: regIf, SetName: s.Name, SetID: s.ID, Invert: invert},
	}
}

// ifAnd loads the input interface and a payload field after it, and looks
// the pair up in s.
func ifAnd(base expr.PayloadBase, off, n uint32, s *nftables.Set, invert bool) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: regIf},
		&expr.Payload{DestRegister: regNext, Base: base, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: regIf, SetName: s.Name, SetID: s.ID, Invert: invert},
	}
}

func etherType(t uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{byte(t >> 8), byte(t)}},
	}
}

func l4proto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{p}},
	}
}

func field(base expr.PayloadBase, off, n uint32, op expr.CmpOp, data []byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: base, Offset: off, Len: n},
		&expr.Cmp{Op: op, Register: reg1, Data: data},
	}
}

// prefix matches a payload field against a prefix (bitwise mask, compare).
func prefix(base expr.PayloadBase, off uint32, p netip.Prefix) []expr.Any {
	n := uint32(p.Addr().BitLen() / 8)
	mask := net.CIDRMask(p.Bits(), p.Addr().BitLen())
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: base, Offset: off, Len: n},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: p.Masked().Addr().AsSlice()},
	}
}

func verdict(k expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: k} }

func jump(chain string) expr.Any { return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain} }

func be16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

const (
	etherIPv4 = 0x0800
	etherARP  = 0x0806
	etherIPv6 = 0x86dd
)

// addGuardRules writes the guard chains. In nft syntax:
//
//	chain prerouting { type filter hook prerouting priority -200; iifname @ports jump port }
//	chain port {
//	    iifname . ether saddr != @port_mac drop
//	    ether type ip jump port_ipv4; ether type arp jump port_arp; ether type ip6 jump port_ipv6
//	    drop
//	}
//	chain port_ipv4 {
//	    meta l4proto udp udp sport 67 drop
//	    ip saddr 0.0.0.0 meta l4proto udp udp sport 68 udp dport 67 accept
//	    iifname . ip saddr != @port_ipv4 drop
//	    accept
//	}
//	chain port_arp {
//	    iifname . arp saddr ether != @port_mac drop
//	    arp saddr ip 0.0.0.0 accept
//	    iifname . arp saddr ip != @port_ipv4 drop
//	    accept
//	}
//	chain port_ipv6 {
//	    meta l4proto ipv6-icmp icmpv6 type nd-router-advert drop
//	    meta l4proto udp udp sport 547 drop
//	    meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert jump port_na
//	    ip6 saddr :: accept
//	    ip6 saddr fe80::/10 accept
//	    iifname . ip6 saddr != @port_ipv6 drop
//	    accept
//	}
//	chain port_na { @th,64,128 fe80::/10 accept; iifname . @th,64,128 != @port_ipv6 drop; accept }
func addGuardRules(c *nftables.Conn, t *nftables.Table, g guardSets) {
	prio := nftables.ChainPriority(-200) // NF_BR_PRI_FILTER_BRIDGED
	accept := nftables.ChainPolicyAccept
	base := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: &prio, Policy: &accept})
	chain := func(name string) *nftables.Chain { return c.AddChain(&nftables.Chain{Name: name, Table: t}) }
	port, p4, parp, p6, pna := chain("port"), chain("port_ipv4"), chain("port_arp"), chain("port_ipv6"), chain("port_na")
	rule := func(ch *nftables.Chain, e ...expr.Any) { c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: e}) }
	drop, acc := verdict(expr.VerdictDrop), verdict(expr.VerdictAccept)
	nh, th := expr.PayloadBaseNetworkHeader, expr.PayloadBaseTransportHeader

	rule(base, append(ifIn(g.ports, false), jump(port.Name))...)

	rule(port, append(ifAnd(expr.PayloadBaseLLHeader, 6, 6, g.macs, true), drop)...)
	rule(port, append(etherType(etherIPv4), jump(p4.Name))...)
	rule(port, append(etherType(etherARP), jump(parp.Name))...)
	rule(port, append(etherType(etherIPv6), jump(p6.Name))...)
	rule(port, drop)

	rule(p4, append(cat(l4proto(unix.IPPROTO_UDP), field(th, 0, 2, expr.CmpOpEq, be16(67))), drop)...)
	rule(p4, append(cat(field(nh, 12, 4, expr.CmpOpEq, []byte{0, 0, 0, 0}), l4proto(unix.IPPROTO_UDP),
		field(th, 0, 2, expr.CmpOpEq, be16(68)), field(th, 2, 2, expr.CmpOpEq, be16(67))), acc)...)
	rule(p4, append(ifAnd(nh, 12, 4, g.ip4, true), drop)...)
	rule(p4, acc)

	rule(parp, append(ifAnd(nh, 8, 6, g.macs, true), drop)...)
	rule(parp, append(field(nh, 14, 4, expr.CmpOpEq, []byte{0, 0, 0, 0}), acc)...)
	rule(parp, append(ifAnd(nh, 14, 4, g.ip4, true), drop)...)
	rule(parp, acc)

	rule(p6, append(cat(l4proto(unix.IPPROTO_ICMPV6), field(th, 0, 1, expr.CmpOpEq, []byte{134})), drop)...)
	rule(p6, append(cat(l4proto(unix.IPPROTO_UDP), field(th, 0, 2, expr.CmpOpEq, be16(547))), drop)...)
	rule(p6, append(cat(l4proto(unix.IPPROTO_ICMPV6), field(th, 0, 1, expr.CmpOpEq, []byte{136})), jump(pna.Name))...)
	rule(p6, append(field(nh, 8, 16, expr.CmpOpEq, make([]byte, 16)), acc)...)
	rule(p6, append(prefix(nh, 8, netip.MustParsePrefix("fe80::/10")), acc)...)
	rule(p6, append(ifAnd(nh, 8, 16, g.ip6, true), drop)...)
	rule(p6, acc)

	rule(pna, append(prefix(th, 8, netip.MustParsePrefix("fe80::/10")), acc)...)
	rule(pna, append(ifAnd(th, 8, 16, g.ip6, true), drop)...)
	rule(pna, acc)
}
