package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	mnl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// This file holds the nftables plumbing both of foldup's tables share:
// making a table once and then only syncing set elements, and the small
// builders the rules are written with.

// tableDef is one of a project's tables: its sets and maps, the rules
// (written once, when the table is made) and the elements the sets should
// hold now.
type tableDef struct {
	table  *nftables.Table
	sets   []*nftables.Set
	rules  func(c *nftables.Conn)
	chains []string // regular chains that must exist, left alone if they do
	elems  map[*nftables.Set][]nftables.SetElement
}

// apply makes the table if it is missing (or replaces it, if another
// version of foldup made it with other sets), then brings every set to
// d.elems in one transaction: only differing elements are added or
// deleted, so members coming and going touch nothing else.
func (h *Host) apply(d *tableDef) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(h.ns)))
	if err != nil {
		return err
	}
	existing, err := c.ListTableOfFamily(d.table.Name, d.table.Family)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("listing table %s: %w", d.table.Name, err)
	}
	if existing != nil {
		same, err := sameSets(c, existing, d.sets)
		if err != nil {
			return err
		}
		if !same {
			// Made by another version of foldup, with other sets and so
			// other rules: replaced whole, elements and all, in one
			// transaction, so that no packet meets it half made.
			c.DelTable(existing)
			existing = nil
		}
	}
	if existing == nil {
		c.AddTable(d.table)
		// The regular chains first: verdict map elements jump to them.
		for _, name := range d.chains {
			c.AddChain(&nftables.Chain{Name: name, Table: d.table})
		}
		for _, s := range d.sets {
			if err := c.AddSet(s, d.elems[s]); err != nil {
				return fmt.Errorf("adding set %s: %w", s.Name, err)
			}
		}
		d.rules(c)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("creating table %s: %w", d.table.Name, err)
		}
	}
	// Another foldup may bring the same sets to its own list at the same
	// time (up, and the supervisor as a recreated container starts): each
	// reads the elements, then writes the difference, so the later write
	// can delete what the other just deleted (ENOENT) or add what it just
	// added (EEXIST). A batch is all or nothing: read again and retry.
	for range 10 {
		err = h.update(c, d)
		var fe *errFlush
		if !errors.As(err, &fe) || !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EEXIST) {
			return err
		}
	}
	return err
}

// errFlush is update's batch failing, as opposed to reading the sets.
type errFlush struct{ err error }

func (e *errFlush) Error() string { return e.err.Error() }
func (e *errFlush) Unwrap() error { return e.err }

// update adds d's missing chains and brings each of its sets' elements
// to d's, in one batch.
func (h *Host) update(c *nftables.Conn, d *tableDef) error {
	for _, name := range d.chains {
		if ch, err := c.ListChain(d.table, name); err == nil && ch != nil {
			continue
		}
		c.AddChain(&nftables.Chain{Name: name, Table: d.table})
	}
	for _, s := range d.sets {
		if s.Dynamic {
			continue // the packets fill it
		}
		have, err := c.GetSetElements(s)
		if err != nil {
			return fmt.Errorf("reading set %s: %w", s.Name, err)
		}
		haveIDs := map[string]bool{}
		for _, e := range have {
			haveIDs[elemID(e)] = true
		}
		wantIDs := map[string]bool{}
		var add, del []nftables.SetElement
		for _, e := range d.elems[s] {
			wantIDs[elemID(e)] = true
			if !haveIDs[elemID(e)] {
				add = append(add, e)
			}
		}
		for _, e := range have {
			if !wantIDs[elemID(e)] {
				del = append(del, nftables.SetElement{Key: e.Key})
			}
		}
		// Deletions first: an element whose value changed is deleted by
		// key and added again with the new value.
		if len(del) > 0 {
			if err := c.SetDeleteElements(s, del); err != nil {
				return err
			}
		}
		if len(add) > 0 {
			if err := c.SetAddElements(s, add); err != nil {
				return err
			}
		}
	}
	if err := c.Flush(); err != nil {
		return &errFlush{fmt.Errorf("updating table %s: %w", d.table.Name, err)}
	}
	return nil
}

// sameSets reports whether table has exactly the sets named in want.
func sameSets(c *nftables.Conn, table *nftables.Table, want []*nftables.Set) (bool, error) {
	have, err := c.GetSets(table)
	if err != nil {
		return false, fmt.Errorf("listing the sets of %s: %w", table.Name, err)
	}
	names := make([]string, 0, len(have))
	for _, s := range have {
		names = append(names, s.Name)
	}
	wantNames := make([]string, 0, len(want))
	for _, s := range want {
		wantNames = append(wantNames, s.Name)
	}
	slices.Sort(names)
	slices.Sort(wantNames)
	return slices.Equal(names, wantNames), nil
}

// elemID identifies an element with its value, the same for one written
// and one read back from the kernel.
func elemID(e nftables.SetElement) string {
	id := string(e.Key) + "\x00" + string(e.Val)
	if e.VerdictData != nil {
		id = string(e.Key) + "\x00" + verdictID(e.VerdictData.Kind, e.VerdictData.Chain)
	} else if k, ch, ok := decodeVerdict(e.Val); ok {
		id = string(e.Key) + "\x00" + verdictID(k, ch)
	}
	return id
}

func verdictID(k expr.VerdictKind, chain string) string {
	return fmt.Sprintf("verdict %d %s", k, chain)
}

// decodeVerdict reads a verdict map's element data as the kernel dumps it
// (NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN); ok is false for plain data.
func decodeVerdict(b []byte) (expr.VerdictKind, string, bool) {
	if len(b) == 0 {
		return 0, "", false
	}
	ad, err := mnl.NewAttributeDecoder(b)
	if err != nil {
		return 0, "", false
	}
	ad.ByteOrder = binary.BigEndian
	var kind expr.VerdictKind
	var chain string
	var code bool
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			kind, code = expr.VerdictKind(int32(ad.Uint32())), true
		case unix.NFTA_VERDICT_CHAIN:
			chain = ad.String()
		default:
			return 0, "", false
		}
	}
	return kind, chain, code && ad.Err() == nil
}

// removeTable deletes a table of foldup's; a missing one is not an error.
func (h *Host) removeTable(name string, fam nftables.TableFamily) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(h.ns)))
	if err != nil {
		return err
	}
	t, err := c.ListTableOfFamily(name, fam)
	if errors.Is(err, unix.ENOENT) || t == nil {
		return nil
	}
	if err != nil {
		return err
	}
	c.DelTable(t)
	return c.Flush()
}

// newSet declares a set (or, with data types, a map) keyed by the
// concatenation of types.
func newSet(t *nftables.Table, name string, key []nftables.SetDatatype, data ...nftables.SetDatatype) *nftables.Set {
	s := &nftables.Set{Table: t, Name: name}
	s.KeyType, s.Concatenation = concatType(key)
	if s.KeyType == nftables.TypeIFName {
		// What nft records for a set of interface names; without it, nft
		// lists every element as "".
		s.KeyByteOrder = binaryutil.NativeEndian
	}
	if len(data) > 0 {
		s.IsMap = true
		s.DataType, _ = concatType(data)
	}
	return s
}

func concatType(types []nftables.SetDatatype) (nftables.SetDatatype, bool) {
	if len(types) == 1 {
		return types[0], false
	}
	t, err := nftables.ConcatSetType(types...)
	if err != nil {
		panic(err) // a programming error: more than 7 fields
	}
	return t, true
}

// Element encoding: concatenated fields are each padded to 4 bytes.

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

// key concatenates element fields, padding each.
func key(fields ...[]byte) []byte {
	var out []byte
	for _, f := range fields {
		out = append(out, pad4(slices.Clone(f))...)
	}
	return out
}

func be16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

// Registers. nftables has four 128-bit data registers, also addressable as
// sixteen 32-bit ones (8 to 23); a concatenation fills consecutive 32-bit
// registers, each field rounded up to 4 bytes.
const (
	reg1     = 1 // NFT_REG_1, for plain compares
	regFirst = 8 // NFT_REG32_00, where concatenations start
)

// field loads one piece of a packet or its metadata into a register.
type field struct {
	load func(reg uint32) expr.Any
	len  uint32
}

func metaF(k expr.MetaKey, n uint32) field {
	return field{func(r uint32) expr.Any { return &expr.Meta{Key: k, Register: r} }, n}
}

func payF(base expr.PayloadBase, off, n uint32) field {
	return field{func(r uint32) expr.Any {
		return &expr.Payload{DestRegister: r, Base: base, Offset: off, Len: n}
	}, n}
}

var (
	iif     = metaF(expr.MetaKeyIIFNAME, 16)
	oif     = metaF(expr.MetaKeyOIFNAME, 16)
	l4      = metaF(expr.MetaKeyL4PROTO, 1)
	dport   = payF(expr.PayloadBaseTransportHeader, 2, 2)
	ip4src  = payF(expr.PayloadBaseNetworkHeader, 12, 4)
	ip4dst  = payF(expr.PayloadBaseNetworkHeader, 16, 4)
	ip6src  = payF(expr.PayloadBaseNetworkHeader, 8, 16)
	ip6dst  = payF(expr.PayloadBaseNetworkHeader, 24, 16)
	ethSrc  = payF(expr.PayloadBaseLLHeader, 6, 6)
	ethType = payF(expr.PayloadBaseLLHeader, 12, 2)
)

// loadAt loads fields into consecutive registers from regFirst.
func loadAt(fields []field) []expr.Any {
	var out []expr.Any
	r := uint32(regFirst)
	for _, f := range fields {
		out = append(out, f.load(r))
		r += (f.len + 3) / 4
	}
	return out
}

// in matches when the concatenation of fields is (or, inverted, is not)
// in s: `f1 . f2 @s`.
func in(s *nftables.Set, invert bool, fields ...field) []expr.Any {
	return append(loadAt(fields), &expr.Lookup{SourceRegister: regFirst, SetName: s.Name, SetID: s.ID, Invert: invert})
}

// vmap jumps to the verdict s maps the fields to: `f1 . f2 vmap @s`.
func vmap(s *nftables.Set, fields ...field) []expr.Any {
	return append(loadAt(fields), &expr.Lookup{SourceRegister: regFirst, SetName: s.Name, SetID: s.ID,
		DestRegister: 0, IsDestRegSet: true})
}

// is compares one field with a value.
func is(f field, op expr.CmpOp, data []byte) []expr.Any {
	return []expr.Any{f.load(reg1), &expr.Cmp{Op: op, Register: reg1, Data: data}}
}

func etherType(t uint16) []expr.Any { return is(ethType, expr.CmpOpEq, be16(t)) }

func l4proto(p byte) []expr.Any { return is(l4, expr.CmpOpEq, []byte{p}) }

// nfproto matches the layer-3 family in an inet table (where an ip or ip6
// payload match needs it first).
func nfproto(p byte) []expr.Any { return is(metaF(expr.MetaKeyNFPROTO, 1), expr.CmpOpEq, []byte{p}) }

// prefix matches a payload field against a prefix (mask, then compare).
func prefix(f field, p netip.Prefix) []expr.Any { return prefixOp(f, expr.CmpOpEq, p) }

// notPrefix matches a payload field outside a prefix.
func notPrefix(f field, p netip.Prefix) []expr.Any { return prefixOp(f, expr.CmpOpNeq, p) }

func prefixOp(f field, op expr.CmpOp, p netip.Prefix) []expr.Any {
	n := uint32(p.Addr().BitLen() / 8)
	mask := net.CIDRMask(p.Bits(), p.Addr().BitLen())
	return []expr.Any{
		f.load(reg1),
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: op, Register: reg1, Data: p.Masked().Addr().AsSlice()},
	}
}

// ctHas matches when any of bits is set in a conntrack key (state or
// status): `ct state established,related`, `ct status dnat`.
func ctHas(k expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: k, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
	}
}

const (
	ctEstablishedRelated = 1<<1 | 1<<2 // NF_CT_STATE_BIT(ESTABLISHED), (RELATED)
	ctStatusDNAT         = 1 << 5      // IPS_DST_NAT
)

// localDst matches packets addressed to one of the host's own addresses:
// `fib daddr type local`.
func localDst() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

// dnatMap rewrites the destination to the address and port s maps the
// fields to: `dnat ip to f1 . f2 map @s`.
func dnatMap(s *nftables.Set, ipv6 bool, fields ...field) []expr.Any {
	fam, portReg := uint32(unix.NFPROTO_IPV4), uint32(regFirst+1)
	if ipv6 {
		fam, portReg = unix.NFPROTO_IPV6, regFirst+4
	}
	return append(loadAt(fields),
		&expr.Lookup{SourceRegister: regFirst, SetName: s.Name, SetID: s.ID, DestRegister: regFirst, IsDestRegSet: true},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: regFirst, RegProtoMin: portReg, Specified: true})
}

func verdict(k expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: k} }

func jump(chain string) expr.Any { return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain} }

var (
	accept = verdict(expr.VerdictAccept)
	drop   = verdict(expr.VerdictDrop)
)

// comment is a rule's comment, shown by nft list.
type comment string

// rule concatenates matches; the last argument is usually a verdict.
func rule(parts ...any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		switch p := p.(type) {
		case []expr.Any:
			out = append(out, p...)
		case expr.Any:
			out = append(out, p)
		case comment:
		default:
			panic(fmt.Sprintf("rule: %T", p))
		}
	}
	return out
}

// chainAdder adds regular chains and rules to one table.
type chainAdder struct {
	c *nftables.Conn
	t *nftables.Table
}

func (a chainAdder) chain(name string) *nftables.Chain {
	return a.c.AddChain(&nftables.Chain{Name: name, Table: a.t})
}

func (a chainAdder) base(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio int) *nftables.Chain {
	p := nftables.ChainPriority(prio)
	pol := nftables.ChainPolicyAccept
	return a.c.AddChain(&nftables.Chain{Name: name, Table: a.t, Type: typ, Hooknum: hook, Priority: &p, Policy: &pol})
}

func (a chainAdder) add(ch *nftables.Chain, e ...any) {
	r := &nftables.Rule{Table: a.t, Chain: ch, Exprs: rule(e...)}
	for _, p := range e {
		if c, ok := p.(comment); ok {
			r.UserData = userdata.AppendString(nil, userdata.TypeComment, string(c))
		}
	}
	a.c.AddRule(r)
}
