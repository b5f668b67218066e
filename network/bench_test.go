package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
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
// measured, each with iperf3's two ends where the scheduler puts them
// (cpus=any) and with both on CPU 0 (cpus=one). With one CPU doing all
// the work, throughput follows CPU time, and the ratio is what the rules
// cost in CPU per byte; with two, it also follows how the CPUs hand
// frames to each other, which reorders segments (TCP's retransmissions)
// and is sensitive to small changes in any frame's path.
//
// Beside throughput it reports the median retransmissions of a run and
// cpu-ratio, the median of the rounds' ratios of bytes moved per busy
// CPU-second (all CPUs, from /proc/stat) to bare's.
func BenchmarkThroughput(b *testing.B) {
	for _, cpus := range []string{"any", "one"} {
		for _, brnf := range []string{"0", "1"} {
			b.Run("cpus="+cpus+"/bridge-nf-call-iptables="+brnf, func(b *testing.B) { benchThroughput(b, cpus == "one", brnf) })
		}
	}
}

func benchThroughput(b *testing.B, oneCPU bool, brnf string) {
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
	var pin []string
	if oneCPU {
		pin = []string{"-A", "0"}
	}
	server := exec.Command("ip", "netns", "exec", ns[1].Name, "iperf3", "-s")
	server.Args = append(server.Args, pin...)
	if err := server.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { server.Process.Kill(); server.Wait() }()
	time.Sleep(300 * time.Millisecond)

	// run returns one iperf3 run's throughput, its retransmissions and
	// the bytes it moved per busy CPU-second.
	run := func() (gbits, retrans, perCPU float64) {
		busy0 := cpuBusy(b)
		out := ns[0].MustRun(b, append([]string{"iperf3", "-c", cfg.Ports[1].IPv4[0].String(), "-t", fmt.Sprint(secs), "-J"}, pin...)...)
		busy := cpuBusy(b) - busy0
		var r struct {
			End struct {
				SumSent struct {
					Retransmits float64 `json:"retransmits"`
				} `json:"sum_sent"`
				SumReceived struct {
					Bytes         float64 `json:"bytes"`
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			b.Fatalf("iperf3 output: %v\n%s", err, out)
		}
		return r.End.SumReceived.BitsPerSecond / 1e9, r.End.SumSent.Retransmits, r.End.SumReceived.Bytes / busy.Seconds()
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
	// [setting][round]
	gbits, retrans, perCPU := make([][]float64, len(settings)), make([][]float64, len(settings)), make([][]float64, len(settings))
	b.ResetTimer()
	for r := range rounds {
		for k := range settings {
			i := (k + r) % len(settings)
			reset()
			if err := settings[i].set(); err != nil {
				b.Fatal(err)
			}
			g, rt, pc := run()
			gbits[i], retrans[i], perCPU[i] = append(gbits[i], g), append(retrans[i], rt), append(perCPU[i], pc)
		}
	}
	b.StopTimer()
	reset()
	ratio := func(xs [][]float64, i int) float64 {
		var rs []float64
		for r := range rounds {
			rs = append(rs, xs[i][r]/xs[0][r])
		}
		return median(rs)
	}
	b.ReportMetric(median(gbits[0]), "bare-Gbit/s")
	b.ReportMetric(median(gbits[2]), "foldup-Gbit/s")
	b.ReportMetric(median(retrans[0]), "bare-retrans")
	b.ReportMetric(median(retrans[2]), "foldup-retrans")
	b.ReportMetric(ratio(perCPU, 2), "cpu-ratio")
	b.ReportMetric(ratio(gbits, 1), "hook-ratio")
	b.ReportMetric(ratio(gbits, 2), "ratio")
}

// cpuBusy returns the time all CPUs together have spent since boot other
// than idle, waiting for I/O or stolen by the hypervisor, from /proc/stat,
// in its ticks of 10 ms (under 1 % of a 2 s run's busy time here).
func cpuBusy(b *testing.B) time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 8 || f[0] != "cpu" {
		b.Fatalf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 7 { // idle, iowait, steal; guest time is already in user
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("/proc/stat: %v", err)
		}
		busy += n
	}
	const userHZ = 100 // USER_HZ, the unit of /proc/stat on Linux
	return time.Duration(busy) * time.Second / userHZ
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
