package dnsd

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/foldup/foldup/internal/systest"
	"github.com/foldup/foldup/spec"
)

// project is a small project: a container db, two VMs with records of
// their own (they query from 127.0.0.2 and 127.0.0.3, so that tests on
// loopback can be either), and project-wide records.
func project() Config {
	return Config{
		Domain: "shop.foldup.internal",
		Members: []Member{
			{Name: "db", Aliases: []string{"database", "postgres"}, Addrs: addrs("10.80.1.5", "fd00:80:1::5")},
			{Name: "web", Addrs: addrs("127.0.0.2", "10.80.1.10"), Records: []spec.Record{
				{Name: "table.", TXT: []string{"Users"}},
				{Name: "secret", A: "10.80.1.99"},
			}},
			{Name: "worker", Addrs: addrs("127.0.0.3"), Records: []spec.Record{
				{Name: "table.", TXT: []string{"Orders"}},
			}},
		},
		Records: []spec.Record{
			{Name: "table.", TXT: []string{"Everyone"}},
			{Name: "api", CNAME: "web"},
			{Name: "ext", CNAME: "www.example.test."},
			{Name: "_http._tcp.web", SRV: &spec.SRV{Target: "web", Port: 80, Priority: 10, Weight: 5}},
			{Name: "cache.", A: "10.80.1.7", TTL: 300},
		},
		Subnets: []netip.Prefix{netip.MustParsePrefix("10.80.1.0/24"), netip.MustParsePrefix("fd00:80:1::/64")},
	}
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// start runs a server for cfg on a free loopback port.
func start(t *testing.T, cfg Config) (*DNS, string) {
	t.Helper()
	s, err := NewDNS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Timeout = 300 * time.Millisecond
	if err := s.Listen(netip.MustParseAddrPort("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, s.Addrs()[0].String()
}

// query asks server over net ("udp" or "tcp") from source address from
// (127.0.0.1 if empty).
func query(t *testing.T, server, net_, from, name string, qtype uint16, edns bool) *dns.Msg {
	t.Helper()
	m := new(dns.Msg).SetQuestion(name, qtype)
	if edns {
		m.SetEdns0(4096, false)
	}
	if from == "" {
		from = "127.0.0.1"
	}
	c := &dns.Client{Net: net_, Timeout: 2 * time.Second}
	if net_ == "udp" {
		c.Dialer = &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}}
	} else {
		c.Dialer = &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

// answers renders the answer section as "TYPE data" lines, sorted.
func answers(r *dns.Msg) string {
	var out []string
	for _, rr := range r.Answer {
		f := strings.Fields(rr.String())
		out = append(out, strings.Join(append([]string{f[0], f[1]}, f[3:]...), " "))
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

func TestAnswers(t *testing.T) {
	_, srv := start(t, project())
	for _, c := range []struct {
		name  string
		qtype uint16
		rcode int
		want  string
	}{
		{"db.shop.foldup.internal.", dns.TypeA, dns.RcodeSuccess, "db.shop.foldup.internal. 10 A 10.80.1.5"},
		{"db.shop.foldup.internal.", dns.TypeAAAA, dns.RcodeSuccess, "db.shop.foldup.internal. 10 AAAA fd00:80:1::5"},
		{"DataBase.Shop.Foldup.Internal.", dns.TypeA, dns.RcodeSuccess, "DataBase.Shop.Foldup.Internal. 10 A 10.80.1.5"},
		{"postgres.shop.foldup.internal.", dns.TypeA, dns.RcodeSuccess, "postgres.shop.foldup.internal. 10 A 10.80.1.5"},
		{"5.1.80.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, "5.1.80.10.in-addr.arpa. 10 PTR db.shop.foldup.internal."},
		{mustReverse("fd00:80:1::5"), dns.TypePTR, dns.RcodeSuccess, mustReverse("fd00:80:1::5") + " 10 PTR db.shop.foldup.internal."},
		{"table.", dns.TypeTXT, dns.RcodeSuccess, `table. 60 TXT "Everyone"`},
		{"cache.", dns.TypeA, dns.RcodeSuccess, "cache. 300 A 10.80.1.7"},
		{"api.shop.foldup.internal.", dns.TypeA, dns.RcodeSuccess,
			"api.shop.foldup.internal. 60 CNAME web.shop.foldup.internal.; web.shop.foldup.internal. 10 A 10.80.1.10; web.shop.foldup.internal. 10 A 127.0.0.2"},
		{"api.shop.foldup.internal.", dns.TypeCNAME, dns.RcodeSuccess, "api.shop.foldup.internal. 60 CNAME web.shop.foldup.internal."},
		{"ext.shop.foldup.internal.", dns.TypeA, dns.RcodeSuccess, "ext.shop.foldup.internal. 60 CNAME www.example.test."},
		{"Shop.Foldup.Internal.", dns.TypeSOA, dns.RcodeSuccess,
			"Shop.Foldup.Internal. 10 SOA ns.shop.foldup.internal. hostmaster.shop.foldup.internal. 1 3600 600 86400 10"},
		{"_http._tcp.web.shop.foldup.internal.", dns.TypeSRV, dns.RcodeSuccess,
			"_http._tcp.web.shop.foldup.internal. 60 SRV 10 5 80 web.shop.foldup.internal."},
		// NODATA: the name exists, not with that type.
		{"db.shop.foldup.internal.", dns.TypeTXT, dns.RcodeSuccess, ""},
		{"worker.shop.foldup.internal.", dns.TypeAAAA, dns.RcodeSuccess, ""},
		{"_tcp.web.shop.foldup.internal.", dns.TypeSRV, dns.RcodeSuccess, ""}, // empty non-terminal
		{"shop.foldup.internal.", dns.TypeA, dns.RcodeSuccess, ""},
		// NXDOMAIN.
		{"nope.shop.foldup.internal.", dns.TypeA, dns.RcodeNameError, ""},
		{"secret.shop.foldup.internal.", dns.TypeA, dns.RcodeNameError, ""}, // web's own record
		{"9.1.80.10.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, ""},
		// Not ours, no upstream: refused.
		{"www.example.test.", dns.TypeA, dns.RcodeRefused, ""},
		{"1.0.0.192.in-addr.arpa.", dns.TypePTR, dns.RcodeRefused, ""},
	} {
		for _, proto := range []string{"udp", "tcp"} {
			r := query(t, srv, proto, "", c.name, c.qtype, false)
			label := fmt.Sprintf("%s %s over %s", c.name, dns.TypeToString[c.qtype], proto)
			if r.Rcode != c.rcode {
				t.Errorf("%s: rcode %s, want %s", label, dns.RcodeToString[r.Rcode], dns.RcodeToString[c.rcode])
			}
			if got := answers(r); got != c.want {
				t.Errorf("%s:\n got %s\nwant %s", label, got, c.want)
			}
			ours := c.rcode != dns.RcodeRefused
			if r.Authoritative != ours {
				t.Errorf("%s: authoritative %v", label, r.Authoritative)
			}
			if ours && c.want == "" && (len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA) {
				t.Errorf("%s: negative answer without the SOA: %v", label, r.Ns)
			}
		}
	}
}

// TestMalformed: a query without a question is a format error; an
// opcode other than QUERY is not implemented.
func TestMalformed(t *testing.T) {
	_, srv := start(t, project())
	empty := new(dns.Msg)
	empty.Id = dns.Id()
	update := new(dns.Msg).SetUpdate("shop.foldup.internal.")
	for m, want := range map[*dns.Msg]int{empty: dns.RcodeFormatError, update: dns.RcodeNotImplemented} {
		r, err := dns.Exchange(m, srv)
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != want {
			t.Errorf("opcode %d, %d questions: %s, want %s", m.Opcode, len(m.Question), dns.RcodeToString[r.Rcode], dns.RcodeToString[want])
		}
	}
}

func mustReverse(a string) string {
	r, err := dns.ReverseAddr(a)
	if err != nil {
		panic(err)
	}
	return r
}

// TestViews: each VM sees its own records (chosen by its address) before
// the project's; anyone else sees the project's.
func TestViews(t *testing.T) {
	_, srv := start(t, project())
	for from, want := range map[string]string{
		"127.0.0.1": `table. 60 TXT "Everyone"`,
		"127.0.0.2": `table. 60 TXT "Users"`,
		"127.0.0.3": `table. 60 TXT "Orders"`,
	} {
		if got := answers(query(t, srv, "udp", from, "table.", dns.TypeTXT, false)); got != want {
			t.Errorf("from %s: %s, want %s", from, got, want)
		}
	}
	if got := answers(query(t, srv, "udp", "127.0.0.2", "secret.shop.foldup.internal.", dns.TypeA, false)); got != "secret.shop.foldup.internal. 60 A 10.80.1.99" {
		t.Errorf("web's own A record: %q", got)
	}
}

// stub is an upstream resolver on loopback that answers www.example.test.
func stub(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		if r.Question[0].Name == "www.example.test." && r.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr("www.example.test.", dns.TypeA, 30), A: net.ParseIP("192.0.2.7")})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	ready := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(ready) }
	go srv.ActivateAndServe()
	<-ready
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestUpstream(t *testing.T) {
	cfg := project()
	dead, err := net.ListenPacket("udp", "127.0.0.1:0") // bound, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	cfg.Upstream = []string{dead.LocalAddr().String(), stub(t)}
	_, srv := start(t, cfg)

	r := query(t, srv, "udp", "", "www.example.test.", dns.TypeA, false)
	if got := answers(r); got != "www.example.test. 30 A 192.0.2.7" || r.Authoritative || !r.RecursionAvailable {
		t.Errorf("forwarded past a dead upstream: %s (aa %v, ra %v)", got, r.Authoritative, r.RecursionAvailable)
	}
	if r := query(t, srv, "tcp", "", "nope.example.test.", dns.TypeA, false); r.Rcode != dns.RcodeNameError {
		t.Errorf("upstream's NXDOMAIN became %s", dns.RcodeToString[r.Rcode])
	}
	// The project's names never go upstream.
	if r := query(t, srv, "udp", "", "nope.shop.foldup.internal.", dns.TypeA, false); !r.Authoritative || r.Rcode != dns.RcodeNameError {
		t.Errorf("project name: aa %v rcode %s", r.Authoritative, dns.RcodeToString[r.Rcode])
	}

	cfg.Upstream = []string{dead.LocalAddr().String()}
	_, srv2 := start(t, cfg)
	began := time.Now()
	if r := query(t, srv2, "udp", "", "www.example.test.", dns.TypeA, false); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("dead upstream gave %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if d := time.Since(began); d > 1500*time.Millisecond {
		t.Errorf("SERVFAIL after %v: the 300ms timeout was not kept", d)
	}
}

// TestTruncation: an answer too big for 512 bytes is truncated over UDP
// without EDNS0, fits with EDNS0, and comes whole over TCP.
func TestTruncation(t *testing.T) {
	cfg := project()
	for i := range 20 {
		cfg.Records = append(cfg.Records, spec.Record{Name: "big", TXT: []string{fmt.Sprintf("chunk %02d of a large answer", i)}})
	}
	_, srv := start(t, cfg)
	name := "big.shop.foldup.internal."
	if r := query(t, srv, "udp", "", name, dns.TypeTXT, false); !r.Truncated || len(r.Answer) >= 20 {
		t.Errorf("UDP without EDNS0: truncated %v with %d answers", r.Truncated, len(r.Answer))
	}
	if r := query(t, srv, "udp", "", name, dns.TypeTXT, true); r.Truncated || len(r.Answer) != 20 || r.IsEdns0() == nil {
		t.Errorf("UDP with EDNS0: truncated %v with %d answers, opt %v", r.Truncated, len(r.Answer), r.IsEdns0())
	}
	if r := query(t, srv, "tcp", "", name, dns.TypeTXT, false); r.Truncated || len(r.Answer) != 20 {
		t.Errorf("TCP: truncated %v with %d answers", r.Truncated, len(r.Answer))
	}
}

// TestUpdate: members change while queries run; none fails, and a member
// added is answered as soon as Update returns.
func TestUpdate(t *testing.T) {
	s, srv := start(t, project())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures sync.Map
	for w := range 4 {
		wg.Go(func() {
			c := &dns.Client{Net: "udp", Timeout: time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r, _, err := c.Exchange(new(dns.Msg).SetQuestion("db.shop.foldup.internal.", dns.TypeA), srv)
				if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
					failures.Store(fmt.Sprint(w, i), fmt.Sprint(err, r))
				}
			}
		})
	}
	for i := range 50 {
		cfg := project()
		name := fmt.Sprintf("new%d", i)
		cfg.Members = append(cfg.Members, Member{Name: name, Addrs: addrs(fmt.Sprintf("10.80.1.%d", 100+i))})
		if err := s.Update(cfg); err != nil {
			t.Fatal(err)
		}
		r := query(t, srv, "udp", "", name+".shop.foldup.internal.", dns.TypeA, false)
		if len(r.Answer) != 1 {
			t.Fatalf("member %s not answered right after Update: %s", name, dns.RcodeToString[r.Rcode])
		}
	}
	close(stop)
	wg.Wait()
	failures.Range(func(k, v any) bool {
		t.Errorf("query %v failed during updates: %v", k, v)
		return true
	})
}

// TestDig asks the server with dig, the client people will use.
func TestDig(t *testing.T) {
	systest.Command(t, "dig")
	_, srv := start(t, project())
	host, port, _ := net.SplitHostPort(srv)
	dig := func(args ...string) string {
		out, err := exec.Command("dig", append([]string{"@" + host, "-p", port, "+short", "+time=2", "+tries=1"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"db.shop.foldup.internal", "A"}, "10.80.1.5"},
		{[]string{"db.shop.foldup.internal", "AAAA", "+tcp"}, "fd00:80:1::5"},
		{[]string{"-x", "10.80.1.5"}, "db.shop.foldup.internal."},
		{[]string{"table.", "TXT", "-b", "127.0.0.3"}, `"Orders"`},
		{[]string{"_http._tcp.web.shop.foldup.internal", "SRV"}, "10 5 80 web.shop.foldup.internal."},
		{[]string{"api.shop.foldup.internal", "A"}, "web.shop.foldup.internal.\n127.0.0.2\n10.80.1.10"},
	} {
		if got := dig(c.args...); got != c.want {
			t.Errorf("dig %v: %q, want %q", c.args, got, c.want)
		}
	}
	out, _ := exec.Command("dig", "@"+host, "-p", port, "+time=2", "+tries=1", "nope.shop.foldup.internal").CombinedOutput()
	if !strings.Contains(string(out), "status: NXDOMAIN") || !strings.Contains(string(out), "flags: qr aa rd") {
		t.Errorf("dig of a missing name:\n%s", out)
	}
}

// FuzzDNS feeds the handler any message: it must answer without
// panicking, with a reply that packs and fits in a TCP message.
func FuzzDNS(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"web.shop.foldup.internal.", dns.TypeA}, {"api.shop.foldup.internal.", dns.TypeANY},
		{"5.1.80.10.in-addr.arpa.", dns.TypePTR}, {"_http._tcp.web.shop.foldup.internal.", dns.TypeSRV}} {
		m := new(dns.Msg).SetQuestion(q.name, q.qtype)
		m.SetEdns0(4096, false)
		b, _ := m.Pack()
		f.Add(b)
	}
	s, err := NewDNS(project())
	if err != nil {
		f.Fatal(err)
	}
	from := netip.MustParseAddr("127.0.0.2")
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if req.Unpack(b) != nil {
			return
		}
		resp := s.answer(req, from)
		resp.Truncate(dns.MaxMsgSize)
		if _, err := resp.Pack(); err != nil {
			t.Fatalf("reply to %v does not pack: %v", req, err)
		}
		// The UDP fast path, when it answers, says what the handler says.
		out := make([]byte, maxUDP)
		if n, ok := s.fastAnswer(b, out, from); ok {
			fast := new(dns.Msg)
			if err := fast.Unpack(out[:n]); err != nil {
				t.Fatalf("fast answer to %v does not unpack: %v", req, err)
			}
			if fast.Id != req.Id || fast.Rcode != resp.Rcode || answers(fast) != answers(resp) || len(fast.Ns) != len(resp.Ns) {
				t.Fatalf("fast path answered %v\nwith %v\nthe handler with %v", req, fast, resp)
			}
		}
	})
}

// TestFastPath: answers from the cache of packed answers carry each
// query's ID, RD and spelling, and follow the querier's view.
func TestFastPath(t *testing.T) {
	_, srv := start(t, project())
	for i, name := range []string{"web.shop.foldup.internal.", "web.shop.foldup.internal.", "WEB.Shop.foldup.internal."} {
		m := new(dns.Msg).SetQuestion(name, dns.TypeA)
		m.RecursionDesired = i%2 == 0
		r, err := dns.Exchange(m, srv)
		if err != nil {
			t.Fatal(err)
		}
		if r.Id != m.Id || r.RecursionDesired != m.RecursionDesired || r.Question[0].Name != name ||
			len(r.Answer) != 2 || r.Answer[0].Header().Name != name || !r.Authoritative {
			t.Errorf("query %d (%s, rd %v, id %d): %v", i, name, m.RecursionDesired, m.Id, r)
		}
	}
	// Asked by everyone first, then by web and worker: three answers.
	for _, from := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"} {
		got := answers(query(t, srv, "udp", from, "table.", dns.TypeTXT, false))
		want := map[string]string{"127.0.0.1": `table. TXT "Everyone"`, "127.0.0.2": `table. TXT "Users"`, "127.0.0.3": `table. TXT "Orders"`}[from]
		if !strings.HasSuffix(got, want[len("table."):]) {
			t.Errorf("from %s: %q, want %q", from, got, want)
		}
	}
}
