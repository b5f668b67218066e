//go:build linux

package dnsd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/miekg/dns"
	"golang.org/x/net/ipv6"

	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/spec"
)

// The malformed-packet replay's bounds: each protocol's corpus is
// filled with mutations up to replayTarget packets (never more than
// replayMax), sent replayRounds times in batches; the server must still
// answer after every batch.
const (
	replayRounds  = 5
	replayTarget  = 10000
	replayMax     = 20000
	replayBatch   = 1000 // packets (DNS messages over TCP) between two checks, at most
	replayPerConn = 100  // DNS messages on one TCP connection (miekg/dns closes at 128)
	replayMutable = 4096 // larger packets are sent as they are, not mutated

	// A batch must fit in the receive buffer of the socket it goes to,
	// whether or not the server reads while it arrives: the check after
	// it waits for the server to get through it. replayBudget is half the
	// buffer of the server's UDP sockets (readBuffer; the kernel doubles
	// it), replayRSBudget about half the kernel's default that the
	// ICMPv6 socket has; replayOverhead roughly what a datagram costs in
	// a buffer besides its bytes.
	replayBudget   = readBuffer
	replayRSBudget = 96 << 10
	replayOverhead = 2048

	// What may grow between the first round and the last: a few
	// goroutines that happen to be running, and the heap's noise. A
	// leak of a goroutine or of a few dozen bytes a packet is beyond
	// either.
	replayGoroutineSlack = 5
	replayHeapSlack      = 8 << 20

	maxUDP4Payload = 65507 // 65535 - IPv4 and UDP headers
	maxUDP6Payload = 65527 // 65535 - UDP header (IPv6's payload length excludes its header)
)

// TestMalformedReplay replays malformed packets at a real server over
// its real sockets, in namespaces of its own, and proves that none of
// them breaks it or leaks. The corpus of each protocol is every input in
// testdata/fuzz/FuzzDNS, FuzzDHCP4, FuzzDHCPv6 and FuzzRS, valid
// messages (the fuzz targets' seeds among them) and every truncation of
// them, hand-made malformations (compression-pointer loops, labels and
// options past the end, absurd counts and EDNS sizes, DHCP without its
// end option, empty and 64 KiB datagrams) and seeded bit flips. A
// stranger on the bridge sends it all: DNS over UDP to both gateway
// addresses and over TCP (pipelined, and with lengths larger than what
// follows), DHCPv4 to port 67, DHCPv6 to ff02::1:2 port 547, router
// solicitations to ff02::2. After every batch, web, another member,
// still gets its answers: a name resolves to its address, a DISCOVER
// gets its OFFER, a SOLICIT its ADVERTISE, a solicitation the
// advertisement. Each batch fits in the receive buffer of the socket it
// goes to, and the server's UDP sockets must drop none of it, so the
// whole corpus reaches the server. The whole replay runs replayRounds
// times; between the
// first round and the last, the process's goroutines and heap in use
// must stay flat, so nothing a packet makes outlives it. A panic in the
// server would end the test binary.
func TestMalformedReplay(t *testing.T) {
	began := time.Now()
	l := newLAN(t)
	cfg := lanConfig6(spec.IPv6Static)
	l.start(cfg, Options{})
	var brMAC net.HardwareAddr
	err := l.host.Do(func() error {
		ifi, err := net.InterfaceByName("br0")
		if err == nil {
			brMAC = ifi.HardwareAddr
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The stranger sends the malformed packets and gets whatever they are
	// answered; web only checks, so that no answer to them can pass for
	// one of its own.
	web := newReplayMember(t, l, "02:fd:00:00:00:10", "10.77.0.10", "fd77::10")
	stranger := newReplayMember(t, l, "02:aa:00:00:00:01", "10.77.0.50", "fd77::50")
	snd := stranger.sender(t)
	wantRA := routerAdvertisement(cfg.Networks[0], brMAC, cfg.Domain)
	serverID := &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: brMAC}

	dnsCorpus := buildReplayCorpus(t, "FuzzDNS", 1, replayDNSValid(), replayDNSCrafted())
	dhcp4Corpus := buildReplayCorpus(t, "FuzzDHCP4", 2, replayDHCP4Valid(t, stranger.mac), replayDHCP4Crafted())
	dhcp6Corpus := buildReplayCorpus(t, "FuzzDHCPv6", 3, replayDHCP6Valid(t, serverID), replayDHCP6Crafted(serverID))
	rsCorpus := buildReplayCorpus(t, "FuzzRS", 4, replayRSValid(stranger.mac), replayRSCrafted(stranger.mac))
	for _, c := range []struct {
		name string
		c    *replayCorpus
	}{{"DNS", dnsCorpus}, {"DHCPv4", dhcp4Corpus}, {"DHCPv6", dhcp6Corpus}, {"RS", rsCorpus}} {
		t.Logf("%s corpus: %d packets (%s)", c.name, len(c.c.pkts), strings.Join(c.c.parts, ", "))
	}
	tcpSpecials := replayTCPSpecials(replayDNSValid()[0])

	type check struct {
		name string
		run  func() error
	}
	dns4 := check{"a name over UDP to 10.77.0.1", func() error {
		return web.resolve("udp", "10.77.0.1:53", "db.shop.foldup.internal.", dns.TypeA, "db.shop.foldup.internal. 10 A 10.77.0.11")
	}}
	dns6 := check{"a name over UDP to fd77::1", func() error {
		return web.resolve("udp", "[fd77::1]:53", "db.shop.foldup.internal.", dns.TypeAAAA, "db.shop.foldup.internal. 10 AAAA fd77::11")
	}}
	dnsTCP := check{"a name over TCP", func() error {
		return web.resolve("tcp", "10.77.0.1:53", "web.shop.foldup.internal.", dns.TypeA, "web.shop.foldup.internal. 10 A 10.77.0.10")
	}}
	dhcp4 := check{"a DHCPv4 offer", func() error { return web.offer("10.77.0.10", "10.77.0.1") }}
	dhcp6 := check{"a DHCPv6 advertise", func() error { return web.advertise("fd77::10") }}
	rs := check{"a router advertisement", func() error { return web.solicit(wantRA) }}
	all := []check{dns4, dns6, dnsTCP, dhcp4, dhcp6, rs}
	for _, c := range all {
		if err := c.run(); err != nil {
			t.Fatalf("before the replay, %s: %v", c.name, err)
		}
	}

	streams := []struct {
		name   string
		pkts   [][]byte
		budget int // bytes in a batch, at most (but for a lone packet)
		send   func([][]byte) (sent, refused int)
		check  check
	}{
		{"DNS over UDP/IPv4", dnsCorpus.pkts, replayBudget, snd.udp4To(netip.MustParseAddrPort("10.77.0.1:53")), dns4},
		{"DNS over UDP/IPv6", dnsCorpus.pkts, replayBudget, snd.udp6To(netip.MustParseAddrPort("[fd77::1]:53")), dns6},
		{"DNS over TCP", dnsCorpus.pkts, math.MaxInt, func(b [][]byte) (int, int) { return stranger.sendTCP(t, "10.77.0.1:53", b) }, dnsTCP},
		{"DNS over TCP, cut short", tcpSpecials, math.MaxInt, func(b [][]byte) (int, int) { return stranger.sendTCPRaw(t, "10.77.0.1:53", b) }, dnsTCP},
		{"DHCPv4", dhcp4Corpus.pkts, replayBudget, snd.udp4To(netip.MustParseAddrPort("10.77.0.1:67")), dhcp4},
		{"DHCPv6", dhcp6Corpus.pkts, replayBudget, snd.dhcp6, dhcp6},
		{"RS", rsCorpus.pkts, replayRSBudget, snd.rs, rs},
	}
	sent := make([]int, len(streams))
	refused := make([]int, len(streams))
	took := make([]time.Duration, len(streams))
	var first, last replayUsage
	for round := 1; round <= replayRounds; round++ {
		roundBegan := time.Now()
		var batch [][]byte
		for i, s := range streams {
			streamBegan := time.Now()
			for off := 0; off < len(s.pkts); off += len(batch) {
				batch = replayNextBatch(s.pkts[off:], s.budget)
				n, r := s.send(batch)
				sent[i] += n
				refused[i] += r
				for _, c := range []check{s.check, dns4} {
					if err := c.run(); err != nil {
						t.Fatalf("round %d, after %s packets %d to %d: %s: %v", round, s.name, off, off+len(batch)-1, c.name, err)
					}
				}
			}
			took[i] += time.Since(streamBegan)
		}
		for _, c := range all {
			if err := c.run(); err != nil {
				t.Fatalf("at the end of round %d, %s: %v", round, c.name, err)
			}
		}
		u := measureReplay()
		t.Logf("round %d: %v, heap in use %.1f MiB, %d goroutines", round, time.Since(roundBegan).Round(time.Millisecond), mib(u.heap), u.goroutines)
		if round == 1 {
			first = u
		}
		last = u
	}

	for i, s := range streams {
		t.Logf("%s: %d sent in %d rounds (%v with the checks), %d refused by the sender's kernel",
			s.name, sent[i], replayRounds, took[i].Round(time.Millisecond), refused[i])
	}
	u4, u6, raw := replayDrops(t, l.host)
	t.Logf("the server's namespace dropped %d UDP/IPv4, %d UDP/IPv6 and %d raw ICMPv6 datagrams for full receive buffers", u4, u6, raw)
	if u4+u6 > 0 {
		// Every batch fits in the buffers the server gives its UDP
		// sockets (readBuffer): a loss means one of them has less, or
		// the server stopped reading.
		t.Errorf("the server's UDP sockets dropped %d datagrams over IPv4 and %d over IPv6 for full receive buffers, want none", u4, u6)
	}
	t.Logf("after round 1: heap in use %.1f MiB, %d goroutines; after round %d: %.1f MiB, %d goroutines",
		mib(first.heap), first.goroutines, replayRounds, mib(last.heap), last.goroutines)
	if last.goroutines > first.goroutines+replayGoroutineSlack {
		t.Errorf("goroutines grew from %d after round 1 to %d after round %d: more than %d, a leak",
			first.goroutines, last.goroutines, replayRounds, replayGoroutineSlack)
	}
	if last.heap > first.heap+replayHeapSlack {
		t.Errorf("heap in use grew from %.1f MiB after round 1 to %.1f MiB after round %d: more than %.0f MiB, a leak",
			mib(first.heap), mib(last.heap), replayRounds, mib(replayHeapSlack))
	}
	t.Logf("wall time %v", time.Since(began).Round(time.Millisecond))
}

// replayNextBatch returns the first packets of pkts that fit in budget
// bytes (counting replayOverhead for each), replayBatch at most, and at
// least one.
func replayNextBatch(pkts [][]byte, budget int) [][]byte {
	n, size := 1, len(pkts[0])+replayOverhead
	for ; n < len(pkts) && n < replayBatch; n++ {
		size += len(pkts[n]) + replayOverhead
		if size > budget {
			break
		}
	}
	return pkts[:n]
}

// replayMember is a member namespace on the lan, with an IPv4 and an
// IPv6 address of its own besides its link-local one.
type replayMember struct {
	host  *network.Host
	mac   net.HardwareAddr
	ip4   netip.Addr
	ip6   netip.Addr
	ll    netip.Addr // fe80:: and the MAC's EUI-64
	index int        // eth0's
}

func newReplayMember(t *testing.T, l *lan, hw, ip4, ip6 string) *replayMember {
	t.Helper()
	ns := l.member(hw)
	ns.MustRun(t, "ip", "addr", "add", ip4+"/24", "dev", "eth0")
	ns.MustRun(t, "ip", "-6", "addr", "add", ip6+"/64", "dev", "eth0", "nodad")
	h, err := network.Open(ns.Handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	m := &replayMember{host: h, mac: mac(hw), ip4: netip.MustParseAddr(ip4), ip6: netip.MustParseAddr(ip6)}
	ll := [16]byte{0: 0xfe, 1: 0x80, 8: m.mac[0] ^ 0x02, 9: m.mac[1], 10: m.mac[2], 11: 0xff, 12: 0xfe, 13: m.mac[3], 14: m.mac[4], 15: m.mac[5]}
	m.ll = netip.AddrFrom16(ll)
	// The link-local address comes with the carrier: wait for it, so
	// that DHCPv6 and solicitations go out from it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		found := false
		err := h.Do(func() error {
			ifi, err := net.InterfaceByName("eth0")
			if err != nil {
				return err
			}
			m.index = ifi.Index
			as, err := ifi.Addrs()
			for _, a := range as {
				if p, ok := a.(*net.IPNet); ok && p.IP.Equal(m.ll.AsSlice()) {
					found = true
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if found {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never got its link-local address %s", hw, m.ll)
		}
	}
}

// zone is eth0 as an IPv6 zone: its index, since a name would be looked
// up in the test process's namespace, not the member's.
func (m *replayMember) zone() string { return strconv.Itoa(m.index) }

// replaySender is the stranger's sockets for the replay.
type replaySender struct {
	m     *replayMember
	udp4  *net.UDPConn // DNS and DHCPv4, from its IPv4 address
	udp6  *net.UDPConn // DNS, from its IPv6 address
	udpLL *net.UDPConn // DHCPv6, from its link-local address, port 546
	icmp  *ipv6.PacketConn
}

func (m *replayMember) sender(t *testing.T) *replaySender {
	t.Helper()
	s := &replaySender{m: m}
	err := m.host.Do(func() error {
		var err error
		if s.udp4, err = net.ListenUDP("udp4", &net.UDPAddr{IP: m.ip4.AsSlice()}); err != nil {
			return err
		}
		if s.udp6, err = net.ListenUDP("udp6", &net.UDPAddr{IP: m.ip6.AsSlice()}); err != nil {
			return err
		}
		if s.udpLL, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified, Port: dhcpv6.DefaultClientPort}); err != nil {
			return err
		}
		c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		s.icmp = ipv6.NewPacketConn(c)
		var f ipv6.ICMPFilter
		f.SetAll(true) // it reads nothing: the advertisements it provokes are not its to check
		return s.icmp.SetICMPFilter(&f)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range []io.Closer{s.udp4, s.udp6, s.udpLL, s.icmp} {
			if c != nil {
				c.Close()
			}
		}
	})
	return s
}

// udpTo returns a sender of datagrams on conn to dst. Sending is
// unpaced: a batch is a burst, and the check after it waits for the
// server to get through it.
func udpTo(conn *net.UDPConn, dst netip.AddrPort) func([][]byte) (int, int) {
	return func(pkts [][]byte) (sent, refused int) {
		for _, b := range pkts {
			if _, err := conn.WriteToUDPAddrPort(b, dst); err != nil {
				refused++
			} else {
				sent++
			}
		}
		return sent, refused
	}
}

func (s *replaySender) udp4To(dst netip.AddrPort) func([][]byte) (int, int) {
	return udpTo(s.udp4, dst)
}

func (s *replaySender) udp6To(dst netip.AddrPort) func([][]byte) (int, int) {
	return udpTo(s.udp6, dst)
}

// dhcp6 sends to All_DHCP_Relay_Agents_and_Servers, as clients do.
func (s *replaySender) dhcp6(pkts [][]byte) (int, int) {
	group := netip.AddrPortFrom(netip.MustParseAddr("ff02::1:2").WithZone(s.m.zone()), dhcpv6.DefaultServerPort)
	return udpTo(s.udpLL, group)(pkts)
}

// rs sends solicitations to all routers, with the hop limit of 255 that
// the server insists on (the kernel fills in the checksum).
func (s *replaySender) rs(pkts [][]byte) (sent, refused int) {
	cm := &ipv6.ControlMessage{HopLimit: 255, IfIndex: s.m.index}
	dst := &net.IPAddr{IP: net.ParseIP("ff02::2")}
	for _, b := range pkts {
		if _, err := s.icmp.WriteTo(b, cm, dst); err != nil {
			refused++ // shorter than a checksum: the kernel will not send it
		} else {
			sent++
		}
	}
	return sent, refused
}

// sendTCP sends msgs to server framed as DNS over TCP, replayPerConn to a
// connection, then closes its side and reads what the server answers
// until the server closes too.
func (m *replayMember) sendTCP(t *testing.T, server string, msgs [][]byte) (sent, refused int) {
	t.Helper()
	for off := 0; off < len(msgs); off += replayPerConn {
		chunk := msgs[off:min(off+replayPerConn, len(msgs))]
		var buf []byte
		for _, b := range chunk {
			b = b[:min(len(b), 0xffff)]
			buf = binary.BigEndian.AppendUint16(buf, uint16(len(b)))
			buf = append(buf, b...)
		}
		if err := m.tcpSession(server, buf, true); err != nil {
			t.Errorf("DNS over TCP, messages %d to %d: %v", off, off+len(chunk)-1, err)
			refused += len(chunk)
			continue
		}
		sent += len(chunk)
	}
	return sent, refused
}

// sendTCPRaw sends each of streams on a connection of its own, as it is,
// and closes the connection at once: messages cut short.
func (m *replayMember) sendTCPRaw(t *testing.T, server string, streams [][]byte) (sent, refused int) {
	t.Helper()
	for i, b := range streams {
		if err := m.tcpSession(server, b, false); err != nil {
			t.Errorf("DNS over TCP, stream %d (%x…): %v", i, b[:min(len(b), 8)], err)
			refused++
			continue
		}
		sent++
	}
	return sent, refused
}

// tcpSession writes b on a new connection to server. wait: it then
// closes its sending side and reads everything the server answers until
// the server closes the connection, which must be soon; else it closes
// the connection at once.
func (m *replayMember) tcpSession(server string, b []byte, wait bool) error {
	var conn *net.TCPConn
	err := m.host.Do(func() error {
		c, err := net.Dial("tcp", server)
		if err == nil {
			conn = c.(*net.TCPConn)
		}
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	drained := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, conn)
		drained <- err
	}()
	_, werr := conn.Write(b)
	if !wait {
		conn.Close()
		<-drained
		return nil // whatever the server did with half a message, it did not crash
	}
	if werr != nil {
		conn.Close()
		<-drained
		return fmt.Errorf("writing: %w", werr)
	}
	conn.CloseWrite()
	if err := <-drained; err != nil {
		return fmt.Errorf("the server did not close the connection after the last message: %w", err)
	}
	return nil
}

// resolve asks the server for name from m over netw ("udp" or "tcp") and
// compares the answer, as answers renders it, with want.
func (m *replayMember) resolve(netw, server, name string, qtype uint16, want string) error {
	var conn net.Conn
	err := m.host.Do(func() error {
		var err error
		conn, err = net.Dial(netw, server)
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	c := &dns.Client{Net: netw, Timeout: 5 * time.Second}
	r, _, err := c.ExchangeWithConn(new(dns.Msg).SetQuestion(name, qtype), &dns.Conn{Conn: conn})
	if err != nil {
		return fmt.Errorf("%s %s: %w", name, dns.TypeToString[qtype], err)
	}
	if got := answers(r); r.Rcode != dns.RcodeSuccess || got != want {
		return fmt.Errorf("%s %s: %s %q, want NOERROR %q", name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode], got, want)
	}
	return nil
}

// offer broadcasts a DISCOVER from m, as a client does, and checks the
// OFFER: the address, from the server.
func (m *replayMember) offer(yiaddr, server string) error {
	var conn *net.UDPConn
	err := m.host.Do(func() error {
		var err error
		conn, err = server4.NewIPv4UDPConn("eth0", &net.UDPAddr{Port: dhcpv4.ClientPort})
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	disc, err := dhcpv4.NewDiscovery(m.mac)
	if err != nil {
		return err
	}
	if _, err := conn.WriteTo(disc.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort}); err != nil {
		return err
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1<<16)
	for { // until the deadline: other clients' offers are broadcast too
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("no OFFER to DISCOVER %s: %w", disc.TransactionID, err)
		}
		resp, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || resp.OpCode != dhcpv4.OpcodeBootReply || resp.TransactionID != disc.TransactionID {
			continue
		}
		if resp.MessageType() != dhcpv4.MessageTypeOffer || resp.YourIPAddr.String() != yiaddr || resp.ServerIdentifier().String() != server {
			return fmt.Errorf("DISCOVER %s got %s of %s from %s, want OFFER of %s from %s", disc.TransactionID,
				resp.MessageType(), resp.YourIPAddr, resp.ServerIdentifier(), yiaddr, server)
		}
		return nil
	}
}

// advertise sends a SOLICIT from m's link-local address to
// All_DHCP_Relay_Agents_and_Servers and checks the ADVERTISE: the
// address.
func (m *replayMember) advertise(want string) error {
	var conn *net.UDPConn
	err := m.host.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified, Port: dhcpv6.DefaultClientPort})
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	sol, err := dhcpv6.NewSolicit(m.mac)
	if err != nil {
		return err
	}
	group := &net.UDPAddr{IP: dhcpv6.AllDHCPRelayAgentsAndServers, Port: dhcpv6.DefaultServerPort, Zone: m.zone()}
	if _, err := conn.WriteTo(sol.ToBytes(), group); err != nil {
		return err
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1<<16)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("no ADVERTISE to SOLICIT %s: %w", sol.TransactionID, err)
		}
		resp, err := dhcpv6.MessageFromBytes(buf[:n])
		if err != nil || resp.TransactionID != sol.TransactionID {
			continue
		}
		got := ""
		if ia := resp.Options.OneIANA(); ia != nil {
			if a := ia.Options.OneAddress(); a != nil {
				got = a.IPv6Addr.String()
			}
		}
		if resp.Type() != dhcpv6.MessageTypeAdvertise || got != want {
			return fmt.Errorf("SOLICIT %s got %s of %q, want ADVERTISE of %s", sol.TransactionID, resp.Type(), got, want)
		}
		return nil
	}
}

// solicit sends a router solicitation from m and checks the
// advertisement the server sends back to it (unicast, unlike the
// periodic ones): want, but for the checksum.
func (m *replayMember) solicit(want []byte) error {
	var pc *ipv6.PacketConn
	err := m.host.Do(func() error {
		c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		pc = ipv6.NewPacketConn(c)
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeRouterAdvertisement)
		if err := pc.SetICMPFilter(&f); err != nil {
			c.Close()
			return err
		}
		if err := pc.SetControlMessage(ipv6.FlagDst, true); err != nil {
			c.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer pc.Close()
	rs := append([]byte{byte(ipv6.ICMPTypeRouterSolicitation), 0, 0, 0, 0, 0, 0, 0, optSourceLL, 1}, m.mac...)
	if _, err := pc.WriteTo(rs, &ipv6.ControlMessage{HopLimit: 255, IfIndex: m.index}, &net.IPAddr{IP: net.ParseIP("ff02::2")}); err != nil {
		return err
	}
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, cm, _, err := pc.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("no advertisement to a solicitation from %s: %w", m.ll, err)
		}
		if cm == nil || !cm.Dst.Equal(m.ll.AsSlice()) {
			continue // a periodic one, to all nodes
		}
		got := buf[:n]
		if len(got) != len(want) || !bytes.Equal(got[:2], want[:2]) || !bytes.Equal(got[4:], want[4:]) {
			return fmt.Errorf("advertisement to %s:\n got %x\nwant %x (but for the checksum)", m.ll, got, want)
		}
		return nil
	}
}

// replayUsage is what the process holds once the server is idle.
type replayUsage struct {
	heap       uint64 // runtime.MemStats.HeapInuse after two collections
	goroutines int
}

// measureReplay waits, a few seconds at most, for the goroutines the
// last packets started to end (the count stays the same for 200 ms),
// then collects twice and reads the heap.
func measureReplay() replayUsage {
	n := runtime.NumGoroutine()
	for i, same := 0, 0; same < 10 && i < 250; i++ {
		time.Sleep(20 * time.Millisecond)
		if c := runtime.NumGoroutine(); c == n {
			same++
		} else {
			n, same = c, 0
		}
	}
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return replayUsage{heap: ms.HeapInuse, goroutines: runtime.NumGoroutine()}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// replayDrops reads, in h's namespace, how many datagrams its sockets
// dropped for full receive buffers: UDP over IPv4 and IPv6, and raw
// sockets over IPv6 (the server's ICMPv6 one).
func replayDrops(t *testing.T, h *network.Host) (udp4, udp6, raw6 int) {
	t.Helper()
	err := h.Do(func() error {
		// /proc/thread-self: this thread is in h's namespace, the
		// process as a whole is not.
		snmp, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		var names []string
		for _, line := range strings.Split(string(snmp), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || f[0] != "Udp:" {
				continue
			}
			if names == nil {
				names = f
				continue
			}
			if i := slices.Index(names, "RcvbufErrors"); i > 0 && i < len(f) {
				udp4, _ = strconv.Atoi(f[i])
			}
		}
		snmp6, err := os.ReadFile("/proc/thread-self/net/snmp6")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(snmp6), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "Udp6RcvbufErrors" {
				udp6, _ = strconv.Atoi(f[1])
			}
		}
		raw, err := os.ReadFile("/proc/thread-self/net/raw6")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(raw), "\n")[1:] {
			if f := strings.Fields(line); len(f) > 0 {
				n, _ := strconv.Atoi(f[len(f)-1]) // drops
				raw6 += n
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("reading the server namespace's drop counters: %v", err)
	}
	return udp4, udp6, raw6
}

// replayCorpus is one protocol's packets, without duplicates, in a fixed
// order, and what they are.
type replayCorpus struct {
	pkts  [][]byte
	seen  map[string]bool
	parts []string
}

func (c *replayCorpus) add(b []byte) bool {
	if c.seen[string(b)] {
		return false
	}
	c.seen[string(b)] = true
	c.pkts = append(c.pkts, b)
	return true
}

func (c *replayCorpus) addAll(what string, pkts [][]byte) {
	n := 0
	for _, b := range pkts {
		if c.add(b) {
			n++
		}
	}
	c.parts = append(c.parts, fmt.Sprintf("%d %s", n, what))
}

// buildReplayCorpus is target's fuzz corpus, the valid packets and every
// truncation of them, the crafted ones, and mutations of the valid and
// crafted ones (a fixed PCG seed: the same corpus on every run) up to
// replayTarget in all.
func buildReplayCorpus(t *testing.T, target string, seed uint64, valid, crafted [][]byte) *replayCorpus {
	t.Helper()
	c := &replayCorpus{seen: map[string]bool{}}
	c.addAll("from testdata/fuzz/"+target, fuzzInputs(t, target))
	c.addAll("valid", valid)
	var cut [][]byte
	for _, b := range valid {
		for n := range len(b) {
			cut = append(cut, b[:n])
		}
	}
	c.addAll("truncations", cut)
	c.addAll("hand-made", crafted)
	var bases [][]byte
	for _, b := range slices.Concat(valid, crafted) {
		if len(b) >= 4 && len(b) <= replayMutable { // shorter ones are all there as truncations
			bases = append(bases, b)
		}
	}
	r := rand.New(rand.NewPCG(seed, 0x6d616c666f726d))
	interesting := []byte{0x00, 0x01, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xfe, 0xff}
	n := 0
	for tries := 0; len(c.pkts) < replayTarget && tries < 4*replayTarget; tries++ {
		b := slices.Clone(bases[r.IntN(len(bases))])
		if r.IntN(4) > 0 { // mostly one to four bit flips
			for range 1 + r.IntN(4) {
				bit := r.IntN(8 * len(b))
				b[bit/8] ^= 1 << (bit % 8)
			}
		} else { // else a byte set to a boundary value: lengths and counts at their extremes
			b[r.IntN(len(b))] = interesting[r.IntN(len(interesting))]
		}
		if c.add(b) {
			n++
		}
	}
	c.parts = append(c.parts, fmt.Sprintf("%d mutations", n))
	if len(c.pkts) > replayMax {
		t.Fatalf("%s: %d packets, more than %d", target, len(c.pkts), replayMax)
	}
	return c
}

// fuzzInputs reads the []byte inputs of target's corpus in
// testdata/fuzz: files of "go test fuzz v1" and then one Go literal a
// line, an argument each; other arguments (FuzzRS's bool) are left out.
func fuzzInputs(t *testing.T, target string) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		if strings.TrimSpace(lines[0]) != "go test fuzz v1" {
			t.Fatalf("%s: not a fuzz corpus file (first line %q)", f, lines[0])
		}
		for _, line := range lines[1:] {
			lit, ok := strings.CutPrefix(strings.TrimSpace(line), "[]byte(")
			if !ok {
				continue
			}
			s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
			if err != nil {
				t.Fatalf("%s: %s: %v", f, line, err)
			}
			out = append(out, []byte(s))
		}
	}
	return out
}

func be16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func be32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

// repeatTo repeats unit after prefix while it fits in size bytes.
func repeatTo(prefix, unit []byte, size int) []byte {
	b := slices.Clone(prefix)
	for len(b)+len(unit) <= size {
		b = append(b, unit...)
	}
	return b
}

// fill pads prefix with v to size bytes.
func fill(prefix []byte, v byte, size int) []byte {
	b := slices.Clone(prefix)
	for len(b) < size {
		b = append(b, v)
	}
	return b
}

// replayDNSValid are queries the server answers: FuzzDNS's seeds and
// more, with fixed IDs.
func replayDNSValid() [][]byte {
	var out [][]byte
	for _, q := range []struct {
		name  string
		qtype uint16
		edns  bool
	}{
		{"web.shop.foldup.internal.", dns.TypeA, true},
		{"api.shop.foldup.internal.", dns.TypeANY, true},
		{"5.1.80.10.in-addr.arpa.", dns.TypePTR, true},
		{"_http._tcp.web.shop.foldup.internal.", dns.TypeSRV, true},
		{"db.shop.foldup.internal.", dns.TypeA, false},
		{"db.shop.foldup.internal.", dns.TypeAAAA, true},
		{"motd.shop.foldup.internal.", dns.TypeTXT, false},
		{"11.0.77.10.in-addr.arpa.", dns.TypePTR, false},
		{"shop.foldup.internal.", dns.TypeSOA, true},
		{"www.example.test.", dns.TypeA, false}, // not the project's, no upstream: REFUSED
	} {
		m := new(dns.Msg).SetQuestion(q.name, q.qtype)
		m.Id = uint16(0x100 + len(out))
		if q.edns {
			m.SetEdns0(4096, false)
		}
		b, err := m.Pack()
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

// replayDNSCrafted are DNS messages malformed by hand.
func replayDNSCrafted() [][]byte {
	hdr := func(flags, qd, an, ns, ar uint16) []byte {
		return be16(be16(be16(be16(be16(be16(nil, 0x1234), flags), qd), an), ns), ar)
	}
	name := func(labels ...string) []byte {
		var b []byte
		for _, l := range labels {
			b = append(append(b, byte(len(l))), l...)
		}
		return append(b, 0)
	}
	web := name("web", "shop", "foldup", "internal")
	tc := func(qtype, qclass uint16) []byte { return be16(be16(nil, qtype), qclass) }
	aIN := tc(dns.TypeA, dns.ClassINET)
	const rd = 0x0100
	query := slices.Concat(hdr(rd, 1, 0, 0, 0), web, aIN)
	opt := func(size uint16, ttl uint32, rdata []byte) []byte {
		b := be32(be16(be16([]byte{0}, dns.TypeOPT), size), ttl)
		return append(be16(b, uint16(len(rdata))), rdata...)
	}
	eopt := func(code uint16, data []byte) []byte {
		return append(be16(be16(nil, code), uint16(len(data))), data...)
	}
	withOpt := func(o []byte) []byte { return slices.Concat(hdr(rd, 1, 0, 0, 1), web, aIN, o) }
	// An answer record after the question, owned by the question's name.
	rr := func(t uint16, rdlen uint16, rdata []byte) []byte {
		return append(be16(be32(tc(t, dns.ClassINET), 10), rdlen), rdata...)
	}
	qEnd := len(query) // where the answer section starts
	big := strings.Repeat("a", 63)

	out := [][]byte{
		{}, {0}, {0x12, 0x34}, hdr(rd, 1, 0, 0, 0)[:11],
		hdr(rd, 0, 0, 0, 0), // no question: FORMERR
		hdr(rd, 1, 0, 0, 0), // a question promised, none there

		// Compression pointers: to itself, in a loop of two, after a
		// label back to its start, into the header, past the end, cut
		// in half, with the reserved 0x80 and 0x40 label types.
		slices.Concat(hdr(rd, 1, 0, 0, 0), []byte{0xc0, 12}, aIN),
		slices.Concat(hdr(rd, 1, 0, 0, 0), []byte{0xc0, 14, 0xc0, 12}, aIN),
		slices.Concat(hdr(rd, 1, 0, 0, 0), []byte{3, 'w', 'e', 'b', 0xc0, 12}, aIN),
		slices.Concat(hdr(rd, 1, 0, 0, 0), []byte{0xc0, 0}, aIN),
		slices.Concat(hdr(rd, 1, 0, 0, 0), []byte{0xc0, 0xff}, aIN),
		slices.Concat(hdr(rd, 1, 0, 0, 0), []byte{0xff, 0xff}, aIN),
		slices.Concat(hdr(rd, 1, 0, 0, 0), []byte{0xc0}),
		slices.Concat(hdr(rd, 1, 0, 0, 0), []byte{0x81, 'x', 0}, aIN),
		slices.Concat(hdr(rd, 1, 0, 0, 0), []byte{0x41, 'x', 0}, aIN),
		// A second question that points at itself, and at the first.
		slices.Concat(hdr(rd, 2, 0, 0, 0), web, aIN, []byte{0xc0, byte(qEnd)}, aIN),
		slices.Concat(hdr(rd, 2, 0, 0, 0), web, aIN, []byte{0xc0, 12}, aIN),
		// An answer whose owner loops, and a CNAME whose target does.
		slices.Concat(hdr(rd, 1, 1, 0, 0), web, aIN, []byte{0xc0, byte(qEnd)}, rr(dns.TypeA, 4, []byte{1, 2, 3, 4})),
		slices.Concat(hdr(rd, 1, 1, 0, 0), web, aIN, []byte{0xc0, 12}, rr(dns.TypeCNAME, 2, []byte{0xc0, byte(qEnd + 12)})),

		// Label lengths beyond the packet; names beyond 255 bytes;
		// labels with dots, NULs and high bytes in them.
		slices.Concat(hdr(rd, 1, 0, 0, 0), []byte{63, 'a', 'b', 'c'}),
		slices.Concat(hdr(rd, 1, 0, 0, 0), []byte{3, 'w', 'e', 'b', 200, 'x'}),
		slices.Concat(hdr(rd, 1, 0, 0, 0), name(big, big, big, big, big), aIN),
		slices.Concat(hdr(rd, 1, 0, 0, 0), name(slices.Repeat([]string{"a"}, 128)...), aIN),
		slices.Concat(hdr(rd, 1, 0, 0, 0), name(slices.Repeat([]string{"a"}, 127)...), aIN), // 255: the limit
		slices.Concat(hdr(rd, 1, 0, 0, 0), name("w.b", "shop", "foldup", "internal"), aIN),
		slices.Concat(hdr(rd, 1, 0, 0, 0), name("\x00\x00\x00", "shop", "foldup", "internal"), aIN),
		slices.Concat(hdr(rd, 1, 0, 0, 0), name("\xff\xfe\xfd", "shop", "foldup", "internal"), aIN),
		slices.Concat(hdr(rd, 1, 0, 0, 0), name("WeB", "ShOp", "FOLDUP", "internal"), aIN),

		// Counts far beyond the records there are.
		slices.Concat(hdr(rd, 0xffff, 0, 0, 0), web, aIN),
		slices.Concat(hdr(rd, 1, 0xffff, 0, 0), web, aIN),
		slices.Concat(hdr(rd, 1, 0, 0xffff, 0), web, aIN),
		slices.Concat(hdr(rd, 1, 0, 0, 0xffff), web, aIN),
		slices.Concat(hdr(rd, 0xffff, 0xffff, 0xffff, 0xffff), web, aIN),
		slices.Concat(hdr(rd, 2, 0, 0, 0), web, aIN),
		slices.Concat(hdr(rd, 0, 0, 0, 0), web, aIN),
		// Thousands of questions and records that are there (in the
		// server's 4096-byte read).
		repeatTo(hdr(rd, 0xffff, 0, 0, 0), slices.Concat([]byte{0}, aIN), 4096),
		repeatTo(slices.Concat(hdr(rd, 1, 0xffff, 0, 0), web, aIN), slices.Concat([]byte{0}, rr(dns.TypeA, 0, nil)), 4096),
		repeatTo(slices.Concat(hdr(rd, 1, 0, 0, 0xffff), web, aIN), opt(4096, 0, nil), 4096),
		// A record whose data runs past the end.
		slices.Concat(query[:qEnd], []byte{0xc0, 12}, rr(dns.TypeA, 0xffff, []byte{1, 2, 3, 4})),
		slices.Concat(hdr(rd, 1, 1, 0, 0), web, aIN, []byte{0xc0, 12}, rr(dns.TypeA, 0xffff, []byte{1, 2, 3, 4})),
		slices.Concat(hdr(rd, 1, 1, 0, 0), web, aIN, []byte{0xc0, 12}, rr(dns.TypeTXT, 10, []byte{200, 'x'})),

		// EDNS: absurd sizes, versions and flags, options past the
		// record's end, the record past the message's, two of them, one
		// not at the root, one in the answer section.
		withOpt(opt(0, 0, nil)), withOpt(opt(1, 0, nil)), withOpt(opt(511, 0, nil)),
		withOpt(opt(1232, 0, nil)), withOpt(opt(65535, 0, nil)),
		withOpt(opt(4096, 0x00010000, nil)), withOpt(opt(4096, 0x00ff0000, nil)),
		withOpt(opt(4096, 0xff000000, nil)), withOpt(opt(4096, 0x00008000, nil)), withOpt(opt(4096, 0xffffffff, nil)),
		slices.Concat(hdr(rd, 1, 0, 0, 1), web, aIN, opt(4096, 0, nil)[:9], []byte{0xff, 0xff, 1, 2}),
		withOpt(opt(4096, 0, []byte{0, 8, 0, 100, 0, 1})),
		withOpt(opt(4096, 0, eopt(dns.EDNS0SUBNET, []byte{0, 1, 255, 255, 10, 77, 0, 1}))),
		withOpt(opt(4096, 0, eopt(dns.EDNS0SUBNET, []byte{0, 2, 129, 0, 0xfd, 0x77}))),
		withOpt(opt(4096, 0, eopt(dns.EDNS0SUBNET, []byte{0, 99, 8, 0, 1}))),
		withOpt(opt(4096, 0, eopt(dns.EDNS0SUBNET, nil))),
		withOpt(opt(4096, 0, eopt(dns.EDNS0COOKIE, []byte{1}))),
		withOpt(opt(4096, 0, eopt(dns.EDNS0COOKIE, bytes.Repeat([]byte{1}, 41)))),
		withOpt(opt(4096, 0, eopt(dns.EDNS0PADDING, make([]byte, 3900)))),
		withOpt(opt(4096, 0, bytes.Repeat(eopt(0xfde9, nil), 900))),
		withOpt(opt(4096, 0, eopt(dns.EDNS0EXPIRE, []byte{1, 2}))),
		withOpt(opt(4096, 0, eopt(dns.EDNS0TCPKEEPALIVE, []byte{1, 2, 3}))),
		slices.Concat(hdr(rd, 1, 0, 0, 2), web, aIN, opt(4096, 0, nil), opt(512, 0, nil)),
		slices.Concat(hdr(rd, 1, 0, 0, 1), web, aIN, []byte{1, 'a', 0}, opt(4096, 0, nil)[1:]),
		slices.Concat(hdr(rd, 1, 1, 0, 0), web, aIN, opt(4096, 0, nil)),
		slices.Concat(hdr(rd, 1, 0, 0, 1), web, aIN, opt(4096, 0, nil)[:5]),

		// A response, other opcodes, the reserved Z bit, an rcode in a
		// query, the TC bit.
		slices.Concat(hdr(0x8180, 1, 0, 0, 0), web, aIN),
		slices.Concat(hdr(rd|0x0040, 1, 0, 0, 0), web, aIN),
		slices.Concat(hdr(rd|0x000f, 1, 0, 0, 0), web, aIN),
		slices.Concat(hdr(rd|0x0200, 1, 0, 0, 0), web, aIN),
		slices.Concat(hdr(0xffff, 1, 0, 0, 0), web, aIN),

		// Trailing bytes after a whole query.
		slices.Concat(query, make([]byte, 100)),
	}
	for op := uint16(1); op < 16; op++ {
		out = append(out, slices.Concat(hdr(rd|op<<11, 1, 0, 0, 0), web, aIN))
	}
	for _, t := range []uint16{0, dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, 0xffff} {
		out = append(out, slices.Concat(hdr(rd, 1, 0, 0, 0), web, tc(t, dns.ClassINET)))
	}
	for _, c := range []uint16{0, dns.ClassCHAOS, dns.ClassNONE, dns.ClassANY, 0xffff} {
		out = append(out, slices.Concat(hdr(rd, 1, 0, 0, 0), web, tc(dns.TypeA, c)))
	}
	// A chain of 300 names each pointing at the one before: a name far
	// longer than 255 bytes once followed.
	chain := hdr(rd, 300, 0, 0, 0)
	prev := len(chain)
	chain = slices.Concat(chain, []byte{1, 'a', 0}, aIN)
	for range 299 {
		at := len(chain)
		chain = slices.Concat(chain, []byte{1, 'a', 0xc0 | byte(prev>>8), byte(prev)}, aIN)
		prev = at
	}
	out = append(out, chain)
	// TSIG that signs nothing the server has a key for.
	tsig := slices.Concat([]byte{3, 'k', 'e', 'y', 0}, tc(dns.TypeTSIG, dns.ClassANY), be32(nil, 0), be16(nil, 10), make([]byte, 10))
	out = append(out, slices.Concat(hdr(rd, 1, 0, 0, 1), web, aIN, tsig))

	// The largest UDP datagrams: zeros, 0xff, a query padded, pointers
	// all the way (the server reads the first 4096 bytes).
	out = append(out,
		make([]byte, maxUDP4Payload),
		fill(nil, 0xff, maxUDP4Payload),
		fill(query, 0, maxUDP4Payload),
		repeatTo(hdr(rd, 0xffff, 0, 0, 0), []byte{0xc0, 12}, maxUDP4Payload),
	)
	return out
}

// replayTCPSpecials are TCP streams cut short: nothing, half a length,
// a length and nothing, lengths larger than what follows, an empty
// message, a whole 65535-byte message.
func replayTCPSpecials(query []byte) [][]byte {
	return [][]byte{
		{},
		{0x00},
		{0xff, 0xff},
		append([]byte{0xff, 0xff}, query...),
		append([]byte{0x02, 0x00}, query...),
		append(be16(nil, uint16(len(query))), query[:len(query)/2]...),
		{0x00, 0x00},
		slices.Concat([]byte{0x00, 0x00}, be16(nil, uint16(len(query))), query),
		fill([]byte{0xff, 0xff, 0x12, 0x34, 0x01, 0x00, 0x00, 0x01}, 0, 2+0xffff),
	}
}

// replayDHCP4Valid are requests the server handles: FuzzDHCP4's seeds
// (web's messages of every type) and more, with fixed transaction IDs.
func replayDHCP4Valid(t *testing.T, stranger net.HardwareAddr) [][]byte {
	t.Helper()
	web := mac("02:fd:00:00:00:10")
	var out [][]byte
	add := func(mods ...dhcpv4.Modifier) {
		m, err := dhcpv4.New(mods...)
		if err != nil {
			t.Fatal(err)
		}
		m.TransactionID = dhcpv4.TransactionID{0, 0, 0x44, byte(len(out))}
		out = append(out, m.ToBytes())
	}
	for _, mt := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest,
		dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline, dhcpv4.MessageTypeInform} {
		add(dhcpv4.WithHwAddr(web), dhcpv4.WithMessageType(mt), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("10.77.0.10"))))
	}
	add(dhcpv4.WithHwAddr(web), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4("10.77.0.1"))), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("10.77.0.10"))))
	add(dhcpv4.WithHwAddr(web), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithClientIP(ip4("10.77.0.10")))
	add(dhcpv4.WithHwAddr(stranger), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithBroadcast(true))
	add(dhcpv4.WithHwAddr(stranger), dhcpv4.WithMessageType(dhcpv4.MessageTypeInform), dhcpv4.WithClientIP(ip4("10.77.0.50")))
	return out
}

// replayDHCP4Crafted are DHCPv4 messages malformed by hand.
func replayDHCP4Crafted() [][]byte {
	web := mac("02:fd:00:00:00:10")
	// header returns a BOOTREQUEST header from web, changed by set.
	header := func(set func(h []byte)) []byte {
		h := make([]byte, 236)
		h[0], h[1], h[2] = 1, 1, 6 // op, htype, hlen
		copy(h[4:], []byte{0xde, 0xad, 0xbe, 0xef})
		copy(h[28:], web)
		if set != nil {
			set(h)
		}
		return h
	}
	cookie := []byte{99, 130, 83, 99}
	o := func(code byte, data ...byte) []byte { return append([]byte{code, byte(len(data))}, data...) }
	msg := func(h []byte, opts ...[]byte) []byte { return slices.Concat(h, cookie, slices.Concat(opts...)) }
	h := header(nil)
	disc := o(53, byte(dhcpv4.MessageTypeDiscover))
	end := []byte{255}
	long := bytes.Repeat([]byte{'x'}, 253)

	out := [][]byte{
		{}, {1}, h[:235], h, slices.Concat(h, cookie[:3]), slices.Concat(h, cookie),
		slices.Concat(h, []byte{99, 130, 83, 98}, disc, end), // not the magic cookie

		// Option 255 missing.
		msg(h, disc),
		msg(h, disc, o(50, 10, 77, 0, 10)),
		msg(h, disc, []byte{0, 0, 0}),
		// Options overrunning the packet: lengths past the end, a code
		// without its length, the message type's length wrong.
		msg(h, disc, []byte{12, 200, 'a', 'b'}),
		msg(h, []byte{53, 5, 1}),
		msg(h, disc, []byte{50}),
		msg(h, disc, []byte{50, 4, 10, 77}),
		msg(h, o(53), end),
		msg(h, o(53, 1, 1), end),
		msg(h, end, disc), // the type only after the end
		msg(h, disc, disc, end),
		// Option overload (52): in file and sname, overrunning them,
		// without their end, with a value that means nothing.
		msg(header(func(h []byte) { copy(h[108:], []byte{53, 1, 1, 12, 200, 'x'}) }), o(52, 1), end),
		msg(header(func(h []byte) { copy(h[44:], []byte{53, 1, 1, 12, 200, 'x'}) }), o(52, 2), end),
		msg(header(func(h []byte) { copy(h[44:], bytes.Repeat([]byte{12, 62}, 100)) }), o(52, 3), disc, end),
		msg(header(func(h []byte) { copy(h[108:], bytes.Repeat([]byte{53}, 128)) }), o(52, 1), end),
		msg(h, o(52, 4), disc, end),
		msg(h, o(52), disc, end),
		// Header fields out of range.
		msg(header(func(h []byte) { h[0] = 2 }), disc, end),
		msg(header(func(h []byte) { h[0] = 0 }), disc, end),
		msg(header(func(h []byte) { h[0] = 0xff }), disc, end),
		msg(header(func(h []byte) { h[1] = 0 }), disc, end),
		msg(header(func(h []byte) { h[1] = 6 }), disc, end),
		msg(header(func(h []byte) { h[2] = 0 }), disc, end),
		msg(header(func(h []byte) { h[2] = 16 }), disc, end),
		msg(header(func(h []byte) { h[2] = 17 }), disc, end),
		msg(header(func(h []byte) { h[2] = 0xff }), disc, end),
		msg(header(func(h []byte) { h[3] = 0xff }), disc, end),
		msg(header(func(h []byte) { copy(h[10:], []byte{0xff, 0xff}) }), disc, end),
		msg(header(func(h []byte) { copy(h[12:], []byte{255, 255, 255, 255}) }), disc, end),
		msg(header(func(h []byte) { copy(h[24:], []byte{10, 1, 0, 1}) }), disc, end),
		msg(header(func(h []byte) { copy(h[44:], bytes.Repeat([]byte{'a'}, 64+128)) }), disc, end),
		// Options the server or the library reads, malformed.
		msg(h, disc, o(50, 10, 77, 0), end),
		msg(h, disc, o(50, bytes.Repeat([]byte{10}, 16)...), end),
		msg(h, o(53, 3), o(54, 10, 77), o(50, 10, 77, 0, 10), end),
		msg(h, o(53, 3), o(54), end),
		msg(h, disc, o(61), end),
		msg(h, disc, o(61, long...), end),
		msg(h, disc, o(12, 'w', 0, 'b', 0xff), end),
		msg(h, disc, o(12, long...), end),
		msg(h, disc, o(12), end),
		msg(h, disc, o(81, 0xff, 0xff, 0xff, 3, 'w'), end),
		msg(h, disc, o(119, 0xc0, 0), end),
		msg(h, disc, o(119, 63, 'a'), end),
		msg(h, disc, o(119, 3, 'w', 'e', 'b', 0xc0, 0), end),
		msg(h, disc, o(121, 33, 10, 0, 0, 0, 0, 10, 77, 0, 1), end),
		msg(h, disc, o(121, 24, 10), end),
		msg(h, disc, o(55, bytes.Repeat([]byte{1}, 255)...), end),
		msg(h, disc, o(57, 0, 0), end),
		msg(h, disc, o(57), end),
		msg(h, disc, o(82, 1, 200, 'x'), end),
		msg(h, disc, o(82, long...), end),
		msg(h, disc, o(1, 255, 255, 255), end),
		msg(h, disc, o(3), end),
		msg(h, disc, o(51, 0xff), end),
		// Repeated options, concatenated into one long option (RFC
		// 3396) that the reply echoes: 15 client identifiers.
		msg(h, disc, bytes.Repeat(o(61, long...), 15), end),
		msg(h, bytes.Repeat(o(53, 1), 200), end),
		// Many options, all empty.
		msg(h, disc, bytes.Repeat(o(200), 1000), end),
		msg(h, bytes.Repeat([]byte{0}, 3000), disc, end),
	}
	for mt := range 256 { // every message type, from web
		out = append(out, msg(h, o(53, byte(mt)), o(50, 10, 77, 0, 10), end))
	}
	// The largest UDP datagrams.
	out = append(out,
		make([]byte, maxUDP4Payload),
		fill(nil, 0xff, maxUDP4Payload),
		fill(msg(h, disc), 0, maxUDP4Payload-1),
		append(fill(msg(h, disc), 0, maxUDP4Payload-1), 255),
		repeatTo(msg(h, disc), o(61, long...), maxUDP4Payload),
	)
	return out
}

// replayDUIDLL is a link-layer DUID (RFC 8415 11.4).
func replayDUIDLL(hw net.HardwareAddr) []byte {
	return append([]byte{0, 3, 0, 1}, hw...)
}

// replayDHCP6Valid are DHCPv6 messages the server handles: a SOLICIT as
// FuzzDHCPv6's seed, and every other message type a client sends, from
// web's DUID, with fixed transaction IDs.
func replayDHCP6Valid(t *testing.T, serverID dhcpv6.DUID) [][]byte {
	t.Helper()
	web := mac("02:fd:00:00:00:10")
	var out [][]byte
	ia := func(addr string) dhcpv6.Modifier {
		return func(d dhcpv6.DHCPv6) {
			o := &dhcpv6.OptIANA{IaId: [4]byte{0, 0, 0, 0x10}}
			if addr != "" {
				o.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP(addr)})
			}
			d.AddOption(o)
		}
	}
	add := func(mt dhcpv6.MessageType, cid dhcpv6.DUID, mods ...dhcpv6.Modifier) {
		m := &dhcpv6.Message{MessageType: mt, TransactionID: dhcpv6.TransactionID{0, 0x66, byte(len(out))}}
		m.AddOption(dhcpv6.OptClientID(cid))
		m.AddOption(dhcpv6.OptElapsedTime(0))
		for _, mod := range mods {
			mod(m)
		}
		out = append(out, m.ToBytes())
	}
	ll := &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: web}
	llt := &dhcpv6.DUIDLLT{HWType: iana.HWTypeEthernet, Time: 1, LinkLayerAddr: web}
	sid := dhcpv6.WithServerID(serverID)
	add(dhcpv6.MessageTypeSolicit, llt, ia(""), dhcpv6.WithRequestedOptions(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionDomainSearchList))
	add(dhcpv6.MessageTypeSolicit, ll, ia(""), dhcpv6.WithRapidCommit)
	add(dhcpv6.MessageTypeRequest, ll, ia("fd77::10"), sid)
	add(dhcpv6.MessageTypeRenew, ll, ia("fd77::10"), sid)
	add(dhcpv6.MessageTypeRebind, ll, ia("fd77::10"))
	add(dhcpv6.MessageTypeConfirm, ll, ia("fd77::10"))
	add(dhcpv6.MessageTypeConfirm, ll, ia("fd99::10"))
	add(dhcpv6.MessageTypeInformationRequest, ll)
	add(dhcpv6.MessageTypeRelease, ll, ia("fd77::10"), sid)
	add(dhcpv6.MessageTypeDecline, ll, ia("fd77::10"), sid)
	add(dhcpv6.MessageTypeAdvertise, ll, ia("fd77::10"), sid) // a server's: ignored
	// Relayed: not served (members are on the link).
	relay := slices.Concat([]byte{12, 0}, net.ParseIP("fd77::1"), net.ParseIP("fe80::fd:ff:fe00:10"), be16(be16(nil, 9), uint16(len(out[0]))), out[0])
	return append(out, relay)
}

// replayDHCP6Crafted are DHCPv6 messages malformed by hand.
func replayDHCP6Crafted(serverID dhcpv6.DUID) [][]byte {
	web := mac("02:fd:00:00:00:10")
	hdr := func(mt byte) []byte { return []byte{mt, 0xab, 0xcd, 0xef} }
	o := func(code uint16, data ...[]byte) []byte {
		d := slices.Concat(data...)
		return append(be16(be16(nil, code), uint16(len(d))), d...)
	}
	lying := func(code, length uint16, data []byte) []byte { return append(be16(be16(nil, code), length), data...) }
	duid := replayDUIDLL(web)
	cid := o(1, duid)
	sid := o(2, serverID.ToBytes())
	iaid := []byte{0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0}
	ia := o(3, iaid)
	addr := func(a string, sub ...[]byte) []byte {
		return o(5, net.ParseIP(a), be32(be32(nil, 600), 600), slices.Concat(sub...))
	}
	sol := func(opts ...[]byte) []byte { return slices.Concat(hdr(1), slices.Concat(opts...)) }
	relay := func(hops byte, inner []byte) []byte {
		return slices.Concat([]byte{12, hops}, net.ParseIP("fd77::1"), net.ParseIP("fe80::1"), o(9, inner))
	}
	nested := sol(cid, ia)
	for range 40 {
		nested = relay(0, nested)
	}

	out := [][]byte{
		{}, {1}, {1, 0, 0}, hdr(1),
		// Client identifiers: lengths past the end, empty, short DUIDs
		// of every type, an unknown type, a 20-byte MAC.
		sol(lying(1, 0xffff, duid), ia),
		sol(lying(1, 100, duid)),
		sol(o(1), ia),
		sol(o(1, []byte{0}), ia),
		sol(o(1, []byte{0, 3, 0, 1}), ia),
		sol(o(1, []byte{0, 3, 0, 1}, bytes.Repeat([]byte{2}, 20)), ia),
		sol(o(1, []byte{0, 1, 0, 1, 0, 0}), ia),
		sol(o(1, []byte{0, 2, 0, 0}), ia),
		sol(o(1, []byte{0, 4, 1, 2, 3}), ia),
		sol(o(1, []byte{0xff, 0xff, 1, 2, 3}), ia),
		sol(o(1, []byte{0, 3, 0xff, 0xff}, web), ia),
		// Identity associations: too short, addresses too short, sub-
		// options past their end, one with a status code cut short.
		sol(cid, o(3)),
		sol(cid, o(3, iaid[:11])),
		sol(cid, o(3, iaid, o(5))),
		sol(cid, o(3, iaid, o(5, make([]byte, 23)))),
		sol(cid, o(3, iaid, lying(5, 0xffff, make([]byte, 24)))),
		sol(cid, o(3, iaid, addr("fd77::10", lying(13, 100, []byte{0, 1})))),
		sol(cid, o(3, iaid, addr("fd77::10", o(13, []byte{0})))),
		sol(cid, lying(3, 0xffff, iaid)),
		sol(cid, o(4, []byte{0, 0}), o(25, []byte{0}), o(26)),
		sol(cid, bytes.Repeat(ia, 40)),
		sol(cid, bytes.Repeat(ia, 250)), // fits the server's 4096-byte read
		sol(cid, bytes.Repeat(o(3, iaid, addr("fd77::99")), 90)),
		// Server identifiers where there should be none, and wrong.
		sol(cid, sid, ia),
		slices.Concat(hdr(3), cid, o(2), ia),
		slices.Concat(hdr(3), cid, o(2, []byte{0, 3, 0, 1}, web), ia),
		slices.Concat(hdr(3), cid, lying(2, 0xffff, serverID.ToBytes())),
		// Options the library parses, malformed.
		sol(cid, ia, o(14, []byte{1, 2, 3, 4, 5})),
		sol(cid, ia, o(13, []byte{0})),
		sol(cid, ia, o(7)),
		sol(cid, ia, o(8), o(8, []byte{1, 2, 3})),
		sol(cid, ia, o(6, []byte{0})),
		sol(cid, ia, o(6, []byte{0, 23, 0})),
		sol(cid, ia, o(6, bytes.Repeat([]byte{0, 23}, 1000))),
		sol(cid, ia, o(24, []byte{0xc0, 0})),
		sol(cid, ia, o(24, []byte{63, 'a'})),
		sol(cid, ia, o(24, []byte{3, 'w', 'e', 'b', 0xc0, 0})),
		sol(cid, ia, o(23, make([]byte, 15))),
		sol(cid, ia, o(23, make([]byte, 17))),
		sol(cid, ia, o(39, []byte{0xff, 63, 'a'})),
		sol(cid, ia, o(16, []byte{0, 0, 0, 1, 0xff, 0xff})),
		sol(cid, ia, o(15, []byte{0xff, 0xff, 'a'})),
		sol(cid, ia, o(17, []byte{0, 0, 0, 1, 0, 1, 0xff, 0xff})),
		sol(cid, ia, o(21, []byte{0xc0, 0})),
		sol(cid, ia, o(22, make([]byte, 7))),
		sol(cid, ia, o(32), o(82), o(83, []byte{1})),
		sol(cid, ia, o(56, []byte{0, 1, 0, 100, 1})),
		sol(cid, ia, o(79, []byte{0})),
		sol(cid, ia, o(0), o(0xffff, []byte{1})),
		sol(cid, ia, lying(0xffff, 4, nil)),
		// Relays: the message past its end, empty, a relay reply, hop
		// count 255, 40 deep.
		slices.Concat([]byte{12, 0}, net.ParseIP("fd77::1"), net.ParseIP("fe80::1"), lying(9, 0xffff, sol(cid, ia))),
		relay(0, nil),
		relay(255, sol(cid, ia)),
		slices.Concat([]byte{13, 0}, net.ParseIP("fd77::1"), net.ParseIP("fe80::1"), o(9, sol(cid, ia))),
		relay(0, relay(0, []byte{12})),
		nested,
		slices.Concat([]byte{12, 0}, make([]byte, 16)),
	}
	for mt := range 256 { // every message type, from web, with our server identifier
		out = append(out, slices.Concat(hdr(byte(mt)), cid, sid, o(3, iaid, addr("fd77::10"))))
	}
	out = append(out,
		make([]byte, maxUDP6Payload),
		fill(nil, 0xff, maxUDP6Payload),
		fill(sol(cid, ia), 0, maxUDP6Payload),
		sol(cid, ia, o(8, make([]byte, maxUDP6Payload-4-len(cid)-len(ia)-4))),
		repeatTo(sol(cid), ia, maxUDP6Payload),
	)
	return out
}

// replayRSValid are router solicitations the server answers: FuzzRS's
// seeds and one with an option it does not know.
func replayRSValid(hw net.HardwareAddr) [][]byte {
	rs := []byte{byte(ipv6.ICMPTypeRouterSolicitation), 0, 0, 0, 0, 0, 0, 0}
	slla := append([]byte{optSourceLL, 1}, hw...)
	return [][]byte{
		slices.Concat(rs, slla),
		rs,
		slices.Concat(rs, slla, []byte{14, 1, 1, 2, 3, 4, 5, 6}),
	}
}

// replayRSCrafted are router solicitations malformed by hand.
func replayRSCrafted(hw net.HardwareAddr) [][]byte {
	rs := func(code byte, opts ...[]byte) []byte {
		return slices.Concat([]byte{byte(ipv6.ICMPTypeRouterSolicitation), code, 0, 0, 0, 0, 0, 0}, slices.Concat(opts...))
	}
	slla := append([]byte{optSourceLL, 1}, hw...)
	out := [][]byte{
		{}, {133}, {133, 0}, {133, 0, 0}, {133, 0, 0, 0}, {133, 0, 0, 0, 0}, {133, 0, 0, 0, 0, 0, 0},
		rs(1, slla), rs(0xff, slla),
		slices.Concat([]byte{133, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, slla), // reserved bits set
		rs(0, []byte{optSourceLL, 0, 2, 0, 0, 0, 0, 1}),                   // zero-length option
		rs(0, []byte{optSourceLL, 2, 2, 0, 0, 0, 0, 1}),                   // past the end
		rs(0, []byte{optSourceLL, 0xff}, slla),
		rs(0, slla, []byte{1}),
		rs(0, slla, []byte{1, 1}),
		rs(0, slla, slla, slla),
		rs(0, []byte{0, 1, 0, 0, 0, 0, 0, 0}),
		rs(0, bytes.Repeat([]byte{253, 1, 0, 0, 0, 0, 0, 0}, 150)),
		rs(0, bytes.Repeat([]byte{253, 1, 0, 0, 0, 0, 0, 0}, 150), []byte{253, 0}),
		rs(0, []byte{253, 0xff}, make([]byte, 0xff*8-2)),
		fill(rs(0, slla), 0, 1400),
		fill(rs(0, []byte{253, 0xff}), 0, 1600), // past the server's 1500-byte read
		fill(rs(0, slla), 0, 65000),
		fill(rs(0), 0xff, 65000),
	}
	return out
}
