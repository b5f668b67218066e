package planner

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// stablePrivacy returns the address Linux forms in a /64 with
// addr_gen_mode=2 (stable_secret set), RFC 7217: net/ipv6/addrconf.c
// ipv6_generate_stable_address. The kernel runs one SHA-1 compression over
// a single zero-padded 64-byte block holding the secret, the prefix, the
// interface's hardware address and the DAD counter, with no SHA-1 padding
// or length, and takes the first two state words, in host byte order, as
// the interface identifier. crypto/sha1 cannot run a bare compression, so
// this does it. (Little-endian hosts only: the guests foldup runs are
// x86_64, aarch64 and riscv64, all little-endian.)
func stablePrivacy(prefix netip.Prefix, secret [16]byte, mac [6]byte, dadCount uint8) netip.Addr {
	var block [64]byte
	copy(block[0:16], secret[:])
	p := prefix.Masked().Addr().As16()
	copy(block[16:24], p[:8])
	copy(block[24:30], mac[:]) // hwaddr[MAX_ADDR_LEN=32]
	block[56] = dadCount

	h := sha1Block(block)
	out := p
	binary.LittleEndian.PutUint32(out[8:12], h[0])
	binary.LittleEndian.PutUint32(out[12:16], h[1])
	return netip.AddrFrom16(out)
}

// sha1Block is SHA-1's compression function applied once to the initial
// state (FIPS 180-4, 6.1.2).
func sha1Block(block [64]byte) [5]uint32 {
	h := [5]uint32{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}
	var w [80]uint32
	for i := 0; i < 16; i++ {
		w[i] = binary.BigEndian.Uint32(block[4*i:])
	}
	for i := 16; i < 80; i++ {
		w[i] = bits.RotateLeft32(w[i-3]^w[i-8]^w[i-14]^w[i-16], 1)
	}
	a, b, c, d, e := h[0], h[1], h[2], h[3], h[4]
	for i := 0; i < 80; i++ {
		var f, k uint32
		switch {
		case i < 20:
			f, k = (b&c)|(^b&d), 0x5A827999
		case i < 40:
			f, k = b^c^d, 0x6ED9EBA1
		case i < 60:
			f, k = (b&c)|(b&d)|(c&d), 0x8F1BBCDC
		default:
			f, k = b^c^d, 0xCA62C1D6
		}
		t := bits.RotateLeft32(a, 5) + f + e + k + w[i]
		a, b, c, d, e = t, a, bits.RotateLeft32(b, 30), c, d
	}
	h[0] += a
	h[1] += b
	h[2] += c
	h[3] += d
	h[4] += e
	return h
}
