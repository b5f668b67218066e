// Package dnsd is the project's name and address server: DNS for every
// member and record of a project, served to VMs and containers alike on
// each network's gateway address.
//
// The data the server answers from is an immutable snapshot (a zone),
// replaced whole by Server.Update: a member that joins is answered for
// from the next query on, and no query ever sees half an update.
package dnsd

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/foldup/foldup/spec"
)

// TTLs of what the server makes up itself. Members' are short: their
// addresses change when they are recreated.
const (
	memberTTL = 10
	recordTTL = 60
)

// zone is one snapshot of the answerable data, with names lowercased and
// fully qualified.
type zone struct {
	domain  string                             // "shop.foldup.internal."
	names   map[string][]dns.RR                // owner -> records every querier sees
	views   map[netip.Addr]map[string][]dns.RR // querier -> its own records, by owner
	subnets []netip.Prefix
	soa     *dns.SOA

	// present holds every owner name and every name between it and the
	// root (so that an empty non-terminal is NODATA, not NXDOMAIN);
	// viewPresent the same for each querier's own records.
	present     map[string]bool
	viewPresent map[netip.Addr]map[string]bool

	cache answerCache // packed answers to UDP questions (fast.go)
}

func newZone(cfg Config) (*zone, error) {
	domain := dns.Fqdn(strings.ToLower(cfg.Domain))
	if _, ok := dns.IsDomainName(domain); !ok || domain == "." {
		return nil, fmt.Errorf("domain %q is not a domain name", cfg.Domain)
	}
	z := &zone{
		domain:      domain,
		names:       map[string][]dns.RR{},
		views:       map[netip.Addr]map[string][]dns.RR{},
		subnets:     cfg.Subnets,
		present:     map[string]bool{},
		viewPresent: map[netip.Addr]map[string]bool{},
		soa: &dns.SOA{
			Hdr:     dns.RR_Header{Name: domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: memberTTL},
			Ns:      "ns." + domain,
			Mbox:    "hostmaster." + domain,
			Serial:  1,
			Refresh: 3600, Retry: 600, Expire: 86400,
			Minttl: memberTTL, // negative answers are cached this long
		},
	}
	add := func(m map[string][]dns.RR, rr dns.RR) { m[rr.Header().Name] = append(m[rr.Header().Name], rr) }
	for _, m := range cfg.Members {
		names := append([]string{m.Name}, m.Aliases...)
		for _, n := range names {
			owner, err := z.qualify(n)
			if err != nil {
				return nil, fmt.Errorf("member %s: %w", m.Name, err)
			}
			for _, a := range m.Addrs {
				add(z.names, addrRR(owner, a, memberTTL))
			}
		}
		primary, _ := z.qualify(m.Name)
		for _, a := range m.Addrs {
			rev, _ := dns.ReverseAddr(a.String())
			add(z.names, &dns.PTR{Hdr: hdr(rev, dns.TypePTR, memberTTL), Ptr: primary})
		}
		if len(m.Records) == 0 {
			continue
		}
		view := map[string][]dns.RR{}
		for _, r := range m.Records {
			rr, err := z.record(r)
			if err != nil {
				return nil, fmt.Errorf("member %s: %w", m.Name, err)
			}
			add(view, rr)
		}
		vp := presentNames(view)
		for _, a := range m.Addrs {
			z.views[a] = view
			z.viewPresent[a] = vp
		}
	}
	for _, r := range cfg.Records {
		rr, err := z.record(r)
		if err != nil {
			return nil, err
		}
		add(z.names, rr)
	}
	z.present = presentNames(z.names)
	return z, nil
}

// presentNames returns the owners of m and all their ancestors.
func presentNames(m map[string][]dns.RR) map[string]bool {
	out := map[string]bool{}
	for owner := range m {
		for off, end := 0, false; !end; off, end = dns.NextLabel(owner, off) {
			out[owner[off:]] = true
		}
	}
	return out
}

// qualify makes a name absolute: relative names are under the domain.
func (z *zone) qualify(name string) (string, error) {
	name = strings.ToLower(name)
	if !dns.IsFqdn(name) {
		name += "." + z.domain
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return "", fmt.Errorf("%q is not a domain name", name)
	}
	return name, nil
}

func hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

func addrRR(owner string, a netip.Addr, ttl uint32) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: hdr(owner, dns.TypeA, ttl), A: a.AsSlice()}
	}
	return &dns.AAAA{Hdr: hdr(owner, dns.TypeAAAA, ttl), AAAA: a.AsSlice()}
}

// record turns a file's record into a resource record.
func (z *zone) record(r spec.Record) (dns.RR, error) {
	owner, err := z.qualify(r.Name)
	if err != nil {
		return nil, err
	}
	ttl := r.TTL
	if ttl == 0 {
		ttl = recordTTL
	}
	switch r.Type() {
	case "A", "AAAA":
		s := r.A + r.AAAA
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", r.Name, err)
		}
		return addrRR(owner, a.Unmap(), ttl), nil
	case "TXT":
		return &dns.TXT{Hdr: hdr(owner, dns.TypeTXT, ttl), Txt: r.TXT}, nil
	case "CNAME":
		target, err := z.qualify(r.CNAME)
		if err != nil {
			return nil, err
		}
		return &dns.CNAME{Hdr: hdr(owner, dns.TypeCNAME, ttl), Target: target}, nil
	case "SRV":
		target, err := z.qualify(r.SRV.Target)
		if err != nil {
			return nil, err
		}
		return &dns.SRV{Hdr: hdr(owner, dns.TypeSRV, ttl), Priority: r.SRV.Priority,
			Weight: r.SRV.Weight, Port: r.SRV.Port, Target: target}, nil
	}
	return nil, fmt.Errorf("record %s has no data", r.Name)
}

// lookup returns the records of owner that querier sees: its own view's
// when it has records of that name, else everyone's.
func (z *zone) lookup(querier netip.Addr, owner string) []dns.RR {
	if v, ok := z.views[querier]; ok {
		if rrs, ok := v[owner]; ok {
			return rrs
		}
	}
	return z.names[owner]
}

// authoritative reports whether the zone answers for name (positively or
// with NXDOMAIN): the domain and below, reverse names inside the
// project's subnets, and any name a record defines.
func (z *zone) authoritative(querier netip.Addr, name string) bool {
	if dns.IsSubDomain(z.domain, name) || len(z.lookup(querier, name)) > 0 {
		return true
	}
	if a, ok := reverseAddr(name); ok {
		for _, p := range z.subnets {
			if p.Contains(a) {
				return true
			}
		}
	}
	return false
}

// reverseAddr parses a full in-addr.arpa or ip6.arpa name.
func reverseAddr(name string) (netip.Addr, bool) {
	labels := dns.SplitDomainName(name)
	switch {
	case len(labels) == 6 && strings.EqualFold(labels[4], "in-addr") && strings.EqualFold(labels[5], "arpa"):
		var b [4]byte
		for i := range 4 {
			var v int
			if _, err := fmt.Sscanf(labels[3-i], "%d", &v); err != nil || v < 0 || v > 255 {
				return netip.Addr{}, false
			}
			b[i] = byte(v)
		}
		return netip.AddrFrom4(b), true
	case len(labels) == 34 && strings.EqualFold(labels[32], "ip6") && strings.EqualFold(labels[33], "arpa"):
		var hex strings.Builder
		for i := 31; i >= 0; i-- {
			if len(labels[i]) != 1 {
				return netip.Addr{}, false
			}
			hex.WriteString(labels[i])
			if i%4 == 0 && i > 0 {
				hex.WriteByte(':')
			}
		}
		a, err := netip.ParseAddr(hex.String())
		return a, err == nil
	}
	return netip.Addr{}, false
}
