package dnsd

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// The UDP fast path. Almost every query a project's members send is one
// of a few hundred questions asked again and again, so each zone keeps
// the packed answers it has given: a repeated question costs a map
// lookup and a copy, and the UDP loop answers it itself instead of
// starting a goroutine. Anything unusual (other opcodes, several
// questions, names that are not the zone's, answers that would be
// truncated) takes the full path through miekg/dns.

// maxCached bounds a zone's answer cache; past it, answers are built
// each time. A project's names times the common types fit many times.
const maxCached = 1 << 16

// cacheKey is what an answer depends on besides the zone.
type cacheKey struct {
	view  netip.Addr // the querier, when it has records of its own
	name  string     // as sent: the answer repeats its spelling
	qtype uint16
	edns  bool // the answer carries an OPT record
}

// answerCache holds a zone's packed answers, with their ID zero.
type answerCache struct {
	m sync.Map // cacheKey -> []byte
	n atomic.Int32
}

// question is what the fast path reads of a query.
type question struct {
	name    []byte // wire-format name, as sent
	qtype   uint16
	edns    bool
	udpSize uint16
}

// parseQuery reads a plain query: a QUERY with one IN question, no
// answer or authority records, and at most an OPT record of version 0.
// ok is false for anything else, which takes the full path.
func parseQuery(b []byte) (q question, ok bool) {
	if len(b) < 12 || b[2]&0xf8 != 0 || // QR=0, opcode QUERY
		binary.BigEndian.Uint16(b[4:]) != 1 || binary.BigEndian.Uint16(b[6:]) != 0 || binary.BigEndian.Uint16(b[8:]) != 0 {
		return q, false
	}
	arcount := binary.BigEndian.Uint16(b[10:])
	off := 12
	for {
		if off >= len(b) {
			return q, false
		}
		l := int(b[off])
		if l&0xc0 != 0 || off+1+l > len(b) {
			return q, false // no compression in a question; no overrun
		}
		off += 1 + l
		if l == 0 {
			break
		}
	}
	if off-12 > 255 || off+4 > len(b) {
		return q, false
	}
	q.name = b[12:off]
	q.qtype = binary.BigEndian.Uint16(b[off:])
	if binary.BigEndian.Uint16(b[off+2:]) != dns.ClassINET || q.qtype == dns.TypeANY || q.qtype == dns.TypeAXFR || q.qtype == dns.TypeIXFR {
		return q, false
	}
	off += 4
	switch {
	case arcount == 0 && off == len(b):
		return q, true
	case arcount == 1 && off+11 <= len(b) && b[off] == 0 &&
		binary.BigEndian.Uint16(b[off+1:]) == dns.TypeOPT && b[off+6] == 0: // root owner, OPT, version 0
		rdlen := int(binary.BigEndian.Uint16(b[off+9:]))
		if off+11+rdlen != len(b) {
			return q, false
		}
		q.edns = true
		q.udpSize = binary.BigEndian.Uint16(b[off+3:])
		return q, true
	}
	return q, false
}

// fastAnswer writes the answer to query b from querier from into out,
// from the cache or, for a question the zone answers itself, by building
// and caching it. ok is false when the query must take the full path.
func (s *DNS) fastAnswer(b, out []byte, from netip.Addr) (n int, ok bool) {
	q, ok := parseQuery(b)
	if !ok {
		return 0, false
	}
	z := s.zone.Load()
	key := cacheKey{name: string(q.name), qtype: q.qtype, edns: q.edns}
	if _, ok := z.views[from]; ok {
		key.view = from
	}
	var packed []byte
	if v, ok := z.cache.m.Load(key); ok {
		packed = v.([]byte)
	} else {
		req := new(dns.Msg)
		if req.Unpack(b) != nil {
			return 0, false
		}
		if !z.authoritative(from, strings.ToLower(req.Question[0].Name)) {
			return 0, false // upstream's: may block, so not in the loop
		}
		resp := s.answerIn(z, req, from)
		resp.Id = 0
		resp.RecursionDesired, resp.CheckingDisabled = false, false
		var err error
		if packed, err = resp.Pack(); err != nil {
			return 0, false
		}
		if z.cache.n.Load() < maxCached {
			if _, loaded := z.cache.m.LoadOrStore(key, packed); !loaded {
				z.cache.n.Add(1)
			}
		}
	}
	if len(packed) > udpLimit(q.edns, q.udpSize) || len(packed) > len(out) {
		return 0, false // truncation is the full path's
	}
	n = copy(out, packed)
	out[0], out[1] = b[0], b[1] // ID
	out[2] |= b[2] & 0x01       // RD
	out[3] |= b[3] & 0x10       // CD
	return n, true
}

// batchSize is how many queries one system call reads (recvmmsg) and
// how many answers one writes (sendmmsg) when queries queue up.
const batchSize = 32

// packet is one datagram the UDP loop reads or writes.
type packet struct {
	buf   []byte // read into buf; holds buf[:n]
	n     int
	peer  netip.AddrPort // sender, or receiver
	scope uint32         // the peer's IPv6 scope (interface index), if any
}

// serveUDP answers queries on u until it is closed: the fast path in
// this loop, a batch of queries at a time; everything else on a goroutine
// of its own.
func (s *DNS) serveUDP(u *udpSocket) {
	in := make([]packet, batchSize)
	out := make([]packet, batchSize)
	for i := range in {
		in[i].buf = make([]byte, 4096)
		out[i].buf = make([]byte, maxUDP)
	}
	for {
		n, err := u.readBatch(in)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		k := 0
		for _, p := range in[:n] {
			b := p.buf[:p.n]
			if size, ok := s.fastAnswer(b, out[k].buf, p.peer.Addr()); ok {
				out[k].n, out[k].peer, out[k].scope = size, p.peer, p.scope
				k++
				continue
			}
			go s.slowUDP(u, append([]byte(nil), b...), p.peer, p.scope)
		}
		for sent := 0; sent < k; {
			w, err := u.writeBatch(out[sent:k])
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				w = 1 // that querier is unreachable; answer the others
			}
			sent += w
		}
	}
}

// slowUDP answers one query the fast path left: the same handler as
// TCP's, with truncation to what the querier takes over UDP.
func (s *DNS) slowUDP(u *udpSocket, b []byte, from netip.AddrPort, scope uint32) {
	if len(b) > 2 && b[2]&0x80 != 0 {
		return // a response: never answer one
	}
	req := new(dns.Msg)
	if err := req.Unpack(b); err != nil {
		// Answer FORMERR if at least the header is there, as miekg/dns does.
		if len(b) < 12 {
			return
		}
		req = &dns.Msg{MsgHdr: dns.MsgHdr{Id: binary.BigEndian.Uint16(b)}}
	}
	resp := s.answer(req, from.Addr())
	resp.Truncate(reqUDPLimit(req))
	if out, err := resp.Pack(); err == nil {
		u.writeTo(out, from, scope)
	}
}
