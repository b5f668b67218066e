package dnsd

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkAnswer is the handler's work for one query, without sockets:
// unpack, answer, pack.
func BenchmarkAnswer(b *testing.B) {
	s, err := NewDNS(project())
	if err != nil {
		b.Fatal(err)
	}
	q := new(dns.Msg).SetQuestion("db.shop.foldup.internal.", dns.TypeA)
	q.SetEdns0(1232, false)
	wire, _ := q.Pack()
	from := netip.MustParseAddr("10.80.1.10")
	b.ReportAllocs()
	for b.Loop() {
		req := new(dns.Msg)
		if err := req.Unpack(wire); err != nil {
			b.Fatal(err)
		}
		resp := s.answer(req, from)
		if _, err := resp.Pack(); err != nil {
			b.Fatal(err)
		}
	}
}
