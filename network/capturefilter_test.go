package network

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// udp4 is an Ethernet frame of an IPv4 UDP datagram.
func udp4(srcMAC, dstMAC string, src, dst string, sport, dport uint16) []byte {
	s, _ := net.ParseMAC(srcMAC)
	d, _ := net.ParseMAC(dstMAC)
	b := append(append([]byte{}, d...), s...)
	b = append(b, 0x08, 0x00)
	ip := make([]byte, 20)
	ip[0], ip[9] = 0x45, 17
	copy(ip[12:], netip.MustParseAddr(src).AsSlice())
	copy(ip[16:], netip.MustParseAddr(dst).AsSlice())
	b = append(b, ip...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sport), dport)
}

func arp(srcMAC string, sender, target string) []byte {
	s, _ := net.ParseMAC(srcMAC)
	b := append(bytes.Repeat([]byte{0xff}, 6), s...)
	b = append(b, 0x08, 0x06)
	body := make([]byte, 28)
	copy(body[0:], []byte{0, 1, 8, 0, 6, 4, 0, 1})
	copy(body[8:], s)
	copy(body[14:], netip.MustParseAddr(sender).AsSlice())
	copy(body[24:], netip.MustParseAddr(target).AsSlice())
	return append(b, body...)
}

func TestFilter(t *testing.T) {
	dhcp := udp4("52:54:00:00:00:01", "ff:ff:ff:ff:ff:ff", "0.0.0.0", "255.255.255.255", 68, 67)
	dns := udp4("52:54:00:00:00:02", "52:54:00:00:00:03", "10.0.0.5", "10.0.0.1", 40000, 53)
	who := arp("52:54:00:00:00:02", "10.0.0.5", "10.0.0.9")
	for _, c := range []struct {
		expr      string
		dhcp, dns bool
		arp       bool
	}{
		{"", true, true, true},
		{"udp", true, true, false},
		{"arp", false, false, true},
		{"udp port 67 or udp port 68", true, false, false},
		{"port 53", false, true, false},
		{"tcp port 53", false, false, false},
		{"dst port 53", false, true, false},
		{"src port 53", false, false, false},
		{"host 10.0.0.5", false, true, true},
		{"src host 10.0.0.1", false, false, false},
		{"dst host 10.0.0.9", false, false, true},
		{"net 10.0.0.0/24 and not arp", false, true, false},
		{"ether src host 52:54:00:00:00:01", true, false, false},
		{"ether dst host ff:ff:ff:ff:ff:ff", true, false, true},
		{"!(udp && port 53) && ip", true, false, false},
		{"ip6 or icmp", false, false, false},
		{"not vlan", true, true, true},
		// tcpdump's precedence: (arp or ip) and udp port 53.
		{"arp or ip and udp port 53", false, true, false},
		{"arp or udp and ip", true, true, false}, // and first would keep the arp frame
	} {
		f, err := ParseFilter(c.expr)
		if err != nil {
			t.Errorf("%q: %v", c.expr, err)
			continue
		}
		for _, k := range []struct {
			name  string
			frame []byte
			want  bool
		}{{"dhcp", dhcp, c.dhcp}, {"dns", dns, c.dns}, {"arp", who, c.arp}} {
			if got := f.Match(k.frame); got != k.want {
				t.Errorf("%q on the %s frame: %v, want %v", c.expr, k.name, got, k.want)
			}
		}
	}
	for _, bad := range []string{"udp port", "port http", "host 10.0.0", "ether host nope", "foo", "(udp", "udp and", "ether port 5"} {
		if _, err := ParseFilter(bad); err == nil || !strings.Contains(err.Error(), "word ") {
			t.Errorf("ParseFilter(%q) = %v, want an error naming the word", bad, err)
		}
	}
}

func TestPcapRoundTrip(t *testing.T) {
	var b bytes.Buffer
	w := NewPcapWriter(&b, 64)
	t0 := time.Unix(1_800_000_000, 123456789)
	long := bytes.Repeat([]byte{7}, 100)
	if err := w.WriteFrame(t0, []byte{1, 2, 3}, 3); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(t0.Add(time.Second), long, 100); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadPcap(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || !recs[0].Time.Equal(t0) || !bytes.Equal(recs[0].Frame, []byte{1, 2, 3}) ||
		len(recs[1].Frame) != 64 || recs[1].Length != 100 {
		t.Errorf("read back %+v", recs)
	}
	var empty bytes.Buffer
	NewPcapWriter(&empty, 64).Flush()
	if recs, err := ReadPcap(&empty); err != nil || len(recs) != 0 {
		t.Errorf("an empty capture: %v, %v", recs, err)
	}
}
