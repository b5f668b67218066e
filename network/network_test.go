package network

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/foldup/foldup/internal/nstest"
)

func open(t *testing.T, ns *nstest.NS) *Host {
	t.Helper()
	h, err := Open(ns.Handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

var gw = []netip.Prefix{netip.MustParsePrefix("10.77.0.1/24"), netip.MustParsePrefix("fd00:77::1/64")}

func TestBridge(t *testing.T) {
	ns := nstest.New(t)
	h := open(t, ns)
	if err := h.BridgeAdd(BridgeOptions{Name: "fubtest0", MTU: 1400, Addrs: gw, MulticastSnooping: true}); err != nil {
		t.Fatal(err)
	}
	out := ns.MustRun(t, "ip", "-d", "addr", "show", "dev", "fubtest0")
	for _, want := range []string{"mtu 1400", "10.77.0.1/24", "fd00:77::1/64", "bridge", "mcast_snooping 1", ",UP"} {
		if !strings.Contains(out, want) {
			t.Errorf("bridge lacks %q:\n%s", want, out)
		}
	}
	// No DAD: the IPv6 address is usable at once, so the server can bind it.
	if strings.Contains(out, "tentative") {
		t.Errorf("IPv6 address is tentative:\n%s", out)
	}
	if got := strings.TrimSpace(ns.MustRun(t, "sysctl", "-n", "net.ipv6.conf.fubtest0.accept_ra")); got != "0" {
		t.Errorf("accept_ra = %s", got)
	}
	// The host's own namespace is untouched.
	if _, err := os.Stat("/sys/class/net/fubtest0"); err == nil {
		t.Error("bridge appeared in the test's own namespace")
	}

	// Adopting it again: idempotent; changed addresses replace the old.
	moved := []netip.Prefix{netip.MustParsePrefix("10.78.0.1/24")}
	if err := h.BridgeAdd(BridgeOptions{Name: "fubtest0", Addrs: moved}); err != nil {
		t.Fatal(err)
	}
	out = ns.MustRun(t, "ip", "-d", "addr", "show", "dev", "fubtest0")
	if !strings.Contains(out, "10.78.0.1/24") || strings.Contains(out, "10.77.0.1") || strings.Contains(out, "fd00:77::1") || !strings.Contains(out, "mcast_snooping 0") {
		t.Errorf("after re-adding:\n%s", out)
	}

	// A link of another kind under that name is an error, not adopted.
	ns.MustRun(t, "ip", "link", "add", "fubtest1", "type", "veth", "peer", "name", "fubtest2")
	if err := h.BridgeAdd(BridgeOptions{Name: "fubtest1"}); err == nil || !strings.Contains(err.Error(), "is a veth, not a bridge") {
		t.Errorf("adopting a veth as a bridge: %v", err)
	}
}

func TestTapOwnedAndAttached(t *testing.T) {
	ns := nstest.New(t)
	h := open(t, ns)
	if err := h.BridgeAdd(BridgeOptions{Name: "fubtest0", Addrs: gw}); err != nil {
		t.Fatal(err)
	}
	if err := h.TapAdd("futtest0", "fubtest0", 4242, 4243, 0); err != nil {
		t.Fatal(err)
	}
	out := ns.MustRun(t, "ip", "-d", "link", "show", "dev", "futtest0")
	for _, want := range []string{"master fubtest0", "tun type tap", "user 4242", "group 4243", "vnet_hdr on", "persist on"} {
		if !strings.Contains(out, want) {
			t.Errorf("tap lacks %q:\n%s", want, out)
		}
	}
	// Adding it again adopts it.
	if err := h.TapAdd("futtest0", "fubtest0", 4242, 4243, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkDel("futtest0"); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkDel("futtest0"); err != nil {
		t.Fatalf("deleting a missing link: %v", err)
	}
	links, _ := h.Links()
	for _, l := range links {
		if l == "futtest0" {
			t.Error("tap still there after LinkDel")
		}
	}
}

// TestVethMember: a member namespace on the bridge reaches the gateway
// over IPv4 and IPv6 with real packets.
func TestVethMember(t *testing.T) {
	host := nstest.New(t)
	member := nstest.New(t)
	h := open(t, host)
	if err := h.BridgeAdd(BridgeOptions{Name: "fubtest0", Addrs: gw}); err != nil {
		t.Fatal(err)
	}
	if err := h.VethAdd("fuvtest0", "eth0", member.Handle); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkAttach("fuvtest0", "fubtest0"); err != nil {
		t.Fatal(err)
	}
	member.MustRun(t, "ip", "addr", "add", "10.77.0.5/24", "dev", "eth0")
	member.MustRun(t, "ip", "addr", "add", "fd00:77::5/64", "dev", "eth0", "nodad")
	member.MustRun(t, "ip", "link", "set", "eth0", "up")
	member.MustRun(t, "ping", "-c1", "-W2", "10.77.0.1")
	member.MustRun(t, "ping", "-6", "-c1", "-W2", "fd00:77::1")
}
