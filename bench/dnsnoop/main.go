// Command dnsnoop is the cheapest DNS "server" bench/dnsd.sh can measure
// dnsperf against: it sends each query straight back with the QR bit
// set, no answer records, a batch at a time (recvmmsg/sendmmsg on a
// blocking socket). Nothing could answer faster, so its rate is the most
// dnsperf can send and receive on its CPU: the ceiling for any server
// in the same run.
//
//	dnsnoop -listen 127.0.0.1:5302
package main

import (
	"flag"
	"log"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5302", "IPv4 address and port to answer on")
	flag.Parse()
	ap, err := netip.ParseAddrPort(*listen)
	if err != nil || !ap.Addr().Is4() {
		log.Fatalf("dnsnoop: -listen %q: want an IPv4 address and port", *listen)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		log.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		log.Fatalf("dnsnoop: bind %v: %v", ap, err)
	}
	const batch = 32
	var (
		hdrs  [batch]unix.Mmsghdr
		iovs  [batch]unix.Iovec
		names [batch]unix.RawSockaddrInet4
		bufs  [batch][512]byte
	)
	for {
		for i := range hdrs {
			iovs[i].Base = &bufs[i][0]
			iovs[i].SetLen(len(bufs[i]))
			hdrs[i] = unix.Mmsghdr{Hdr: unix.Msghdr{Name: (*byte)(unsafe.Pointer(&names[i])), Namelen: unix.SizeofSockaddrInet4, Iov: &iovs[i]}}
			hdrs[i].Hdr.SetIovlen(1)
		}
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), batch, unix.MSG_WAITFORONE, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			log.Fatalf("dnsnoop: recvmmsg: %v", errno)
		}
		for i := range int(n) {
			if hdrs[i].Len >= 12 {
				bufs[i][2] |= 0x80 // QR: a response
			}
			iovs[i].SetLen(int(hdrs[i].Len))
		}
		for sent := uintptr(0); sent < n; {
			w, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[sent])), n-sent, 0, 0, 0)
			if errno != 0 {
				w = 1 // skip the one the kernel refused
			}
			sent += w
		}
	}
}
