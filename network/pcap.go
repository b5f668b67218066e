package network

import (
	"encoding/binary"
	"io"
	"time"
)

// PcapWriter writes frames as a pcap file (libpcap's format, nanosecond
// timestamps, Ethernet link type), which tcpdump -r, Wireshark and tshark
// read, from a file or a pipe.
type PcapWriter struct {
	w       io.Writer
	snaplen uint32
	header  bool
	buf     []byte
}

// Pcap's constants: the magic of a file with nanosecond timestamps, and
// the link type of Ethernet frames.
const (
	pcapMagicNano    = 0xa1b23c4d
	pcapLinkEthernet = 1
)

// NewPcapWriter writes to w, keeping at most snaplen bytes of each frame.
// The file header goes out with the first frame, or with Flush.
func NewPcapWriter(w io.Writer, snaplen int) *PcapWriter {
	return &PcapWriter{w: w, snaplen: uint32(snaplen)}
}

func (p *PcapWriter) writeHeader() error {
	if p.header {
		return nil
	}
	p.header = true
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], pcapMagicNano)
	binary.LittleEndian.PutUint16(h[4:], 2) // version 2.4
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], p.snaplen)
	binary.LittleEndian.PutUint32(h[20:], pcapLinkEthernet)
	_, err := p.w.Write(h[:])
	return err
}

// Flush writes the file header if no frame has: an empty capture is
// still a pcap file.
func (p *PcapWriter) Flush() error { return p.writeHeader() }

// WriteFrame writes one frame, received at t, whose length on the wire
// was length (more than len(frame) when it was cut).
func (p *PcapWriter) WriteFrame(t time.Time, frame []byte, length int) error {
	if err := p.writeHeader(); err != nil {
		return err
	}
	if uint32(len(frame)) > p.snaplen {
		frame = frame[:p.snaplen]
	}
	p.buf = p.buf[:0]
	var h [16]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(t.Unix()))
	binary.LittleEndian.PutUint32(h[4:], uint32(t.Nanosecond()))
	binary.LittleEndian.PutUint32(h[8:], uint32(len(frame)))
	binary.LittleEndian.PutUint32(h[12:], uint32(length))
	p.buf = append(append(p.buf, h[:]...), frame...)
	_, err := p.w.Write(p.buf)
	return err
}

// PcapRecord is one frame read back from a pcap file.
type PcapRecord struct {
	Time   time.Time
	Frame  []byte
	Length int
}

// ReadPcap reads a pcap file as PcapWriter writes it (or one with
// microsecond timestamps, either byte order).
func ReadPcap(r io.Reader) ([]PcapRecord, error) {
	var h [24]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	var bo binary.ByteOrder = binary.LittleEndian
	magic := bo.Uint32(h[:])
	if magic != pcapMagicNano && magic != 0xa1b2c3d4 {
		bo = binary.BigEndian
		magic = bo.Uint32(h[:])
	}
	nano := magic == pcapMagicNano
	if !nano && magic != 0xa1b2c3d4 {
		return nil, io.ErrUnexpectedEOF
	}
	var out []PcapRecord
	for {
		var rh [16]byte
		if _, err := io.ReadFull(r, rh[:]); err == io.EOF {
			return out, nil
		} else if err != nil {
			return out, err
		}
		frac := int64(bo.Uint32(rh[4:]))
		if !nano {
			frac *= 1000
		}
		frame := make([]byte, bo.Uint32(rh[8:]))
		if _, err := io.ReadFull(r, frame); err != nil {
			return out, err
		}
		out = append(out, PcapRecord{Time: time.Unix(int64(bo.Uint32(rh[0:])), frac), Frame: frame, Length: int(bo.Uint32(rh[12:]))})
	}
}
