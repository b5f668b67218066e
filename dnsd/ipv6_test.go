package dnsd

import (
	"encoding/hex"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/foldup/foldup/spec"
)

// TestRouterAdvertisement checks the bytes of an advertisement field by
// field (RFC 4861 4.2, 4.6; RFC 8106 5).
func TestRouterAdvertisement(t *testing.T) {
	n := lanConfig6(spec.IPv6SLAAC).Networks[0]
	hw, _ := net.ParseMAC("02:00:00:00:00:01")
	for _, c := range []struct {
		name   string
		mode   string
		router bool
		want   string
	}{
		{"slaac", spec.IPv6SLAAC, true, "" +
			"8600 0000 40 40 0708 00000000 00000000" + // type, code, csum, hop limit, flags O, lifetime 1800
			"0101 020000000001" + // source link-layer address
			"0501 0000 00000578" + // MTU 1400
			"0304 40 c0 00015180 00003840 00000000 fd770000000000000000000000000000" + // /64, L A
			"1903 0000 000000b4 fd770000000000000000000000000001" + // RDNSS fd77::1, 180 s
			"1f04 0000 000000b4 0473686f7006666f6c64757008696e7465726e616c00 0000"}, // DNSSL
		{"static, isolated", spec.IPv6Static, false, "" +
			"8600 0000 40 c0 0000 00000000 00000000" + // flags M O, not a default router
			"0101 020000000001" +
			"0501 0000 00000578" +
			"0304 40 80 00015180 00003840 00000000 fd770000000000000000000000000000" + // L only
			"1903 0000 000000b4 fd770000000000000000000000000001" +
			"1f04 0000 000000b4 0473686f7006666f6c64757008696e7465726e616c00 0000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n.IPv6Mode, n.Router = c.mode, c.router
			got := hex.EncodeToString(routerAdvertisement(n, hw, "shop.foldup.internal"))
			want := ""
			for _, r := range c.want {
				if r != ' ' {
					want += string(r)
				}
			}
			if got != want {
				t.Errorf("advertisement\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestParseRS(t *testing.T) {
	ll := netip.MustParseAddr("fe80::1")
	unspec := netip.IPv6Unspecified()
	for _, c := range []struct {
		name string
		hex  string
		src  netip.Addr
		ok   bool
	}{
		{"bare", "85000000 00000000", ll, true},
		{"with source link-layer address", "85000000 00000000 0101020000000001", ll, true},
		{"source link-layer address from ::", "85000000 00000000 0101020000000001", unspec, false},
		{"from ::", "85000000 00000000", unspec, true},
		{"code 1", "85010000 00000000", ll, false},
		{"short", "850000", ll, false},
		{"zero-length option", "85000000 00000000 0100020000000001", ll, false},
		{"option past the end", "85000000 00000000 0102020000000001", ll, false},
		{"not a solicitation", "86000000 00000000", ll, false},
	} {
		b := decodeHex(t, c.hex)
		if err := parseRS(b, c.src); (err == nil) != c.ok {
			t.Errorf("%s: parseRS = %v, want ok %v", c.name, err, c.ok)
		}
	}
}

func decodeHex(t testing.TB, s string) []byte {
	clean := ""
	for _, r := range s {
		if r != ' ' {
			clean += string(r)
		}
	}
	b, err := hex.DecodeString(clean)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzRS(f *testing.F) {
	f.Add(decodeHex(f, "85000000 00000000 0101020000000001"), true)
	f.Add(decodeHex(f, "85000000 00000000"), false)
	f.Fuzz(func(t *testing.T, b []byte, unspecified bool) {
		src := netip.MustParseAddr("fe80::1")
		if unspecified {
			src = netip.IPv6Unspecified()
		}
		parseRS(b, src)
	})
}

// newHandler6 returns the DHCPv6 handler of a static-mode lan.
func newHandler6(t *testing.T) *dhcp6 {
	t.Helper()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	d4 := newHandler(t, lanConfig6(spec.IPv6Static), &now)
	return &dhcp6{s: d4.s, n: d4.n, serverID: &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: mac("02:00:00:00:00:01")}}
}

func TestDHCPv6Handler(t *testing.T) {
	d := newHandler6(t)
	web := mac("02:fd:00:00:00:10")
	webLL := netip.MustParseAddr("fe80::fd:ff:fe00:10")
	other := &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: mac("02:00:00:00:00:99")}
	msg := func(t dhcpv6.MessageType, cid dhcpv6.DUID, mods ...dhcpv6.Modifier) *dhcpv6.Message {
		m := &dhcpv6.Message{MessageType: t, TransactionID: dhcpv6.TransactionID{1, 2, 3}}
		m.AddOption(dhcpv6.OptClientID(cid))
		for _, mod := range mods {
			mod(m)
		}
		return m
	}
	llt := &dhcpv6.DUIDLLT{HWType: iana.HWTypeEthernet, Time: 1, LinkLayerAddr: web}
	ia := dhcpv6.WithIAID([4]byte{0, 0, 0, 7})
	for _, c := range []struct {
		name string
		req  *dhcpv6.Message
		from netip.Addr
		want string // the reply's type and address, or "" for none
	}{
		{"solicit", msg(dhcpv6.MessageTypeSolicit, llt, ia), webLL, "ADVERTISE fd77::10"},
		{"solicit, DUID only", msg(dhcpv6.MessageTypeSolicit, llt, ia), netip.MustParseAddr("fe80::1234"), "ADVERTISE fd77::10"},
		{"solicit, link-local only", msg(dhcpv6.MessageTypeSolicit, &dhcpv6.DUIDUUID{}, ia), webLL, "ADVERTISE fd77::10"},
		{"solicit, rapid commit", msg(dhcpv6.MessageTypeSolicit, llt, ia, dhcpv6.WithRapidCommit), webLL, "REPLY fd77::10"},
		{"solicit with a server id", msg(dhcpv6.MessageTypeSolicit, llt, ia, dhcpv6.WithServerID(d.serverID)), webLL, ""},
		{"solicit, stranger", msg(dhcpv6.MessageTypeSolicit, other, ia), netip.MustParseAddr("fe80::99"), ""},
		{"solicit, no IA", msg(dhcpv6.MessageTypeSolicit, llt), webLL, ""},
		{"request", msg(dhcpv6.MessageTypeRequest, llt, ia, dhcpv6.WithServerID(d.serverID)), webLL, "REPLY fd77::10"},
		{"request to another server", msg(dhcpv6.MessageTypeRequest, llt, ia, dhcpv6.WithServerID(other)), webLL, ""},
		{"renew", msg(dhcpv6.MessageTypeRenew, llt, ia, dhcpv6.WithServerID(d.serverID)), webLL, "REPLY fd77::10"},
		{"rebind", msg(dhcpv6.MessageTypeRebind, llt, ia), webLL, "REPLY fd77::10"},
		{"information request, stranger", msg(dhcpv6.MessageTypeInformationRequest, other), netip.MustParseAddr("fe80::99"), "REPLY"},
		{"release", msg(dhcpv6.MessageTypeRelease, llt, ia, dhcpv6.WithServerID(d.serverID)), webLL, "REPLY"},
		{"advertise", msg(dhcpv6.MessageTypeAdvertise, llt, ia), webLL, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := d.handle(c.req, c.from)
			got := ""
			if resp != nil {
				got = resp.Type().String()
				if ia := resp.Options.OneIANA(); ia != nil {
					if a := ia.Options.OneAddress(); a != nil {
						got += " " + a.IPv6Addr.String()
					}
				}
				if dns := resp.Options.DNS(); len(dns) != 1 || !dns[0].Equal(net.ParseIP("fd77::1")) {
					if resp.Options.Status() == nil {
						t.Errorf("DNS servers %v, want fd77::1", dns)
					}
				}
			}
			if got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func FuzzDHCPv6(f *testing.F) {
	m, _ := dhcpv6.NewSolicit(mac("02:fd:00:00:00:10"))
	f.Add(m.ToBytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		d := newHandler6(t)
		msg, err := dhcpv6.MessageFromBytes(b)
		if err != nil {
			return
		}
		if resp := d.handle(msg, netip.MustParseAddr("fe80::fd:ff:fe00:10")); resp != nil {
			if len(resp.ToBytes()) > 1232 { // IPv6's minimum MTU, less headers
				t.Fatalf("reply of %d bytes", len(resp.ToBytes()))
			}
		}
	})
}
