//go:build !linux

package dnsd

import (
	"errors"
	"net"
)

// The server binds its DHCP and router-advertisement sockets to the
// bridge, which only Linux does.

func bindToDevice(uintptr, string) error {
	return errors.New("dnsd: binding to an interface needs Linux")
}

func bigReadBuffer(conn *net.UDPConn) { conn.SetReadBuffer(readBuffer) }

const readBuffer = 4 << 20
