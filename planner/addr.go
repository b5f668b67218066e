package planner

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"
	"net/netip"
)

// LinkName is a link's name as the planner makes them: prefix and eight
// hex digits of a hash of parts.
func LinkName(prefix string, parts ...string) string {
	return fmt.Sprintf("%s%08x", prefix, uint32(hash64(parts...)))
}

// hash64 is the planner's source of stable "randomness": the first eight
// bytes of SHA-256 over the parts, separated so that ("ab","c") and
// ("a","bc") differ.
func hash64(parts ...string) uint64 {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return binary.BigEndian.Uint64(h.Sum(nil))
}

func hashBytes(parts ...string) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// addrAt returns the address at offset from the start of p.
func addrAt(p netip.Prefix, offset uint64) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	n := new(big.Int).SetBytes(b)
	n.Add(n, new(big.Int).SetUint64(offset))
	out := n.FillBytes(make([]byte, len(b)))
	a, _ := netip.AddrFromSlice(out)
	return a
}

// offsetOf returns a's offset from the start of p; a must be in p.
func offsetOf(p netip.Prefix, a netip.Addr) uint64 {
	base := new(big.Int).SetBytes(p.Masked().Addr().AsSlice())
	n := new(big.Int).SetBytes(a.AsSlice())
	return n.Sub(n, base).Uint64()
}

// hostBits is the number of host bits of p, capped at 64 (the planner
// never needs to address more than 2^64 hosts).
func hostBits(p netip.Prefix) int {
	return min(p.Addr().BitLen()-p.Bits(), 64)
}

// size is the number of addresses in p, or 0 when that is 2^64 or more.
func size(p netip.Prefix) uint64 {
	hb := p.Addr().BitLen() - p.Bits()
	if hb >= 64 {
		return 0
	}
	return 1 << hb
}

// lastAddr is the last address of p (the broadcast address for IPv4).
func lastAddr(p netip.Prefix) netip.Addr {
	return addrAt(p, size(p)-1)
}

// overlaps reports whether any prefix in list overlaps p.
func overlaps(p netip.Prefix, list []netip.Prefix) bool {
	for _, q := range list {
		if q.Overlaps(p) {
			return true
		}
	}
	return false
}

// eui64 forms the SLAAC address of mac in a /64 (RFC 4291 appendix A).
func eui64(prefix netip.Prefix, mac [6]byte) netip.Addr {
	b := prefix.Masked().Addr().As16()
	b[8] = mac[0] ^ 0x02
	b[9], b[10] = mac[1], mac[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b)
}
