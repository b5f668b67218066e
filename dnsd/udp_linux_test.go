package dnsd

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestUDPSocketBatch: datagrams from two clients are read in batches
// with their senders' addresses, and answers written in one batch reach
// each sender; over IPv4 and IPv6.
func TestUDPSocketBatch(t *testing.T) {
	for _, at := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(at, func(t *testing.T) {
			u, err := listenUDP(netip.MustParseAddrPort(at))
			if err != nil {
				t.Skipf("no %s here: %v", at, err)
			}
			defer u.Close()
			if u.LocalAddr().Port() == 0 {
				t.Fatalf("bound to %v: no port", u.LocalAddr())
			}
			var clients []*net.UDPConn
			for range 2 {
				c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(u.LocalAddr()))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				clients = append(clients, c)
			}
			const each = 5
			for i := range each {
				for j, c := range clients {
					if _, err := c.Write([]byte{byte(j), byte(i)}); err != nil {
						t.Fatal(err)
					}
				}
			}
			ps := make([]packet, 4) // fewer than were sent: two reads at least
			for i := range ps {
				ps[i].buf = make([]byte, 64)
			}
			got := map[netip.AddrPort]int{}
			var answers []packet
			for reads := 0; len(answers) < 2*each; reads++ {
				if reads > 2*each {
					t.Fatalf("%d reads, %d datagrams", reads, len(answers))
				}
				n, err := u.readBatch(ps)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range ps[:n] {
					if p.n != 2 {
						t.Fatalf("datagram of %d bytes, want 2", p.n)
					}
					got[p.peer]++
					answers = append(answers, packet{buf: []byte{p.buf[0], p.buf[1], 'A'}, n: 3, peer: p.peer, scope: p.scope})
				}
			}
			for _, c := range clients {
				from := c.LocalAddr().(*net.UDPAddr).AddrPort()
				if got[from] != each {
					t.Errorf("from %v: %d datagrams, want %d (all: %v)", from, got[from], each, got)
				}
			}
			for sent := 0; sent < len(answers); {
				n, err := u.writeBatch(answers[sent:])
				if err != nil {
					t.Fatal(err)
				}
				sent += n
			}
			for j, c := range clients {
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				b := make([]byte, 16)
				for i := range each {
					n, err := c.Read(b)
					if err != nil {
						t.Fatalf("client %d, answer %d: %v", j, i, err)
					}
					if n != 3 || b[0] != byte(j) || b[2] != 'A' {
						t.Errorf("client %d got % x, want its own answer", j, b[:n])
					}
				}
			}
		})
	}
}

// TestUDPSocketClose: Close wakes a read blocked in the kernel, and
// every later call says the socket is closed.
func TestUDPSocketClose(t *testing.T) {
	u, err := listenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		ps := []packet{{buf: make([]byte, 64)}}
		_, err := u.readBatch(ps)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let it block
	if err := u.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked read returned %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read blocked in recvmmsg did not return after Close")
	}
	if err := u.writeTo([]byte("x"), netip.MustParseAddrPort("127.0.0.1:9"), 0); !errors.Is(err, net.ErrClosed) {
		t.Errorf("writeTo after Close: %v, want net.ErrClosed", err)
	}
	if err := u.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
}

// TestUDPSocketWriteError: an answer the kernel refuses is reported as
// the batch's first, so the loop can skip it and send the rest.
func TestUDPSocketWriteError(t *testing.T) {
	u, err := listenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	good := c.LocalAddr().(*net.UDPAddr).AddrPort()
	bad := netip.MustParseAddrPort("127.0.0.1:0") // port 0: EINVAL
	ps := []packet{
		{buf: []byte("one"), n: 3, peer: bad},
		{buf: []byte("two"), n: 3, peer: good},
	}
	if n, err := u.writeBatch(ps); err == nil {
		t.Fatalf("writeBatch to port 0 sent %d, no error", n)
	}
	if n, err := u.writeBatch(ps[1:]); n != 1 || err != nil {
		t.Fatalf("writeBatch of the rest: %d, %v", n, err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 8)
	if n, err := c.Read(b); err != nil || string(b[:n]) != "two" {
		t.Errorf("received %q, %v; want \"two\"", b[:n], err)
	}
}
