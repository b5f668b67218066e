package network

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// A Filter selects frames by a tcpdump-style expression, of which it
// knows this subset (tcpdump's words and precedence):
//
//	arp | ip | ip6 | icmp | icmp6 | tcp | udp
//	[src|dst] host ADDR          IPv4 or IPv6; ARP's sender and target too
//	[src|dst] net PREFIX         e.g. net 10.80.1.0/24
//	[tcp|udp] [src|dst] port N   TCP or UDP (either, without tcp or udp)
//	ether [src|dst] host MAC
//	vlan                         an 802.1Q-tagged frame
//	EXPR and EXPR, EXPR or EXPR, not EXPR, ( EXPR )   also &&, ||, !
//
// and and or bind equally, left to right, as in tcpdump; not binds
// tighter.
// A frame is Ethernet; an 802.1Q tag before the payload is looked
// through.
type Filter struct {
	expr node
	text string
}

func (f *Filter) String() string { return f.text }

// Match reports whether the frame passes; a nil Filter passes all.
func (f *Filter) Match(frame []byte) bool {
	if f == nil {
		return true
	}
	return f.expr.match(parseFrame(frame))
}

// ParseFilter reads an expression; the error names the word it stopped
// at.
func ParseFilter(s string) (*Filter, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	p := &filterParser{words: tokenize(s)}
	n, err := p.or()
	if err == nil && p.pos < len(p.words) {
		if w := p.words[p.pos]; filterWords[w] {
			err = p.errorf("%q after a whole expression: join them with and or or", w)
		} else {
			err = p.errorf("unknown word %q (%s)", w, knownWords)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", s, err)
	}
	return &Filter{expr: n, text: s}, nil
}

func tokenize(s string) []string {
	s = strings.NewReplacer("(", " ( ", ")", " ) ", "&&", " and ", "||", " or ", "!", " not ").Replace(s)
	return strings.Fields(s)
}

type filterParser struct {
	words []string
	pos   int
}

func (p *filterParser) peek() string {
	if p.pos < len(p.words) {
		return p.words[p.pos]
	}
	return ""
}

func (p *filterParser) next() string {
	w := p.peek()
	p.pos++
	return w
}

func (p *filterParser) errorf(format string, args ...any) error {
	return fmt.Errorf("word %d: %s", p.pos+1, fmt.Sprintf(format, args...))
}

// or reads EXPR (and|or EXPR)...: as in tcpdump, and and or bind
// equally, left to right ("a or b and c" is "(a or b) and c").
func (p *filterParser) or() (node, error) {
	left, err := p.not()
	for err == nil && (p.peek() == "and" || p.peek() == "or") {
		op := p.next()
		var right node
		if right, err = p.not(); err != nil {
			break
		}
		if op == "and" {
			left = andNode{left, right}
		} else {
			left = orNode{left, right}
		}
	}
	return left, err
}

func (p *filterParser) not() (node, error) {
	if p.peek() == "not" {
		p.next()
		n, err := p.not()
		return notNode{n}, err
	}
	if p.peek() == "(" {
		p.next()
		n, err := p.or()
		if err == nil && p.next() != ")" {
			err = p.errorf("missing )")
		}
		return n, err
	}
	return p.primitive()
}

func (p *filterParser) primitive() (node, error) {
	w := p.next()
	switch w {
	case "arp", "ip", "ip6", "icmp", "icmp6", "vlan":
		return protoNode(w), nil
	case "tcp", "udp":
		if p.peek() == "port" || p.peek() == "src" || p.peek() == "dst" {
			n, err := p.directed("port")
			if err != nil {
				return nil, err
			}
			pn := n.(portNode)
			pn.proto = w
			return pn, nil
		}
		return protoNode(w), nil
	case "ether":
		return p.directed("ether")
	case "src", "dst", "host", "net", "port":
		p.pos--
		return p.directed("")
	case "":
		return nil, p.errorf("expression ends too soon")
	}
	return nil, p.errorf("unknown word %q (%s)", w, knownWords)
}

const knownWords = "the filter knows arp, ip, ip6, icmp, icmp6, tcp, udp, vlan, host, net, port, ether, src, dst, and, or, not"

var filterWords = map[string]bool{"arp": true, "ip": true, "ip6": true, "icmp": true, "icmp6": true, "tcp": true, "udp": true,
	"vlan": true, "host": true, "net": true, "port": true, "ether": true, "src": true, "dst": true, "and": true, "or": true, "not": true, "(": true, ")": true}

// directed reads [src|dst] host|net|port VALUE, after ether if kind is
// "ether", or only port if kind is "port".
func (p *filterParser) directed(kind string) (node, error) {
	dir := ""
	if w := p.peek(); w == "src" || w == "dst" {
		dir = p.next()
	}
	what := p.next()
	val := p.next()
	if val == "" {
		return nil, p.errorf("%s needs a value", what)
	}
	switch {
	case kind == "ether" && what == "host":
		mac, err := net.ParseMAC(val)
		if err != nil {
			return nil, p.errorf("%q is not a MAC address", val)
		}
		return etherNode{dir, mac}, nil
	case kind == "ether":
		return nil, p.errorf("ether takes host, not %q", what)
	case what == "port":
		n, err := strconv.ParseUint(val, 10, 16)
		if err != nil {
			return nil, p.errorf("%q is not a port", val)
		}
		return portNode{dir: dir, port: uint16(n)}, nil
	case kind == "port":
		return nil, p.errorf("expected port, not %q", what)
	case what == "host":
		a, err := netip.ParseAddr(val)
		if err != nil {
			return nil, p.errorf("%q is not an IP address", val)
		}
		return netNode{dir, netip.PrefixFrom(a, a.BitLen())}, nil
	case what == "net":
		pfx, err := netip.ParsePrefix(val)
		if err != nil {
			return nil, p.errorf("%q is not a prefix", val)
		}
		return netNode{dir, pfx.Masked()}, nil
	}
	return nil, p.errorf("expected host, net or port, not %q", what)
}

// frame is what the filter looks at in a frame.
type frame struct {
	srcMAC, dstMAC net.HardwareAddr
	vlan           bool
	ethType        uint16
	src, dst       netip.Addr // IP, or ARP's sender and target
	proto          uint8      // IP protocol
	srcPort        uint16
	dstPort        uint16
	hasPorts       bool
}

func parseFrame(b []byte) frame {
	var f frame
	if len(b) < 14 {
		return f
	}
	f.dstMAC, f.srcMAC = net.HardwareAddr(b[0:6]), net.HardwareAddr(b[6:12])
	f.ethType = binary.BigEndian.Uint16(b[12:])
	b = b[14:]
	if f.ethType == 0x8100 && len(b) >= 4 {
		f.vlan = true
		f.ethType = binary.BigEndian.Uint16(b[2:])
		b = b[4:]
	}
	var l4 []byte
	switch f.ethType {
	case 0x0800:
		if len(b) < 20 {
			return f
		}
		ihl := int(b[0]&0xf) * 4
		f.proto = b[9]
		f.src, _ = netip.AddrFromSlice(b[12:16])
		f.dst, _ = netip.AddrFromSlice(b[16:20])
		if ihl >= 20 && len(b) >= ihl && binary.BigEndian.Uint16(b[6:])&0x1fff == 0 {
			l4 = b[ihl:]
		}
	case 0x86dd:
		if len(b) < 40 {
			return f
		}
		f.proto = b[6]
		f.src, _ = netip.AddrFromSlice(b[8:24])
		f.dst, _ = netip.AddrFromSlice(b[24:40])
		l4 = b[40:]
	case 0x0806:
		if len(b) >= 28 && bytes.Equal(b[2:4], []byte{8, 0}) {
			f.src, _ = netip.AddrFromSlice(b[14:18])
			f.dst, _ = netip.AddrFromSlice(b[24:28])
		}
	}
	if (f.proto == 6 || f.proto == 17) && len(l4) >= 4 {
		f.srcPort, f.dstPort, f.hasPorts = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:]), true
	}
	return f
}

type node interface{ match(frame) bool }

type (
	orNode    struct{ a, b node }
	andNode   struct{ a, b node }
	notNode   struct{ a node }
	protoNode string
	netNode   struct {
		dir string
		pfx netip.Prefix
	}
	portNode struct {
		dir, proto string
		port       uint16
	}
	etherNode struct {
		dir string
		mac net.HardwareAddr
	}
)

func (n orNode) match(f frame) bool  { return n.a.match(f) || n.b.match(f) }
func (n andNode) match(f frame) bool { return n.a.match(f) && n.b.match(f) }
func (n notNode) match(f frame) bool { return !n.a.match(f) }

func (n protoNode) match(f frame) bool {
	switch n {
	case "arp":
		return f.ethType == 0x0806
	case "ip":
		return f.ethType == 0x0800
	case "ip6":
		return f.ethType == 0x86dd
	case "icmp":
		return f.ethType == 0x0800 && f.proto == 1
	case "icmp6":
		return f.ethType == 0x86dd && f.proto == 58
	case "tcp":
		return (f.ethType == 0x0800 || f.ethType == 0x86dd) && f.proto == 6
	case "udp":
		return (f.ethType == 0x0800 || f.ethType == 0x86dd) && f.proto == 17
	case "vlan":
		return f.vlan
	}
	return false
}

func either(dir string, src, dst func() bool) bool {
	switch dir {
	case "src":
		return src()
	case "dst":
		return dst()
	}
	return src() || dst()
}

func (n netNode) match(f frame) bool {
	return either(n.dir, func() bool { return f.src.IsValid() && n.pfx.Contains(f.src) },
		func() bool { return f.dst.IsValid() && n.pfx.Contains(f.dst) })
}

func (n portNode) match(f frame) bool {
	if !f.hasPorts || n.proto == "tcp" && f.proto != 6 || n.proto == "udp" && f.proto != 17 {
		return false
	}
	return either(n.dir, func() bool { return f.srcPort == n.port }, func() bool { return f.dstPort == n.port })
}

func (n etherNode) match(f frame) bool {
	return either(n.dir, func() bool { return bytes.Equal(f.srcMAC, n.mac) }, func() bool { return bytes.Equal(f.dstMAC, n.mac) })
}
