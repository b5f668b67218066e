package dnsd

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

// dhcp4 serves DHCPv4 on one network.
type dhcp4 struct {
	s    *Server
	n    Network
	conn net.PacketConn
}

// binding is what a client is to get: its address and name.
type binding struct {
	ip       netip.Addr
	hostname string
	pool     bool
}

// serve answers requests until the connection is closed.
func (d *dhcp4) serve() {
	servePackets(d.conn, d.s.log.With("network", d.n.Name, "proto", "dhcp4"), func(b []byte, peer *net.UDPAddr) ([]byte, net.Addr) {
		if reply, to := d.respond(b, peer); reply != nil {
			return reply, to
		}
		return nil, nil
	})
}

// respond answers one datagram: the reply's bytes and where to send them,
// or nil when it gets no answer (see handle), or when the reply would be
// longer than the client takes.
func (d *dhcp4) respond(b []byte, peer *net.UDPAddr) ([]byte, *net.UDPAddr) {
	req, err := dhcpv4.FromBytes(b)
	if err != nil {
		return nil, nil
	}
	resp, to := d.handle(req, peer)
	if resp == nil {
		return nil, nil
	}
	if reply := resp.ToBytes(); len(reply) <= maxReply4(req) {
		return reply, to
	}
	return nil, nil
}

// maxReply4 is the longest reply req's client takes: the size it states
// (RFC 2132 9.10), else 576 bytes (RFC 2131 2), and never more than an
// Ethernet frame holds.
func maxReply4(req *dhcpv4.DHCPv4) int {
	n, err := req.MaxMessageSize()
	if err != nil || n < 576 {
		return 576
	}
	return min(int(n), 1500-20-8)
}

// handle answers one request: the reply and where to send it, or nil
// when the request gets no answer (not ours, not a client we know).
func (d *dhcp4) handle(req *dhcpv4.DHCPv4, peer *net.UDPAddr) (*dhcpv4.DHCPv4, *net.UDPAddr) {
	if req.OpCode != dhcpv4.OpcodeBootRequest || req.HWType != iana.HWTypeEthernet ||
		len(req.ClientHWAddr) != 6 || addrOf(req.GatewayIPAddr).IsValid() {
		return nil, nil // relays are not supported: members are on the link
	}
	k := leaseKey{d.n.Name, string(req.ClientHWAddr)}
	now := d.s.now()
	requested := addrOf(req.RequestedIPAddress())
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		b, ok := d.bind(k, requested)
		if !ok {
			return nil, nil
		}
		return d.reply(req, dhcpv4.MessageTypeOffer, b), d.dest(req, false)

	case dhcpv4.MessageTypeRequest:
		if sid := addrOf(req.ServerIdentifier()); sid.IsValid() && sid != d.n.Gateway4 {
			return nil, nil // the client chose another server's offer
		}
		ip := requested // SELECTING and INIT-REBOOT name the address
		if !ip.IsValid() {
			ip = addrOf(req.ClientIPAddr) // RENEWING and REBINDING use ciaddr
		}
		b, ok := d.bind(k, ip)
		switch {
		case !ok && !d.n.Subnet4.Contains(ip):
			// An address from another network: the client moved here.
			// Tell it, if we are to serve it at all.
			if d.n.Pool4.Valid() || d.s.snapshot().static[k].ip.IsValid() {
				return d.nak(req), d.dest(req, true)
			}
			return nil, nil
		case !ok:
			return nil, nil // a client we know nothing of: stay silent (RFC 2131 4.3.2)
		case b.ip != ip:
			return d.nak(req), d.dest(req, true)
		}
		d.s.leases.grant(k, b.ip, req.HostName(), now.Add(d.lease()), b.pool)
		return d.reply(req, dhcpv4.MessageTypeAck, b), d.dest(req, false)

	case dhcpv4.MessageTypeRelease:
		d.s.leases.release(k, addrOf(req.ClientIPAddr))
		return nil, nil

	case dhcpv4.MessageTypeDecline:
		if requested.IsValid() && d.s.leases.decline(k, requested) {
			d.s.log.Warn("address declined: in use by something else", "network", d.n.Name,
				"address", requested, "mac", req.ClientHWAddr.String())
		}
		return nil, nil

	case dhcpv4.MessageTypeInform:
		ci := addrOf(req.ClientIPAddr)
		if !d.n.Subnet4.Contains(ci) {
			return nil, nil
		}
		resp := d.reply(req, dhcpv4.MessageTypeAck, binding{})
		return resp, &net.UDPAddr{IP: ci.AsSlice(), Port: dhcpv4.ClientPort}
	}
	return nil, nil
}

// bind returns the address k is to have: its static lease, else one
// from the pool (preferring want), else none.
func (d *dhcp4) bind(k leaseKey, want netip.Addr) (binding, bool) {
	snap := d.s.snapshot()
	if b, ok := snap.static[k]; ok {
		return b, true
	}
	if !d.n.Pool4.Valid() {
		return binding{}, false
	}
	ip, ok := d.s.leases.allocate(k, d.n.Pool4, want, func(a netip.Addr) bool {
		return a == d.n.Gateway4 || snap.taken[a]
	})
	return binding{ip: ip, pool: true}, ok
}

func (d *dhcp4) lease() time.Duration {
	if d.n.Lease > 0 {
		return d.n.Lease
	}
	return DefaultLease
}

// reply builds an OFFER or ACK: b's address (none for INFORM) and the
// network's options.
func (d *dhcp4) reply(req *dhcpv4.DHCPv4, t dhcpv4.MessageType, b binding) *dhcpv4.DHCPv4 {
	resp, _ := dhcpv4.NewReplyFromRequest(req)
	resp.UpdateOption(dhcpv4.OptMessageType(t))
	resp.UpdateOption(dhcpv4.OptServerIdentifier(d.n.Gateway4.AsSlice()))
	if b.ip.IsValid() {
		resp.YourIPAddr = b.ip.AsSlice()
		lease := d.lease()
		resp.UpdateOption(dhcpv4.OptIPAddressLeaseTime(lease))
		resp.UpdateOption(dhcpv4.OptRenewTimeValue(lease / 2))
		resp.UpdateOption(dhcpv4.OptRebindingTimeValue(lease * 7 / 8))
		if b.hostname != "" {
			resp.UpdateOption(dhcpv4.OptHostName(b.hostname))
		}
	}
	resp.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(d.n.Subnet4.Bits(), 32)))
	resp.UpdateOption(dhcpv4.OptDNS(d.n.Gateway4.AsSlice()))
	if domain := d.s.snapshot().domain; domain != "" {
		resp.UpdateOption(dhcpv4.OptDomainName(domain))
		resp.UpdateOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: []string{domain}}))
	}
	if d.n.Router {
		resp.UpdateOption(dhcpv4.OptRouter(d.n.Gateway4.AsSlice()))
	}
	if len(d.n.Routes) > 0 {
		// A client that takes classless routes ignores the router option
		// (RFC 3442), so the default route goes in them too.
		var routes []*dhcpv4.Route
		for _, r := range d.n.Routes {
			routes = append(routes, &dhcpv4.Route{
				Dest:   &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), 32)},
				Router: r.Gateway.AsSlice(),
			})
		}
		if d.n.Router {
			routes = append(routes, &dhcpv4.Route{
				Dest:   &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
				Router: d.n.Gateway4.AsSlice(),
			})
		}
		resp.UpdateOption(dhcpv4.OptClasslessStaticRoute(routes...))
	}
	if d.n.MTU > 0 {
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionInterfaceMTU, []byte{byte(d.n.MTU >> 8), byte(d.n.MTU)}))
	}
	return resp
}

func (d *dhcp4) nak(req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	resp, _ := dhcpv4.NewReplyFromRequest(req)
	resp.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeNak))
	resp.UpdateOption(dhcpv4.OptServerIdentifier(d.n.Gateway4.AsSlice()))
	resp.ClientIPAddr = net.IPv4zero
	resp.YourIPAddr = net.IPv4zero
	return resp
}

// dest is where a reply goes (RFC 2131 4.1): to a client that has its
// address, there; else broadcast. (A server may instead unicast to the
// offered address, which needs an ARP entry made for a host that has not
// got the address yet; every client listens for broadcasts.)
func (d *dhcp4) dest(req *dhcpv4.DHCPv4, nak bool) *net.UDPAddr {
	if ci := addrOf(req.ClientIPAddr); ci.IsValid() && !nak {
		return &net.UDPAddr{IP: ci.AsSlice(), Port: dhcpv4.ClientPort}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}

// addrOf converts a net.IP, nil and 0.0.0.0 giving the invalid address.
func addrOf(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || a.Unmap().IsUnspecified() {
		return netip.Addr{}
	}
	return a.Unmap()
}

// servePackets reads datagrams from conn until it is closed, and sends
// whatever handle answers where it says. One goroutine per socket
// handles every request in turn: a reply costs microseconds, and the
// lease table is one lock anyway.
func servePackets(conn net.PacketConn, log *slog.Logger, handle func(b []byte, peer *net.UDPAddr) ([]byte, net.Addr)) {
	buf := make([]byte, 4096)
	for {
		n, peer, err := conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		resp, to := handle(buf[:n], peer.(*net.UDPAddr))
		if resp == nil {
			continue
		}
		if _, err := conn.WriteTo(resp, to); err != nil {
			log.Debug("reply not sent", "to", to, "err", err)
		}
	}
}
