package network

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// CaptureSnaplen is the most of a frame a capture keeps: all of any frame
// a foldup network carries (tcpdump's default).
const CaptureSnaplen = 262144

// Capture reads every frame on the interface ifname (a bridge, tap or
// veth, in the Host's namespace), both directions, through an AF_PACKET
// socket, and writes those filter passes to w, until ctx ends. A bridge
// is put in promiscuous mode for the socket's life, as tcpdump does: it
// then hands its device a copy of the frames it forwards between its
// ports, not only those for the host. It returns how many frames it
// wrote.
func (h *Host) Capture(ctx context.Context, ifname string, filter *Filter, w *PcapWriter) (int, error) {
	link, err := h.nl.LinkByName(ifname)
	if err != nil {
		return 0, fmt.Errorf("capture on %s: %w", ifname, err)
	}
	var fd int
	if err := h.Do(func() (err error) {
		// Protocol 0: no frame comes before the bind names the
		// interface (with ETH_P_ALL here, every interface's would).
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		return 0, fmt.Errorf("capture on %s: %w", ifname, err)
	}
	defer unix.Close(fd)
	ifindex := link.Attrs().Index
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		return 0, fmt.Errorf("capture on %s: %w", ifname, err)
	}
	mreq := unix.PacketMreq{Ifindex: int32(ifindex), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		return 0, fmt.Errorf("capture on %s: promiscuous mode: %w", ifname, err)
	}
	// A read gives up after a tenth of a second, so the loop sees ctx.
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return 0, err
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	buf := make([]byte, CaptureSnaplen)
	n := 0
	for ctx.Err() == nil {
		// MSG_TRUNC: the length on the wire, even of a frame cut short.
		size, _, err := unix.Recvfrom(fd, buf, unix.MSG_TRUNC)
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENETDOWN):
			// The link went down: a VM's tap, while the VM restarts, comes
			// back with its frames; a container's veth that is gone (the
			// container restarted, with a new one) does not.
			if _, lerr := h.nl.LinkByIndex(ifindex); lerr != nil {
				return n, fmt.Errorf("capture on %s: the interface is gone (a container that restarted has a new one: capture it again)", ifname)
			}
			continue
		case err != nil:
			return n, fmt.Errorf("capture on %s: %w", ifname, err)
		}
		frame := buf[:min(size, len(buf))]
		if !filter.Match(frame) {
			continue
		}
		if err := w.WriteFrame(time.Now(), frame, size); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
