// Command hostile sends, from inside a guest, the frames a hostile guest
// would: forged ARP, neighbour advertisements and router advertisements.
// It writes whole Ethernet frames to a packet socket, so that nothing in
// the guest's own kernel stands between it and foldup's guard.
// TestVMHostile builds it (static) and runs it in a VM.
//
//	hostile IFACE arp SENDER-MAC SENDER-IP   gratuitous ARP reply: SENDER-IP is at SENDER-MAC
//	hostile IFACE na TARGET                  unsolicited override NA: TARGET is at IFACE's MAC
//	hostile IFACE ra                         RA: default router, prefix 2001:db8:bad::/64
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

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: hostile IFACE arp|na|ra ARGS...")
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
	src := [16]byte{0: 0xfe, 1: 0x80, 8: mac[0] ^ 2, 9: mac[1], 10: mac[2], 11: 0xff, 12: 0xfe, 13: mac[3], 14: mac[4], 15: mac[5]}
	dst := allNodes.As16()
	// Checksum over the pseudo-header (RFC 8200 8.1) and the message.
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	add(binary.BigEndian.AppendUint32(nil, uint32(len(body))))
	add([]byte{0, 0, 0, 58})
	add(body)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(body[2:], ^uint16(sum))

	frame := ether(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, mac, 0x86dd)
	frame = append(frame, 0x60, 0, 0, 0)
	frame = binary.BigEndian.AppendUint16(frame, uint16(len(body)))
	frame = append(frame, 58, 255)
	frame = append(frame, src[:]...)
	frame = append(frame, dst[:]...)
	return append(frame, body...)
}

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
