//go:build linux

package executor

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/systest"
	"github.com/foldup/foldup/internal/vmtest"
	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/vm"
)

const captureProject = `
name: cap
networks:
  lan:
    ipam: {config: [{subnet: 10.86.4.0/24}]}
services:
  db:
    image: foldup-test/busybox:1
    init: true
    command: ["sleep", "3600"]
    networks:
      lan: {ipv4_address: 10.86.4.5}
vms:
  box:
    kernel: %s
    initrd: %s
    cmdline: "console=ttyS0 quiet panic=-1"
    memory: 256m
    stop_grace_period: 1s
    networks:
      lan: {ipv4_address: 10.86.4.10}
`

// capturing runs a capture on t until stop is called, which returns the
// frames written, read back from the pcap file.
func capturing(t *testing.T, x *Executor, project, target string, filter string) (file string, stop func() []network.PcapRecord) {
	t.Helper()
	ct, err := x.CaptureOn(t.Context(), project, target, "")
	if err != nil {
		t.Fatal(err)
	}
	f, err := network.ParseFilter(filter)
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(t.TempDir(), target+".pcap")
	out, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := x.Capture(ctx, ct, f, network.NewPcapWriter(out, network.CaptureSnaplen))
		done <- result{n, err}
	}()
	t.Cleanup(cancel)
	time.Sleep(200 * time.Millisecond) // the socket is bound
	return file, func() []network.PcapRecord {
		cancel()
		r := <-done
		out.Close()
		if r.err != nil {
			t.Fatalf("capture on %s: %v", target, r.err)
		}
		in, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		recs, err := network.ReadPcap(in)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != r.n {
			t.Errorf("capture on %s said %d frames, the file has %d", target, r.n, len(recs))
		}
		return recs
	}
}

// udpPayload is a frame's IPv4 UDP ports and payload, if it is one.
func udpPayload(frame []byte) (src, dst netip4, sport, dport uint16, payload []byte, ok bool) {
	if len(frame) < 42 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 || frame[23] != 17 {
		return
	}
	ihl := int(frame[14]&0xf) * 4
	copy(src[:], frame[26:30])
	copy(dst[:], frame[30:34])
	l4 := frame[14+ihl:]
	return src, dst, binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:]), l4[8:], true
}

type netip4 [4]byte

func (a netip4) String() string { return net.IP(a[:]).String() }

// TestCapture: a capture of the network's bridge holds a VM's DHCP
// exchange (discover, offer, request, ack for its MAC, from foldup's
// server) as it boots, and a container's DNS query for the VM with the
// answer; a capture of the VM's port holds only frames to or from the VM
// (or to everyone), not the container's DNS query to the server. tcpdump
// reads the files too.
func TestCapture(t *testing.T) {
	kernel, initrd := vmtest.Images(t)
	e := newTestEnv(t)
	p, res := e.upInProcess(t, "cap", fmt.Sprintf(captureProject, kernel, initrd))
	var box *planner.Member
	for _, m := range res.Plan.Members {
		if m.Name == "box" {
			box = m
		}
	}
	boxMAC, _ := net.ParseMAC(box.NICs[0].MAC)
	x := New(e.o)
	defer x.Close()
	f := vm.For(e.o.withDefaults().dirs(p.Name), "box")
	leases := func() int {
		b, _ := os.ReadFile(f.ConsoleLog())
		return strings.Count(string(b), "FOLDUP-LEASE")
	}
	waitLeases := func(n int) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for leases() < n {
			if time.Now().After(deadline) {
				t.Fatalf("box took no lease %d in 90 s", n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitLeases(1)

	bridgeFile, stopBridge := capturing(t, x, p.Name, "lan", "")
	// The VM boots again and asks for its lease while the bridge is
	// captured.
	if err := x.Restart(t.Context(), p.Name, []string{"box"}, nil); err != nil {
		t.Fatal(err)
	}
	waitLeases(2)
	_, stopBox := capturing(t, x, p.Name, "box", "")
	if out, code := e.exec(t, "cap-db-1", "nslookup", "box"); code != 0 || !strings.Contains(out, "10.86.4.10") {
		t.Errorf("nslookup box in db: %q (exit %d)", out, code)
	}
	if out, code := e.exec(t, "cap-db-1", "ping", "-c", "2", "-W", "2", "box"); code != 0 {
		t.Errorf("ping box from db: %q (exit %d)", out, code)
	}
	boxFrames := stopBox()
	frames := stopBridge()

	// DHCP: the four messages of box's exchange, by their type (option 53).
	seen := map[byte]bool{}
	var dnsQuery, dnsAnswer bool
	for _, r := range frames {
		src, dst, sport, dport, payload, ok := udpPayload(r.Frame)
		if !ok {
			continue
		}
		if (sport == 68 && dport == 67 || sport == 67 && dport == 68) && len(payload) > 240 && bytes.Equal(payload[28:34], boxMAC) {
			for opts := payload[240:]; len(opts) >= 2 && opts[0] != 255; opts = opts[2+int(opts[1]):] {
				if opts[0] == 53 && len(opts) >= 3 {
					seen[opts[2]] = true
				}
				if len(opts) < 2+int(opts[1]) {
					break
				}
			}
		}
		if dport == 53 && src.String() == "10.86.4.5" && bytes.Contains(payload, []byte("\x03box")) {
			dnsQuery = true
		}
		if sport == 53 && dst.String() == "10.86.4.5" && bytes.Contains(payload, []byte("\x03box")) && bytes.Contains(payload, []byte{10, 86, 4, 10}) {
			dnsAnswer = true
		}
	}
	// Frames the bridge forwards between two members, not to the host
	// (db's pings to box), are there too: the capture made the bridge
	// promiscuous.
	forwarded := 0
	for _, r := range frames {
		if f := r.Frame; len(f) > 34 && binary.BigEndian.Uint16(f[12:]) == 0x0800 && f[23] == 1 &&
			net.IP(f[26:30]).String() == "10.86.4.5" && net.IP(f[30:34]).String() == "10.86.4.10" {
			forwarded++
		}
	}
	if forwarded < 2 {
		t.Errorf("%d of db's pings to box in the bridge's capture, want 2", forwarded)
	}
	for typ, name := range map[byte]string{1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 5: "ACK"} {
		if !seen[typ] {
			t.Errorf("no DHCP %s for box's MAC in the bridge's %d frames", name, len(frames))
		}
	}
	if !dnsQuery || !dnsAnswer {
		t.Errorf("db's DNS query for box (%v) and its answer with 10.86.4.10 (%v) not in the bridge's %d frames", dnsQuery, dnsAnswer, len(frames))
	}

	// The VM's port: its frames only.
	pings := 0
	for _, r := range boxFrames {
		dst, src := net.HardwareAddr(r.Frame[0:6]), net.HardwareAddr(r.Frame[6:12])
		if !bytes.Equal(src, boxMAC) && !bytes.Equal(dst, boxMAC) && dst[0]&1 == 0 {
			t.Errorf("a frame on box's port neither from nor to box: %s > %s", src, dst)
		}
		if _, _, _, dport, _, ok := udpPayload(r.Frame); ok && dport == 53 {
			t.Errorf("db's DNS query on box's port")
		}
		if len(r.Frame) > 34 && binary.BigEndian.Uint16(r.Frame[12:]) == 0x0800 && r.Frame[23] == 1 {
			pings++
		}
	}
	if pings < 4 {
		t.Errorf("%d ICMP frames on box's port, want the 2 pings and their replies", pings)
	}

	// tcpdump reads the file as foldup wrote it.
	systest.Command(t, "tcpdump")
	out, err := exec.Command("tcpdump", "-n", "-r", bridgeFile, "udp port 67 or udp port 68").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "BOOTP/DHCP, Request from "+boxMAC.String()) || !strings.Contains(string(out), "BOOTP/DHCP, Reply") {
		t.Errorf("tcpdump -r of the bridge's capture: %v\n%s", err, out)
	}
}
