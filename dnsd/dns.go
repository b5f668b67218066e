package dnsd

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// DefaultTimeout is how long an upstream resolver gets to answer before
// the next is tried (and, after the last, the querier gets SERVFAIL).
const DefaultTimeout = 2 * time.Second

// maxUDP is the largest UDP answer the server sends, whatever a querier's
// EDNS0 buffer size says: the DNS flag day 2020 value, which avoids IP
// fragmentation on any link.
const maxUDP = 1232

// DNS answers queries from a zone it can swap at any time.
type DNS struct {
	Timeout time.Duration // per upstream; DefaultTimeout if zero

	zone     atomic.Pointer[zone]
	upstream atomic.Pointer[[]string]

	mu      sync.Mutex     // guards following fields
	servers []*dns.Server  // TCP
	udp     []*udpSocket   // served by serveUDP
	wg      sync.WaitGroup // the UDP loops
}

// NewDNS returns a DNS server answering cfg; Listen starts it.
func NewDNS(cfg Config) (*DNS, error) {
	s := &DNS{}
	if err := s.Update(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Update replaces what the server answers. Queries in flight finish with
// the old data; every query that arrives after Update returns sees the
// new.
func (s *DNS) Update(cfg Config) error {
	z, err := newZone(cfg)
	if err != nil {
		return err
	}
	up := slices.Clone(cfg.Upstream)
	s.zone.Store(z)
	s.upstream.Store(&up)
	return nil
}

// Listen serves DNS over UDP and TCP on each address, until Close. It
// returns once every socket is bound.
func (s *DNS) Listen(addrs ...netip.AddrPort) error {
	var started []*dns.Server
	var udp []*udpSocket
	fail := func() {
		shutdown(started)
		for _, u := range udp {
			u.Close()
		}
	}
	for _, ap := range addrs {
		u, err := listenUDP(ap)
		if err != nil {
			fail()
			return err
		}
		// TCP on the port UDP got (port 0 asks for any).
		l, err := net.Listen("tcp", u.LocalAddr().String())
		if err != nil {
			u.Close()
			fail()
			return err
		}
		srv := &dns.Server{Listener: l, Handler: s, ReadTimeout: 5 * time.Second, IdleTimeout: func() time.Duration { return 5 * time.Second }}
		ready := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(ready) }
		go srv.ActivateAndServe()
		<-ready
		started = append(started, srv)
		udp = append(udp, u)
	}
	s.mu.Lock()
	s.servers = append(s.servers, started...)
	s.udp = append(s.udp, udp...)
	s.mu.Unlock()
	for _, u := range udp {
		s.wg.Go(func() { s.serveUDP(u) })
	}
	return nil
}

// Addrs returns the addresses the server listens on (UDP; TCP is on the
// same), for callers that asked for port 0.
func (s *DNS) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netip.AddrPort
	for _, u := range s.udp {
		out = append(out, u.LocalAddr())
	}
	return out
}

// Close stops every listener.
func (s *DNS) Close() error {
	s.mu.Lock()
	err := shutdown(s.servers)
	for _, u := range s.udp {
		u.Close()
	}
	s.servers, s.udp = nil, nil
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func shutdown(servers []*dns.Server) error {
	var errs []error
	for _, srv := range servers {
		errs = append(errs, srv.Shutdown())
	}
	return errors.Join(errs...)
}

// ServeDNS answers one query: from the zone when the name is the
// project's, else from the upstream resolvers, else REFUSED.
func (s *DNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := s.answer(req, querier(w.RemoteAddr()))
	limit := dns.MaxMsgSize
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		limit = reqUDPLimit(req)
	}
	resp.Truncate(limit)
	w.WriteMsg(resp)
}

func querier(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}

// udpLimit is the largest answer a querier takes over UDP: 512 bytes,
// or its EDNS0 buffer size up to maxUDP.
func udpLimit(edns bool, size uint16) int {
	if !edns {
		return dns.MinMsgSize
	}
	return max(dns.MinMsgSize, min(int(size), maxUDP))
}

func reqUDPLimit(req *dns.Msg) int {
	if opt := req.IsEdns0(); opt != nil {
		return udpLimit(true, opt.UDPSize())
	}
	return udpLimit(false, 0)
}

func (s *DNS) answer(req *dns.Msg, from netip.Addr) *dns.Msg {
	return s.answerIn(s.zone.Load(), req, from)
}

// answerIn answers req from z, a zone the caller loaded (the fast path
// caches the answer in that zone's cache, so it must come from there).
func (s *DNS) answerIn(z *zone, req *dns.Msg, from netip.Addr) *dns.Msg {
	resp := new(dns.Msg)
	resp.Compress = true
	if req.Opcode != dns.OpcodeQuery {
		return resp.SetRcode(req, dns.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return resp.SetRcode(req, dns.RcodeFormatError)
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	up := *s.upstream.Load()
	switch {
	case q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY:
		resp.SetRcode(req, dns.RcodeRefused)
	case z.authoritative(from, name):
		resp.SetReply(req)
		resp.Authoritative = true
		z.answer(resp, from, q)
	case len(up) > 0:
		resp = s.forward(req, up)
	default:
		resp.SetRcode(req, dns.RcodeRefused)
	}
	resp.RecursionAvailable = len(up) > 0
	if opt := req.IsEdns0(); opt != nil && resp.IsEdns0() == nil {
		resp.SetEdns0(maxUDP, false)
	}
	return resp
}

// answer fills resp from the zone: the records of the asked type,
// following CNAMEs inside the zone; NODATA (NOERROR, no answer) for a name
// that exists without that type, NXDOMAIN for one that does not, both
// with the SOA for negative caching.
func (z *zone) answer(resp *dns.Msg, from netip.Addr, q dns.Question) {
	name := strings.ToLower(q.Name)
	owner := q.Name // answers keep the querier's spelling
	for range 8 {
		rrs := z.lookup(from, name)
		if name == z.domain && (q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY) {
			rrs = append(slices.Clip(rrs), z.soa)
		}
		var cname *dns.CNAME
		for _, rr := range rrs {
			t := rr.Header().Rrtype
			if t == q.Qtype || q.Qtype == dns.TypeANY {
				resp.Answer = append(resp.Answer, rename(rr, owner))
			} else if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if cname == nil {
			break
		}
		resp.Answer = append(resp.Answer, rename(cname, owner))
		name, owner = cname.Target, cname.Target
		if !z.authoritative(from, name) {
			break // the querier's resolver follows it from here
		}
	}
	if len(resp.Answer) > 0 {
		return
	}
	if !z.exists(from, name) {
		resp.Rcode = dns.RcodeNameError
	}
	resp.Ns = append(resp.Ns, z.soa)
}

// exists reports whether name has records or records below it (an empty
// non-terminal, like _tcp.x above _http._tcp.x), or is the domain itself.
func (z *zone) exists(from netip.Addr, name string) bool {
	if name == z.domain {
		return true
	}
	return z.present[name] || z.viewPresent[from][name]
}

// rename returns a copy of rr owned by name.
func rename(rr dns.RR, name string) dns.RR {
	c := dns.Copy(rr)
	c.Header().Name = name
	return c
}

// forward asks each upstream in turn, over UDP and then TCP when the
// answer was truncated; SERVFAIL when none answers in time.
func (s *DNS) forward(req *dns.Msg, upstream []string) *dns.Msg {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	for _, u := range upstream {
		c := &dns.Client{Net: "udp", Timeout: timeout, UDPSize: maxUDP}
		resp, _, err := c.Exchange(req, u)
		if err == nil && resp.Truncated {
			c.Net = "tcp"
			resp, _, err = c.Exchange(req, u)
		}
		if err == nil {
			resp.Id = req.Id
			return resp
		}
	}
	return new(dns.Msg).SetRcode(req, dns.RcodeServerFailure)
}
