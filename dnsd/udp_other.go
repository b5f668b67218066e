//go:build !linux

package dnsd

import (
	"net"
	"net/netip"
)

// udpSocket is a DNS server's UDP socket. Elsewhere than on Linux it is a
// net.UDPConn read and written a datagram at a time.
type udpSocket struct {
	conn *net.UDPConn
}

// listenUDP binds a UDP socket to ap (port 0: any free port).
func listenUDP(ap netip.AddrPort) (*udpSocket, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, err
	}
	bigReadBuffer(conn)
	return &udpSocket{conn: conn}, nil
}

// LocalAddr is the address the socket is bound to.
func (u *udpSocket) LocalAddr() netip.AddrPort { return u.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// readBatch reads one datagram into ps[0].
func (u *udpSocket) readBatch(ps []packet) (int, error) {
	n, from, err := u.conn.ReadFromUDPAddrPort(ps[0].buf)
	if err != nil {
		return 0, err
	}
	ps[0].n, ps[0].peer = n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	return 1, nil
}

// writeBatch sends ps[0] (buf[:n] to peer).
func (u *udpSocket) writeBatch(ps []packet) (int, error) {
	if len(ps) == 0 {
		return 0, nil
	}
	if _, err := u.conn.WriteToUDPAddrPort(ps[0].buf[:ps[0].n], ps[0].peer); err != nil {
		return 0, err
	}
	return 1, nil
}

// writeTo sends one datagram; any goroutine may call it.
func (u *udpSocket) writeTo(b []byte, to netip.AddrPort, _ uint32) error {
	_, err := u.conn.WriteToUDPAddrPort(b, to)
	return err
}

// Close ends the socket.
func (u *udpSocket) Close() error { return u.conn.Close() }
