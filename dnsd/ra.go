package dnsd

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/foldup/foldup/spec"
)

// Router advertisement timing (RFC 4861 6.2.1, 10): a few quick ones
// when the server starts, then one every 20 to 60 s (a lab network wants
// a new member configured at once, and members solicit anyway), never
// two multicast ones within 3 s. What the advertisements announce lasts
// well beyond the interval, so that a lost one changes nothing.
const (
	raInitialCount    = 3
	raInitialInterval = 4 * time.Second
	raMinInterval     = 20 * time.Second
	raMaxInterval     = 60 * time.Second
	raMinDelay        = 3 * time.Second
	raRouterLifetime  = 1800 * time.Second
	raPrefixValid     = 24 * time.Hour
	raPrefixPreferred = 4 * time.Hour
	raDNSLifetime     = 3 * raMaxInterval // RFC 8106 5.1: at least 3 × MaxRtrAdvInterval
)

// ICMPv6 option types (RFC 4861 4.6, RFC 8106).
const (
	optSourceLL = 1
	optPrefix   = 3
	optMTU      = 5
	optRDNSS    = 25
	optDNSSL    = 31
)

// ra advertises one network's prefix, router and DNS server, and answers
// router solicitations.
type ra struct {
	s    *Server
	n    Network
	ifi  *net.Interface
	conn *ipv6.PacketConn
	msg  []byte // the advertisement: the network does not change

	mu        sync.Mutex // guards lastMcast
	lastMcast time.Time
}

// listenICMPv6 opens a raw ICMPv6 socket bound to ifname that receives
// router solicitations only.
func listenICMPv6(ifname string) (*ipv6.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) { err = bindToDevice(fd, ifname) })
		return err
	}}
	c, err := lc.ListenPacket(context.Background(), "ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, err
	}
	p := ipv6.NewPacketConn(c)
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	for _, set := range []func() error{
		func() error { return p.SetICMPFilter(&f) },
		func() error { return p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagInterface, true) },
		func() error { return p.SetMulticastHopLimit(255) },
		func() error { return p.SetHopLimit(255) },
		func() error { return p.SetMulticastLoopback(false) },
	} {
		if err := set(); err != nil {
			c.Close()
			return nil, err
		}
	}
	return p, nil
}

// serve answers solicitations until the socket is closed.
func (r *ra) serve() {
	buf := make([]byte, 1500)
	for {
		n, cm, src, err := r.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		from, _ := netip.AddrFromSlice(src.(*net.IPAddr).IP)
		// RFC 4861 6.1.1: only from the link itself.
		if cm == nil || cm.HopLimit != 255 || parseRS(buf[:n], from) != nil {
			continue
		}
		if from.IsUnspecified() {
			r.multicast()
			continue
		}
		r.send(from)
	}
}

// advertise sends the unsolicited advertisements until done is closed.
func (r *ra) advertise(done <-chan struct{}) {
	for i := 0; ; i++ {
		r.multicast()
		wait := raInitialInterval
		if i >= raInitialCount-1 {
			wait = raMinInterval + rand.N(raMaxInterval-raMinInterval)
		}
		select {
		case <-done:
			return
		case <-time.After(wait):
		}
	}
}

// multicast sends the advertisement to all nodes, unless one went less
// than raMinDelay ago.
func (r *ra) multicast() {
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.lastMcast) < raMinDelay {
		r.mu.Unlock()
		return
	}
	r.lastMcast = now
	r.mu.Unlock()
	r.send(netip.MustParseAddr("ff02::1"))
}

func (r *ra) send(to netip.Addr) {
	// The zone by index: a name would be looked up in the namespace of
	// whatever thread sends, not necessarily the bridge's.
	dst := &net.IPAddr{IP: to.AsSlice(), Zone: strconv.Itoa(r.ifi.Index)}
	cm := &ipv6.ControlMessage{HopLimit: 255, IfIndex: r.ifi.Index}
	if _, err := r.conn.WriteTo(r.msg, cm, dst); err != nil {
		r.s.log.Debug("router advertisement", "network", r.n.Name, "to", to, "err", err)
	}
}

// routerAdvertisement builds n's advertisement (RFC 4861 4.2): the
// gateway as default router unless the network is isolated; its /64 with
// the flags of its IPv6 mode; the DNS server and search domain (RFC
// 8106); the MTU; the bridge's link-layer address.
//
// slaac and stable-privacy: the prefix is for autonomous configuration
// (A) and members ask DHCPv6 for nothing but other configuration (O).
// static: no A; addresses come from DHCPv6 (M).
func routerAdvertisement(n Network, hw net.HardwareAddr, domain string) []byte {
	b := make([]byte, 16, 128)
	b[0] = byte(ipv6.ICMPTypeRouterAdvertisement)
	b[4] = 64 // hop limit members should use
	auto := n.IPv6Mode != spec.IPv6Static
	b[5] = 0x40 // O: DNS and the like from DHCPv6 too
	if !auto {
		b[5] |= 0x80 // M: addresses from DHCPv6
	}
	if n.Router {
		binary.BigEndian.PutUint16(b[6:], uint16(raRouterLifetime/time.Second))
	}
	if len(hw) == 6 {
		b = append(b, optSourceLL, 1)
		b = append(b, hw...)
	}
	if n.MTU > 0 {
		b = append(b, optMTU, 1, 0, 0)
		b = binary.BigEndian.AppendUint32(b, uint32(n.MTU))
	}
	flags := byte(0x80) // L: on-link
	if auto {
		flags |= 0x40 // A: form an address in it
	}
	b = append(b, optPrefix, 4, byte(n.Subnet6.Bits()), flags)
	b = binary.BigEndian.AppendUint32(b, uint32(raPrefixValid/time.Second))
	b = binary.BigEndian.AppendUint32(b, uint32(raPrefixPreferred/time.Second))
	b = append(b, 0, 0, 0, 0)
	b = append(b, n.Subnet6.Masked().Addr().AsSlice()...)
	if n.Gateway6.IsValid() {
		b = append(b, optRDNSS, 3, 0, 0)
		b = binary.BigEndian.AppendUint32(b, uint32(raDNSLifetime/time.Second))
		b = append(b, n.Gateway6.AsSlice()...)
	}
	if domain != "" {
		var names []byte
		for _, label := range strings.Split(strings.TrimSuffix(domain, "."), ".") {
			names = append(names, byte(len(label)))
			names = append(names, label...)
		}
		names = append(names, 0)
		for (8+len(names))%8 != 0 {
			names = append(names, 0)
		}
		b = append(b, optDNSSL, byte((8+len(names))/8), 0, 0)
		b = binary.BigEndian.AppendUint32(b, uint32(raDNSLifetime/time.Second))
		b = append(b, names...)
	}
	return b
}

// errBadRS is a router solicitation that RFC 4861 6.1.1 says to drop.
var errBadRS = errors.New("invalid router solicitation")

// parseRS validates a router solicitation from src (RFC 4861 4.1,
// 6.1.1): code 0, at least 8 octets, options of non-zero length that fit,
// and no source link-layer address option from the unspecified address.
func parseRS(b []byte, src netip.Addr) error {
	m, err := icmp.ParseMessage(58, b)
	if err != nil || m.Type != ipv6.ICMPTypeRouterSolicitation || m.Code != 0 || len(b) < 8 {
		return errBadRS
	}
	for opts := b[8:]; len(opts) > 0; {
		if len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return errBadRS
		}
		if opts[0] == optSourceLL && src.IsUnspecified() {
			return errBadRS
		}
		opts = opts[int(opts[1])*8:]
	}
	return nil
}
