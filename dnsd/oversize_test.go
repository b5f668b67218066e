package dnsd

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// TestDHCP4LongClientID: a reply echoes the client identifier, even one
// longer than one option holds (sent in pieces), unless that makes the
// reply longer than the client takes: 576 bytes, or the size it states,
// and never more than an Ethernet frame (the malformed replay's
// 4,069-byte request got a 4,184-byte reply).
func TestDHCP4LongClientID(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	d := newHandler(t, lanConfig(Range{netip.MustParseAddr("10.77.0.100"), netip.MustParseAddr("10.77.0.199")}), &now)
	for _, c := range []struct {
		idLen   int
		maxSize uint16 // the client's Maximum DHCP Message Size, or 0
		reply   bool
	}{{16, 0, true}, {200, 0, true}, {255, 0, false}, {255, 1500, true}, {256, 1500, true}, {4000, 0, false}, {4000, 65535, false}} {
		id := bytes.Repeat([]byte{0x42}, c.idLen)
		mods := []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientIdentifier(id))}
		if c.maxSize > 0 {
			mods = append(mods, dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(c.maxSize)))
		}
		m := request(t, dhcpv4.MessageTypeDiscover, "02:fd:00:00:00:10", mods...)
		// Through the wire format, which splits a long option (RFC 3396).
		b := m.ToBytes()
		if req, err := dhcpv4.FromBytes(b); err != nil || len(req.Options.Get(dhcpv4.OptionClientIdentifier)) != c.idLen {
			t.Fatalf("client identifier of %d bytes did not arrive whole: %v", c.idLen, err)
		}
		reply, _ := d.respond(b, zero4)
		if (reply != nil) != c.reply {
			t.Errorf("client identifier of %d bytes, maximum size %d: reply %v, want one: %v", c.idLen, c.maxSize, reply != nil, c.reply)
		}
		if reply == nil {
			continue
		}
		if n, limit := len(reply), max(576, int(c.maxSize)); n > limit {
			t.Errorf("reply of %d bytes, more than the client takes (%d)", n, limit)
		}
		resp, err := dhcpv4.FromBytes(reply)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(resp.Options.Get(dhcpv4.OptionClientIdentifier), id) {
			t.Errorf("client identifier of %d bytes not echoed", c.idLen)
		}
	}
}

// TestDHCPv6ManyIAs: a request with 250 IA_NAs, each naming addresses,
// gets a reply of a real client's size (it got 10.5 KB), still with the
// member's address in the first IA; a DUID longer than RFC 8415 allows
// gets none.
func TestDHCPv6ManyIAs(t *testing.T) {
	d := newHandler6(t)
	webLL := netip.MustParseAddr("fe80::fd:ff:fe00:10")
	m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeSolicit, TransactionID: dhcpv6.TransactionID{1, 2, 3}}
	m.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: mac("02:fd:00:00:00:10")}))
	for i := range 250 {
		ia := &dhcpv6.OptIANA{IaId: [4]byte{0, 0, byte(i >> 8), byte(i)}}
		for j := range 10 {
			ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: netip.AddrFrom16([16]byte{0xfd, 0x99, 15: byte(j)}).AsSlice()})
		}
		m.AddOption(ia)
	}
	req, err := dhcpv6.MessageFromBytes(m.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	resp := d.handle(req, webLL)
	if resp == nil {
		t.Fatal("no reply")
	}
	if n := len(resp.ToBytes()); n > 1232 {
		t.Errorf("reply of %d bytes to a request of %d, more than fits IPv6's minimum MTU", n, len(m.ToBytes()))
	}
	ias := resp.Options.IANA()
	if len(ias) != maxIAs {
		t.Errorf("%d IAs answered, want %d", len(ias), maxIAs)
	}
	if a := ias[0].Options.OneAddress(); a == nil || a.IPv6Addr.String() != "fd77::10" || a.ValidLifetime == 0 {
		t.Errorf("first IA: %v, want fd77::10", ias[0])
	}

	long := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeSolicit, TransactionID: dhcpv6.TransactionID{1, 2, 3}}
	long.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDOpaque{Type: 0xff00, Data: bytes.Repeat([]byte{1}, 129)}))
	long.AddOption(&dhcpv6.OptIANA{IaId: [4]byte{7}})
	req, err = dhcpv6.MessageFromBytes(long.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	if resp := d.handle(req, webLL); resp != nil {
		t.Errorf("a DUID of 131 bytes got a reply")
	}
	// 128 bytes and the type: a reply.
	long.Options.Del(dhcpv6.OptionClientID)
	long.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDOpaque{Type: 0xff00, Data: bytes.Repeat([]byte{1}, 128)}))
	req, _ = dhcpv6.MessageFromBytes(long.ToBytes())
	if resp := d.handle(req, webLL); resp == nil {
		t.Errorf("a DUID of 130 bytes got no reply")
	}
}
