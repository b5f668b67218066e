package dnsd

import (
	"net"

	"golang.org/x/sys/unix"
)

func bindToDevice(fd uintptr, ifname string) error { return unix.BindToDevice(int(fd), ifname) }

// readBuffer is the receive buffer of the server's UDP sockets: the
// default (~208 KiB) holds ~15 ms of a burst of DHCP clients, and a burst
// of a few thousand members starting at once should wait, not be lost.
const readBuffer = 4 << 20

// bigReadBuffer raises conn's receive buffer to readBuffer (see
// raiseReadBuffer).
func bigReadBuffer(conn *net.UDPConn) {
	if rc, err := conn.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { raiseReadBuffer(int(fd)) })
	}
}

// raiseReadBuffer raises a socket's receive buffer to readBuffer, beyond
// net.core.rmem_max when the process may (CAP_NET_ADMIN), else as far as
// the limit allows.
func raiseReadBuffer(fd int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, readBuffer) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, readBuffer)
	}
}
