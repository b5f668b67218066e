//go:build linux

package dnsd

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/foldup/foldup/internal/systest"
	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/spec"
)

// TestThroughFirewall serves an isolated network behind foldup's own
// firewall, as up runs it: DHCP, router advertisements and DNS must all
// get through the member port's guards and the isolated network's input
// filter.
func TestThroughFirewall(t *testing.T) {
	systest.Command(t, "busybox")
	systest.Command(t, "dig")
	l := newLAN(t)
	cfg := lanConfig6(spec.IPv6SLAAC)
	cfg.Networks[0].Router = false // isolated: no default route
	eui := netip.MustParseAddr("fd77::fd:ff:fe00:10")
	cfg.Members[0].Addrs = append(cfg.Members[0].Addrs, eui)
	l.start(cfg, Options{})
	web := l.member("02:fd:00:00:00:10")
	err := l.host.FirewallApply(network.Config{
		Project: "dnsdtest",
		Networks: []network.Net{{Bridge: "br0", Gateway4: netip.MustParseAddr("10.77.0.1"),
			Gateway6: netip.MustParseAddr("fd77::1"), Isolated: true, Outbound: network.OutboundDrop}},
		Ports: []network.Port{{Name: "vm1", Bridge: "br0", MAC: mac("02:fd:00:00:00:10"), RA: true,
			IPv4: addrs("10.77.0.10"), IPv6: []netip.Addr{eui}}},
	})
	if err != nil {
		t.Fatal(err)
	}

	env := udhcpc(t, web)
	if env == nil {
		t.Fatal("no DHCP lease through the firewall")
	}
	checkEnv(t, "web", env, map[string]string{"ip": "10.77.0.10", "dns": "10.77.0.1", "router": ""})
	if addrs := waitAddr(t, web); !strings.Contains(addrs, "fd77::fd:ff:fe00:10/64") {
		t.Errorf("no SLAAC address through the firewall: %q", addrs)
	}
	if route := web.MustRun(t, "ip", "-6", "route", "show", "default"); route != "" {
		t.Errorf("an isolated network's advertisement made a default route: %q", route)
	}
	for _, server := range []string{"10.77.0.1", "fd77::1"} {
		got := strings.TrimSpace(web.MustRun(t, "dig", "+short", "+time=2", "+tries=1", "@"+server, "db.shop.foldup.internal"))
		if got != "10.77.0.11" {
			t.Errorf("dig @%s db = %q, want 10.77.0.11", server, got)
		}
	}
}
