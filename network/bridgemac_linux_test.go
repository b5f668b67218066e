package network

import (
	"strings"
	"testing"

	"github.com/foldup/foldup/internal/nstest"
)

// TestBridgeKeepsMAC: a bridge keeps the MAC it was made with when a port
// with a lower MAC joins (left to itself, the kernel would take the
// port's), so that members' neighbour entries for the gateway and the
// router address in foldup's advertisements stay true.
func TestBridgeKeepsMAC(t *testing.T) {
	ns := nstest.New(t)
	h := open(t, ns)
	if err := h.BridgeAdd(BridgeOptions{Name: "fubtest0", Addrs: gw}); err != nil {
		t.Fatal(err)
	}
	m := bridgeMAC("fubtest0")
	if m[0]&3 != 2 || m.String() != bridgeMAC("fubtest0").String() || m.String() == bridgeMAC("fubtest1").String() {
		t.Fatalf("bridgeMAC(fubtest0) = %s: not locally administered unicast, not stable, or not per name", m)
	}
	want := m.String()
	mac := func() string {
		f := strings.Fields(ns.MustRun(t, "ip", "-o", "link", "show", "dev", "fubtest0"))
		for i := range f {
			if f[i] == "link/ether" && i+1 < len(f) {
				return f[i+1]
			}
		}
		return ""
	}
	if got := mac(); got != want {
		t.Fatalf("new bridge's MAC is %s, want %s", got, want)
	}
	ns.MustRun(t, "ip", "link", "add", "fuv0", "address", "02:00:00:00:00:01", "type", "veth", "peer", "name", "fuv1")
	if err := h.LinkAttach("fuv0", "fubtest0"); err != nil {
		t.Fatal(err)
	}
	if got := mac(); got != want {
		t.Errorf("the bridge's MAC went from %s to %s when port 02:00:00:00:00:01 joined", want, got)
	}
}
