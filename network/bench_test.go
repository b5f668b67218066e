package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/foldup/foldup/internal/nstest"
	"github.com/foldup/foldup/internal/systest"
)

// BenchmarkThroughput measures TCP throughput between two members of one
// bridge with iperf3 under three settings, in the same run:
//
//   - bare: a bridge with no tables at all;
//   - hook: a bridge table whose only content is an empty prerouting base
//     chain, the least any per-frame filter on the bridge costs;
//   - foldup: foldup's firewall carrying 500 members' ports.
//
// On this kind of shared virtual machine one iperf3 run differs from the
// next by up to ±10 %, more than the figure looked for, so the settings
// are compared in pairs: each round runs all three back to back, in an
// order that rotates from round to round, and the ratios reported are the
// medians of the rounds' own ratios to bare. It runs a fixed number of
// rounds whatever b.N is; run it with -benchtime 1x (bench/network.sh
// does).
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
		rounds  = 12
		secs    = 2
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
	hook := &nftables.Table{Family: nftables.TableFamilyBridge, Name: "bench-hook"}
	settings := []struct {
		name string
		set  func() error
	}{
		{"bare", func() error { return nil }},
		{"hook", func() error {
			c, err := nftables.New(nftables.WithNetNSFd(int(host.Handle)))
			if err != nil {
				return err
			}
			c.AddTable(hook)
			c.AddChain(&nftables.Chain{Name: "prerouting", Table: hook, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityFilter})
			return c.Flush()
		}},
		{"foldup", func() error { return h.FirewallApply(cfg) }},
	}
	reset := func() {
		if err := h.FirewallRemove("bench"); err != nil {
			b.Fatal(err)
		}
		c, err := nftables.New(nftables.WithNetNSFd(int(host.Handle)))
		if err != nil {
			b.Fatal(err)
		}
		c.DelTable(hook)
		if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			b.Fatal(err)
		}
	}
	gbits := make([][]float64, len(settings)) // [setting][round]
	b.ResetTimer()
	for r := range rounds {
		for k := range settings {
			i := (k + r) % len(settings)
			reset()
			if err := settings[i].set(); err != nil {
				b.Fatal(err)
			}
			gbits[i] = append(gbits[i], run())
		}
	}
	b.StopTimer()
	reset()
	ratio := func(i int) float64 {
		var rs []float64
		for r := range rounds {
			rs = append(rs, gbits[i][r]/gbits[0][r])
		}
		return median(rs)
	}
	b.ReportMetric(median(gbits[0]), "bare-Gbit/s")
	b.ReportMetric(median(gbits[2]), "foldup-Gbit/s")
	b.ReportMetric(ratio(1), "hook-ratio")
	b.ReportMetric(ratio(2), "ratio")
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
