package network

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/nstest"
	"github.com/foldup/foldup/internal/systest"
)

// BenchmarkThroughput measures TCP throughput between two members of one
// bridge with iperf3, alternating a bare bridge (no tables) and the same
// bridge under foldup's firewall carrying 500 members' ports, and reports
// both and their ratio. It runs a fixed number of rounds whatever b.N is;
// run it with -benchtime 1x (bench/network.sh does).
//
// Bridged frames cross the bridge table's prerouting chain and, with
// br_netfilter on (as Docker leaves it: bridge-nf-call-iptables=1), the
// IPv4 hooks and the inet table's forward chain too. Both settings are
// measured.
func BenchmarkThroughput(b *testing.B) {
	for _, brnf := range []string{"0", "1"} {
		b.Run("bridge-nf-call-iptables="+brnf, func(b *testing.B) { benchThroughput(b, brnf) })
	}
}

func benchThroughput(b *testing.B, brnf string) {
	systest.Command(b, "iperf3")
	const (
		members = 500
		rounds  = 6
		secs    = 3
	)
	host := nstest.New(b)
	h, err := Open(host.Handle)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	if err := h.BridgeAdd(BridgeOptions{Name: "fubbench", Addrs: []netip.Prefix{netip.MustParsePrefix("10.77.0.1/16")}}); err != nil {
		b.Fatal(err)
	}
	host.MustRun(b, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables="+brnf)
	cfg := Config{Project: "bench", Networks: []Net{{Bridge: "fubbench", Gateway4: netip.MustParseAddr("10.77.0.1"), Outbound: OutboundNAT}}}
	var ns [2]*nstest.NS
	for i := range members {
		name := fmt.Sprintf("fuvb%d", i)
		mac := net.HardwareAddr{0x02, 0, 0, 0, byte(i >> 8), byte(i)}
		addr := netip.AddrFrom4([4]byte{10, 77, byte(1 + i>>8), byte(i)})
		cfg.Ports = append(cfg.Ports, Port{Name: name, Bridge: "fubbench", MAC: mac, IPv4: []netip.Addr{addr}})
		if i >= 2 {
			continue // the rest exist only as rules' elements
		}
		ns[i] = nstest.New(b)
		if err := h.VethAdd(name, "eth0", ns[i].Handle); err != nil {
			b.Fatal(err)
		}
		if err := h.LinkAttach(name, "fubbench"); err != nil {
			b.Fatal(err)
		}
		ns[i].MustRun(b, "ip", "link", "set", "eth0", "address", mac.String())
		ns[i].MustRun(b, "ip", "addr", "add", addr.String()+"/16", "dev", "eth0")
		ns[i].MustRun(b, "ip", "link", "set", "eth0", "up")
	}
	server := exec.Command("ip", "netns", "exec", ns[1].Name, "iperf3", "-s")
	if err := server.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { server.Process.Kill(); server.Wait() }()
	time.Sleep(300 * time.Millisecond)

	run := func() float64 {
		out := ns[0].MustRun(b, "iperf3", "-c", cfg.Ports[1].IPv4[0].String(), "-t", fmt.Sprint(secs), "-J")
		var r struct {
			End struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			b.Fatalf("iperf3 output: %v\n%s", err, out)
		}
		return r.End.SumReceived.BitsPerSecond / 1e9
	}
	var bare, foldup float64
	b.ResetTimer()
	for range rounds {
		if err := h.FirewallRemove("bench"); err != nil {
			b.Fatal(err)
		}
		bare += run()
		if err := h.FirewallApply(cfg); err != nil {
			b.Fatal(err)
		}
		foldup += run()
	}
	b.StopTimer()
	if err := h.FirewallRemove("bench"); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(bare/rounds, "bare-Gbit/s")
	b.ReportMetric(foldup/rounds, "foldup-Gbit/s")
	b.ReportMetric(foldup/bare, "ratio")
}
