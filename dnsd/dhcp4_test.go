package dnsd

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// newHandler returns the DHCPv4 handler of cfg's first network, with its
// leases in memory and a clock the test moves.
func newHandler(t *testing.T, cfg Config, now *time.Time) *dhcp4 {
	t.Helper()
	s := &Server{log: slog.New(slog.DiscardHandler), now: func() time.Time { return *now }}
	s.snap.Store(newSnapshot(cfg))
	var err error
	if s.leases, err = openLeases("", s.now); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.leases.close() })
	return &dhcp4{s: s, n: cfg.Networks[0]}
}

func request(t *testing.T, mt dhcpv4.MessageType, hw string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac(hw)), dhcpv4.WithMessageType(mt)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var (
	bcast = &net.UDPAddr{IP: net.IPv4bcast, Port: 68}
	zero4 = &net.UDPAddr{IP: net.IPv4zero, Port: 68}
)

func ip4(s string) net.IP { return net.ParseIP(s).To4() }

func TestDHCP4Handler(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	pool := Range{netip.MustParseAddr("10.77.0.100"), netip.MustParseAddr("10.77.0.101")}
	web := "02:fd:00:00:00:10"
	for _, c := range []struct {
		name string
		pool Range
		req  *dhcpv4.DHCPv4
		// want: the reply's type (0: no reply), its address, where it goes
		want   dhcpv4.MessageType
		yiaddr string
		to     string
	}{
		{"discover", Range{}, request(t, dhcpv4.MessageTypeDiscover, web), dhcpv4.MessageTypeOffer, "10.77.0.10", "255.255.255.255:68"},
		{"select ours", Range{}, request(t, dhcpv4.MessageTypeRequest, web,
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4("10.77.0.1"))),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("10.77.0.10")))), dhcpv4.MessageTypeAck, "10.77.0.10", "255.255.255.255:68"},
		{"select another server's", Range{}, request(t, dhcpv4.MessageTypeRequest, web,
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4("10.77.0.2"))),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("10.77.0.10")))), 0, "", ""},
		{"init-reboot, wrong address", Range{}, request(t, dhcpv4.MessageTypeRequest, web,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("10.77.0.50")))), dhcpv4.MessageTypeNak, "0.0.0.0", "255.255.255.255:68"},
		{"init-reboot, from another network", Range{}, request(t, dhcpv4.MessageTypeRequest, web,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("192.168.1.9")))), dhcpv4.MessageTypeNak, "0.0.0.0", "255.255.255.255:68"},
		{"renewing", Range{}, request(t, dhcpv4.MessageTypeRequest, web, dhcpv4.WithClientIP(ip4("10.77.0.10"))),
			dhcpv4.MessageTypeAck, "10.77.0.10", "10.77.0.10:68"},
		{"renewing a stale address", Range{}, request(t, dhcpv4.MessageTypeRequest, web, dhcpv4.WithClientIP(ip4("10.77.0.12"))),
			dhcpv4.MessageTypeNak, "0.0.0.0", "255.255.255.255:68"},
		{"unknown discover", Range{}, request(t, dhcpv4.MessageTypeDiscover, "02:aa:00:00:00:01"), 0, "", ""},
		{"unknown init-reboot", Range{}, request(t, dhcpv4.MessageTypeRequest, "02:aa:00:00:00:01",
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("10.77.0.10")))), 0, "", ""},
		{"unknown discover, pool", pool, request(t, dhcpv4.MessageTypeDiscover, "02:aa:00:00:00:01",
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("10.77.0.101")))), dhcpv4.MessageTypeOffer, "10.77.0.101", "255.255.255.255:68"},
		{"pool client asks for a member's address", pool, request(t, dhcpv4.MessageTypeRequest, "02:aa:00:00:00:01",
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("10.77.0.10")))), dhcpv4.MessageTypeNak, "0.0.0.0", "255.255.255.255:68"},
		{"inform", Range{}, request(t, dhcpv4.MessageTypeInform, "02:aa:00:00:00:01", dhcpv4.WithClientIP(ip4("10.77.0.200"))),
			dhcpv4.MessageTypeAck, "0.0.0.0", "10.77.0.200:68"},
		{"inform from elsewhere", Range{}, request(t, dhcpv4.MessageTypeInform, "02:aa:00:00:00:01", dhcpv4.WithClientIP(ip4("10.1.0.2"))), 0, "", ""},
		{"relayed", Range{}, request(t, dhcpv4.MessageTypeDiscover, web, dhcpv4.WithGatewayIP(ip4("10.1.0.1"))), 0, "", ""},
		{"a reply", Range{}, request(t, dhcpv4.MessageTypeOffer, web, dhcpv4.WithReply(request(t, dhcpv4.MessageTypeDiscover, web))), 0, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newHandler(t, lanConfig(c.pool), &now)
			resp, to := d.handle(c.req, zero4)
			if c.want == 0 {
				if resp != nil {
					t.Fatalf("got %s, want no reply", resp.MessageType())
				}
				return
			}
			if resp == nil {
				t.Fatalf("no reply, want %s", c.want)
			}
			if resp.MessageType() != c.want || resp.YourIPAddr.String() != c.yiaddr || to.String() != c.to {
				t.Errorf("got %s yiaddr %s to %s, want %s yiaddr %s to %s",
					resp.MessageType(), resp.YourIPAddr, to, c.want, c.yiaddr, c.to)
			}
			if resp.TransactionID != c.req.TransactionID || resp.OpCode != dhcpv4.OpcodeBootReply {
				t.Errorf("reply xid %s op %s, want %s BootReply", resp.TransactionID, resp.OpCode, c.req.TransactionID)
			}
			if sid := resp.ServerIdentifier(); !sid.Equal(ip4("10.77.0.1")) {
				t.Errorf("server identifier %s", sid)
			}
			lease := resp.IPAddressLeaseTime(0)
			if hasAddr := c.yiaddr != "0.0.0.0"; (lease != 0) != hasAddr {
				t.Errorf("lease time %v with yiaddr %s", lease, c.yiaddr)
			}
		})
	}
}

// TestDHCP4Decline: a declined pool address is not offered again until
// declineHold has passed.
func TestDHCP4Decline(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	pool := Range{netip.MustParseAddr("10.77.0.100"), netip.MustParseAddr("10.77.0.101")}
	d := newHandler(t, lanConfig(pool), &now)
	a := "02:aa:00:00:00:01"
	offer := func() string {
		resp, _ := d.handle(request(t, dhcpv4.MessageTypeDiscover, a), zero4)
		if resp == nil {
			return ""
		}
		return resp.YourIPAddr.String()
	}
	first := offer()
	d.handle(request(t, dhcpv4.MessageTypeDecline, a, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4(first)))), zero4)
	second := offer()
	if second == first || !pool.Contains(netip.MustParseAddr(second)) {
		t.Fatalf("offered %s after declining %s: want the pool's other address", second, first)
	}
	now = now.Add(declineHold + time.Second)
	d.handle(request(t, dhcpv4.MessageTypeDecline, a, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4(second)))), zero4)
	if third := offer(); third != first {
		t.Errorf("offered %s once %s's hold was over, want it", third, first)
	}

	// Another client declines what it was not offered: nothing changes,
	// however many it sends.
	held := len(d.s.leases.declined)
	for i := range 1000 {
		ip := netip.AddrFrom4([4]byte{10, 77, byte(i >> 8), byte(i)})
		d.handle(request(t, dhcpv4.MessageTypeDecline, "02:bb:00:00:00:01", dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip.AsSlice()))), zero4)
	}
	if n := len(d.s.leases.declined); n != held {
		t.Errorf("%d declined addresses after another client's 1,000 declines of addresses not its own, want %d", n, held)
	}
	if again := offer(); again != first {
		t.Errorf("offered %s after others' declines, want %s still", again, first)
	}
}

// TestDHCP4Expiry: an expired pool lease goes to whoever asks for it
// next; a live one does not (the asker is told NAK, and gets another
// address when it starts over).
func TestDHCP4Expiry(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	pool := Range{netip.MustParseAddr("10.77.0.100"), netip.MustParseAddr("10.77.0.101")}
	d := newHandler(t, lanConfig(pool), &now)
	ack := func(hw string) string {
		resp, _ := d.handle(request(t, dhcpv4.MessageTypeRequest, hw,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("10.77.0.100")))), zero4)
		if resp == nil {
			return "none"
		}
		return resp.MessageType().String()
	}
	if got := ack("02:aa:00:00:00:01"); got != "ACK" {
		t.Fatalf("first client: %s", got)
	}
	if got := ack("02:aa:00:00:00:02"); got != "NAK" {
		t.Errorf("second client while the first's lease runs: %s, want NAK", got)
	}
	now = now.Add(3 * time.Minute) // the test network's lease is 2 minutes
	if got := ack("02:aa:00:00:00:02"); got != "ACK" {
		t.Errorf("second client after the first's lease ended: %s, want ACK", got)
	}
}

// TestLeaseFile: leases written by one table are there for the next;
// expired ones are not.
func TestLeaseFile(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	path := t.TempDir() + "/leases.json"
	l, err := openLeases(path, clock)
	if err != nil {
		t.Fatal(err)
	}
	l.grant(leaseKey{"lan", string(mac("02:aa:00:00:00:01"))}, netip.MustParseAddr("10.77.0.100"), "a", now.Add(time.Hour), true)
	l.grant(leaseKey{"lan", string(mac("02:aa:00:00:00:02"))}, netip.MustParseAddr("10.77.0.101"), "b", now.Add(time.Minute), true)
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	l, err = openLeases(path, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	got := l.list()
	if len(got) != 1 || got[0].MAC != "02:aa:00:00:00:01" || got[0].IPv4.String() != "10.77.0.100" || got[0].Hostname != "a" {
		t.Errorf("leases after reopening = %+v, want a's only", got)
	}
}

func FuzzDHCP4(f *testing.F) {
	for _, mt := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest,
		dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline, dhcpv4.MessageTypeInform} {
		m, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac("02:fd:00:00:00:10")), dhcpv4.WithMessageType(mt),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("10.77.0.10"))))
		f.Add(m.ToBytes())
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	pool := Range{netip.MustParseAddr("10.77.0.100"), netip.MustParseAddr("10.77.0.199")}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := newHandler(t, lanConfig(pool), &now)
		if reply, to := d.respond(b, zero4); reply != nil {
			req, _ := dhcpv4.FromBytes(b)
			if to == nil || len(reply) > maxReply4(req) {
				t.Fatalf("reply of %d bytes to %v", len(reply), to)
			}
		}
	})
}
