//go:build linux

package dnsd

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/nstest"
	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/spec"
)

// lan is a network for real clients: the server's namespace holds bridge
// br0 (10.77.0.1/24, fd77::1/64), and each member is a namespace of its
// own whose eth0 is a veth on the bridge.
type lan struct {
	t    *testing.T
	srv  *nstest.NS
	host *network.Host
	n    int
}

func newLAN(t *testing.T) *lan {
	t.Helper()
	srv := nstest.New(t)
	h, err := network.Open(srv.Handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	err = h.BridgeAdd(network.BridgeOptions{Name: "br0", Addrs: []netip.Prefix{
		netip.MustParsePrefix("10.77.0.1/24"), netip.MustParsePrefix("fd77::1/64"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return &lan{t: t, srv: srv, host: h}
}

// member makes a namespace whose eth0, with the given MAC, is on the
// bridge, up and without addresses.
func (l *lan) member(mac string) *nstest.NS {
	l.t.Helper()
	m := nstest.New(l.t)
	l.n++
	port := fmt.Sprintf("vm%d", l.n)
	if err := l.host.VethAdd(port, "eth0", m.Handle); err != nil {
		l.t.Fatal(err)
	}
	if err := l.host.LinkAttach(port, "br0"); err != nil {
		l.t.Fatal(err)
	}
	// No duplicate address detection: DHCPv6 clients wait for their
	// link-local address, and a test has no duplicates to detect.
	m.MustRun(l.t, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
	m.MustRun(l.t, "ip", "link", "set", "eth0", "address", mac, "up")
	return m
}

// start runs a server for cfg in the server's namespace until the test
// ends.
func (l *lan) start(cfg Config, opts Options) *Server {
	l.t.Helper()
	opts.Enter = l.host.Do
	s, err := Start(cfg, opts)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { s.Close() })
	return s
}

// lanConfig is a project on the lan: web and db have static leases;
// pool, when valid, serves everyone else.
func lanConfig(pool Range) Config {
	return Config{
		Domain: "shop.foldup.internal",
		Members: []Member{
			{Name: "web", Hostname: "webhost", Addrs: addrs("10.77.0.10"),
				NICs:    []NIC{{Network: "lan", MAC: mac("02:fd:00:00:00:10"), IPv4: netip.MustParseAddr("10.77.0.10")}},
				Records: []spec.Record{{Name: "motd", TXT: []string{"web's own"}}}},
			{Name: "db", Addrs: addrs("10.77.0.11"),
				NICs: []NIC{{Network: "lan", MAC: mac("02:fd:00:00:00:11"), IPv4: netip.MustParseAddr("10.77.0.11")}}},
		},
		Subnets: []netip.Prefix{netip.MustParsePrefix("10.77.0.0/24")},
		Networks: []Network{{
			Name: "lan", Interface: "br0",
			Subnet4: netip.MustParsePrefix("10.77.0.0/24"), Gateway4: netip.MustParseAddr("10.77.0.1"),
			Router: true, DHCP4: true, MTU: 1400, Lease: 2 * time.Minute, Pool4: pool,
			Routes: []Route{{Dst: netip.MustParsePrefix("10.99.0.0/16"), Gateway: netip.MustParseAddr("10.77.0.254")}},
		}},
	}
}

// lanConfig6 is lanConfig with IPv6 on the lan in the given mode: web
// is fd77::10 and db fd77::11 when the mode is static.
func lanConfig6(mode string) Config {
	cfg := lanConfig(Range{})
	n := &cfg.Networks[0]
	n.Subnet6, n.Gateway6, n.IPv6Mode = netip.MustParsePrefix("fd77::/64"), netip.MustParseAddr("fd77::1"), mode
	cfg.Subnets = append(cfg.Subnets, n.Subnet6)
	if mode == spec.IPv6Static {
		for i, a := range []string{"fd77::10", "fd77::11"} {
			m := &cfg.Members[i]
			m.NICs[0].IPv6 = netip.MustParseAddr(a)
			m.Addrs = append(m.Addrs, m.NICs[0].IPv6)
		}
	}
	return cfg
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// udhcpcScript records each event's environment in $UDHCPC_OUT/<event>
// and configures the address, as a real script would, so that renewals
// go out from it.
const udhcpcScript = `#!/bin/sh
case "$1" in
bound|renew) ip addr replace "$ip/$mask" dev "$interface" ;;
esac
env | sort > "$UDHCPC_OUT/.$1" && mv "$UDHCPC_OUT/.$1" "$UDHCPC_OUT/$1"
`

// udhcpc runs busybox udhcpc once in m and returns the environment its
// script saw on "bound" (nil if it got no lease).
func udhcpc(t *testing.T, m *nstest.NS, args ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	os.WriteFile(script, []byte(udhcpcScript), 0o755)
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	cmd := append([]string{"env", "UDHCPC_OUT=" + out, "busybox", "udhcpc", "-f", "-q", "-n", "-t", "3", "-T", "1",
		"-i", "eth0", "-s", script, "-O", "mtu", "-O", "search", "-O", "staticroutes"}, args...)
	if _, err := m.Run(t, cmd...); err != nil {
		return nil
	}
	return readEnv(t, filepath.Join(out, "bound"))
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

// checkEnv fails the test for every key of want that env does not have
// with that value.
func checkEnv(t *testing.T, who string, env, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s: %s = %q, want %q", who, k, env[k], v)
		}
	}
}
