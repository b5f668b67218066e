package dnsd

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/foldup/foldup/internal/systest"
)

// TestBigReadBuffer: as root, the buffer goes past net.core.rmem_max
// (212992 by default), which SetReadBuffer alone cannot.
func TestBigReadBuffer(t *testing.T) {
	systest.Root(t)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	bigReadBuffer(conn)
	rc, _ := conn.SyscallConn()
	var got int
	rc.Control(func(fd uintptr) { got, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
	if err != nil {
		t.Fatal(err)
	}
	if got < readBuffer { // the kernel reports twice what was set
		t.Errorf("SO_RCVBUF = %d, want at least %d", got, readBuffer)
	}
}
