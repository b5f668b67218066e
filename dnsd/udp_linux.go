package dnsd

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpSocket is a DNS server's UDP socket: a blocking descriptor, outside
// Go's netpoller, that the serving loop reads with recvmmsg and writes
// with sendmmsg.
//
// Why not a net.UDPConn: Go registers each of its sockets with epoll for
// good, so every datagram that arrives runs epoll's callback, and, when
// the loop is parked, wakes its thread, all on the CPU that sent the
// datagram. A thread blocked in recvmmsg is on the socket's wait queue
// only while the queue is empty, as a poll()-based server such as
// dnsmasq is; a busy server costs its queriers nothing extra. On
// loopback, with dnsperf as the querier, that was worth ~10 % of dnsperf's
// rate (bench/RESULTS.md).
type udpSocket struct {
	f      *os.File // owns the descriptor; closes it once no call uses it
	rc     syscall.RawConn
	local  netip.AddrPort
	closed atomic.Bool

	// Scratch for readBatch and writeBatch, which only the serving loop
	// calls, one at a time.
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for either family
}

// listenUDP binds a UDP socket to ap (port 0: any free port).
func listenUDP(ap netip.AddrPort) (*udpSocket, error) {
	family := unix.AF_INET
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		family = unix.AF_INET6
	}
	sa, err := sockaddr(ap)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	fail := func(op string, err error) (*udpSocket, error) {
		unix.Close(fd)
		return nil, &net.OpError{Op: "listen", Net: "udp", Addr: net.UDPAddrFromAddrPort(ap), Err: os.NewSyscallError(op, err)}
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail("setsockopt", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	raiseReadBuffer(fd)
	u := &udpSocket{f: os.NewFile(uintptr(fd), "udp "+ap.String()), local: ap}
	switch b := bound.(type) {
	case *unix.SockaddrInet4:
		u.local = netip.AddrPortFrom(ap.Addr(), uint16(b.Port))
	case *unix.SockaddrInet6:
		u.local = netip.AddrPortFrom(ap.Addr(), uint16(b.Port))
	}
	if u.rc, err = u.f.SyscallConn(); err != nil {
		u.f.Close()
		return nil, err
	}
	return u, nil
}

// sockaddr is ap as the kernel takes it; an IPv6 zone names an interface.
func sockaddr(ap netip.AddrPort) (unix.Sockaddr, error) {
	a := ap.Addr()
	if a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}, nil
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	if z := a.Zone(); z != "" {
		if n, err := strconv.ParseUint(z, 10, 32); err == nil {
			sa.ZoneId = uint32(n)
		} else if ifi, err := net.InterfaceByName(z); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		} else {
			return nil, fmt.Errorf("udp %s: zone: %w", ap, err)
		}
	}
	return sa, nil
}

// LocalAddr is the address the socket is bound to.
func (u *udpSocket) LocalAddr() netip.AddrPort { return u.local }

// scratch sizes the scratch arrays for n datagrams.
func (u *udpSocket) scratch(n int) {
	if len(u.hdrs) < n {
		u.hdrs = make([]unix.Mmsghdr, n)
		u.iovs = make([]unix.Iovec, n)
		u.names = make([]unix.RawSockaddrInet6, n)
	}
}

// readBatch reads up to len(ps) datagrams into ps' buffers: it blocks
// until one arrives, then takes those already queued without waiting.
// It returns net.ErrClosed once Close has been called.
func (u *udpSocket) readBatch(ps []packet) (int, error) {
	u.scratch(len(ps))
	for i := range ps {
		u.header(i, ps[i].buf, len(ps[i].buf), unix.SizeofSockaddrInet6)
	}
	n, err := u.mmsg(unix.SYS_RECVMMSG, len(ps), unix.MSG_WAITFORONE)
	if err != nil {
		return 0, err
	}
	for i := range n {
		ps[i].n = int(u.hdrs[i].Len)
		ps[i].peer, ps[i].scope = peer(&u.names[i])
	}
	return n, nil
}

// header points message header i at size bytes of buf and at sockaddr
// slot i, of which namelen bytes count.
func (u *udpSocket) header(i int, buf []byte, size int, namelen uint32) {
	u.iovs[i].Base = &buf[0]
	u.iovs[i].SetLen(size)
	u.hdrs[i] = unix.Mmsghdr{Hdr: unix.Msghdr{
		Name:    (*byte)(unsafe.Pointer(&u.names[i])),
		Namelen: namelen,
		Iov:     &u.iovs[i],
	}}
	u.hdrs[i].Hdr.SetIovlen(1)
}

// mmsg makes one recvmmsg or sendmmsg (trap) over the first n headers,
// again if a signal interrupts it, and returns how many messages it
// took. After Close it returns net.ErrClosed.
func (u *udpSocket) mmsg(trap uintptr, n, flags int) (int, error) {
	var r uintptr
	var errno unix.Errno
	err := u.rc.Control(func(fd uintptr) {
		for {
			r, _, errno = unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&u.hdrs[0])), uintptr(n), uintptr(flags), 0, 0)
			if errno != unix.EINTR {
				return
			}
		}
	})
	switch {
	case err != nil || u.closed.Load():
		return 0, net.ErrClosed
	case errno != 0 && trap == unix.SYS_RECVMMSG:
		return 0, os.NewSyscallError("recvmmsg", errno)
	case errno != 0:
		return 0, os.NewSyscallError("sendmmsg", errno)
	}
	return int(r), nil
}

// peer reads a sockaddr the kernel wrote: the address (IPv4 as such,
// not mapped) and port, and for IPv6 the interface index of its scope.
func peer(sa *unix.RawSockaddrInet6) (netip.AddrPort, uint32) {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), ntohs(sa4.Port)), 0
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), ntohs(sa.Port)), sa.Scope_id
	}
	return netip.AddrPort{}, 0
}

// putPeer writes p's peer as a sockaddr for the kernel and returns its
// length.
func putPeer(sa *unix.RawSockaddrInet6, p *packet) uint32 {
	a := p.peer.Addr()
	if a.Is4() {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: htons(p.peer.Port()), Addr: a.As4()}
		return unix.SizeofSockaddrInet4
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: htons(p.peer.Port()), Addr: a.As16(), Scope_id: p.scope}
	return unix.SizeofSockaddrInet6
}

// ntohs reads a port as the kernel stores it, in network byte order.
func ntohs(port uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&port))
	return uint16(b[0])<<8 | uint16(b[1])
}

// htons is a port in network byte order, as the kernel reads it.
func htons(port uint16) uint16 {
	var n uint16
	b := (*[2]byte)(unsafe.Pointer(&n))
	b[0], b[1] = byte(port>>8), byte(port)
	return n
}

// writeBatch sends each of ps (buf[:n] to peer) and returns how many the
// kernel took; an error means the first of ps was not sent.
func (u *udpSocket) writeBatch(ps []packet) (int, error) {
	if len(ps) == 0 {
		return 0, nil
	}
	u.scratch(len(ps))
	for i := range ps {
		u.header(i, ps[i].buf, ps[i].n, putPeer(&u.names[i], &ps[i]))
	}
	return u.mmsg(unix.SYS_SENDMMSG, len(ps), 0)
}

// writeTo sends one datagram; any goroutine may call it.
func (u *udpSocket) writeTo(b []byte, to netip.AddrPort, scope uint32) error {
	sa, err := sockaddr(to)
	if err != nil {
		return err
	}
	if sa6, ok := sa.(*unix.SockaddrInet6); ok && scope != 0 {
		sa6.ZoneId = scope
	}
	var serr error
	if err := u.rc.Control(func(fd uintptr) { serr = unix.Sendto(int(fd), b, 0, sa) }); err != nil {
		return net.ErrClosed
	}
	return os.NewSyscallError("sendto", serr)
}

// Close ends the socket: a readBatch blocked in the kernel returns
// net.ErrClosed, and the descriptor is closed once no call uses it.
func (u *udpSocket) Close() error {
	if u.closed.Swap(true) {
		return net.ErrClosed
	}
	// shutdown wakes a thread blocked in recvmmsg, which close would not.
	// On a socket with no peer it reports ENOTCONN, but it has woken it.
	u.rc.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	return u.f.Close()
}
