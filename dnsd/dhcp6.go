package dnsd

import (
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

// dhcp6 serves DHCPv6 on one network: static addresses to the members of
// a static-mode network, DNS server and search list to everyone.
type dhcp6 struct {
	s        *Server
	n        Network
	conn     net.PacketConn
	serverID dhcpv6.DUID
}

// serve answers messages until the connection is closed.
func (d *dhcp6) serve() {
	servePackets(d.conn, d.s.log.With("network", d.n.Name, "proto", "dhcp6"), func(b []byte, peer *net.UDPAddr) ([]byte, net.Addr) {
		msg, err := dhcpv6.MessageFromBytes(b)
		if err != nil {
			return nil, nil // relayed messages too: members are on the link
		}
		from, _ := netip.AddrFromSlice(peer.IP)
		resp := d.handle(msg, from)
		if resp == nil {
			return nil, nil
		}
		return resp.ToBytes(), peer
	})
}

// handle answers one message from a client at from (its link-local
// address), or returns nil.
func (d *dhcp6) handle(msg *dhcpv6.Message, from netip.Addr) *dhcpv6.Message {
	cid := msg.Options.ClientID()
	// A DUID is at most 130 bytes (RFC 8415 11.1); replies echo it.
	if cid == nil || len(msg.Options.GetOne(dhcpv6.OptionClientID).ToBytes()) > 130 {
		return nil
	}
	sid := msg.Options.ServerID()
	ours := sid != nil && sid.Equal(d.serverID)
	t := msg.Type()
	// RFC 8415 16: Solicit, Rebind and Confirm carry no server
	// identifier; Request, Renew, Release and Decline carry ours.
	switch t {
	case dhcpv6.MessageTypeSolicit, dhcpv6.MessageTypeRebind, dhcpv6.MessageTypeConfirm:
		if sid != nil {
			return nil
		}
	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		if !ours {
			return nil
		}
	case dhcpv6.MessageTypeInformationRequest:
		if sid != nil && !ours {
			return nil
		}
	default:
		return nil
	}

	resp := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeReply, TransactionID: msg.TransactionID}
	resp.AddOption(dhcpv6.OptClientID(cid))
	resp.AddOption(dhcpv6.OptServerID(d.serverID))

	switch t {
	case dhcpv6.MessageTypeInformationRequest:
		d.config(resp)
		return resp

	case dhcpv6.MessageTypeConfirm:
		// Are the client's addresses still on this link?
		code := iana.StatusSuccess
		for _, ia := range msg.Options.IANA() {
			for _, a := range ia.Options.Addresses()[:min(len(ia.Options.Addresses()), maxIAs)] {
				if ip, _ := netip.AddrFromSlice(a.IPv6Addr); !d.n.Subnet6.Contains(ip) {
					code = iana.StatusNotOnLink
				}
			}
		}
		resp.AddOption(&dhcpv6.OptStatusCode{StatusCode: code})
		return resp

	case dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		resp.AddOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusSuccess})
		return resp
	}

	// Solicit, Request, Renew, Rebind: the client's address, found by the
	// MAC in its link-local address (the NIC's own) or else its DUID's.
	var b binding
	ok := false
	for _, hw := range clientMACs(cid, from) {
		if b, ok = d.s.snapshot().static6[leaseKey{d.n.Name, string(hw)}]; ok {
			break
		}
	}
	ias := msg.Options.IANA()
	if !ok || len(ias) == 0 {
		return nil // not a client of ours: another server's, if any
	}
	if t == dhcpv6.MessageTypeSolicit {
		if msg.GetOneOption(dhcpv6.OptionRapidCommit) != nil {
			resp.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit})
		} else {
			resp.MessageType = dhcpv6.MessageTypeAdvertise
			// The only server on the link: the client need not wait for
			// other advertisements (RFC 8415 18.2.1).
			resp.AddOption(dhcpv6.OptPreference(255))
		}
	}
	lease := DefaultLease
	if d.n.Lease > 0 {
		lease = d.n.Lease
	}
	// A member has one address: the first IA gets it, the next few are
	// told there is none, and the rest get no answer, so that a request
	// full of IAs gets a reply no longer than a real client's.
	for i, ia := range ias[:min(len(ias), maxIAs)] {
		out := &dhcpv6.OptIANA{IaId: ia.IaId, T1: lease / 2, T2: lease * 4 / 5}
		if i == 0 {
			out.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: b.ip.AsSlice(), PreferredLifetime: lease, ValidLifetime: lease})
		} else {
			out.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoAddrsAvail, StatusMessage: "one address a member"})
		}
		// Addresses the client has that are not its address end now.
		for _, a := range ia.Options.Addresses()[:min(len(ia.Options.Addresses()), maxIAs)] {
			if ip, _ := netip.AddrFromSlice(a.IPv6Addr); ip != b.ip {
				out.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: a.IPv6Addr})
			}
		}
		resp.AddOption(out)
	}
	d.config(resp)
	return resp
}

// maxIAs is how many IAs a reply answers, and how many of an IA's stale
// addresses it ends.
const maxIAs = 4

// config adds the DNS server and search list.
func (d *dhcp6) config(resp *dhcpv6.Message) {
	if d.n.Gateway6.IsValid() {
		resp.AddOption(dhcpv6.OptDNS(d.n.Gateway6.AsSlice()))
	}
	if domain := d.s.snapshot().domain; domain != "" {
		resp.AddOption(dhcpv6.OptDomainSearchList(&rfc1035label.Labels{Labels: []string{domain}}))
	}
}

// clientMACs returns the MACs the client may be: the one in its
// link-local address if that is EUI-64, and the one in a link-layer DUID
// (which a client with several NICs takes from any of them).
func clientMACs(cid dhcpv6.DUID, from netip.Addr) []net.HardwareAddr {
	var out []net.HardwareAddr
	b := from.As16()
	if from.Is6() && from.IsLinkLocalUnicast() && b[11] == 0xff && b[12] == 0xfe {
		out = append(out, net.HardwareAddr{b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]})
	}
	switch d := cid.(type) {
	case *dhcpv6.DUIDLL:
		if d.HWType == iana.HWTypeEthernet && len(d.LinkLayerAddr) == 6 {
			out = append(out, d.LinkLayerAddr)
		}
	case *dhcpv6.DUIDLLT:
		if d.HWType == iana.HWTypeEthernet && len(d.LinkLayerAddr) == 6 {
			out = append(out, d.LinkLayerAddr)
		}
	}
	return out
}
