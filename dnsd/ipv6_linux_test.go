//go:build linux

package dnsd

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/nstest"
	"github.com/foldup/foldup/internal/systest"
	"github.com/foldup/foldup/spec"
)

// rdisc6 solicits an advertisement from m's eth0 and returns rdisc6's
// report of it.
func rdisc6(t *testing.T, m *nstest.NS) string {
	t.Helper()
	systest.Command(t, "rdisc6")
	return m.MustRun(t, "rdisc6", "-1", "-r", "3", "-w", "1000", "eth0")
}

// wantLines fails the test for each pattern (a regexp over one line)
// that no line of out matches.
func wantLines(t *testing.T, what, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile("(?m)" + p).MatchString(out) {
			t.Errorf("%s: no line matches %q in:\n%s", what, p, out)
		}
	}
}

// waitAddr waits for m's eth0 to have a global IPv6 address and returns
// them all.
func waitAddr(t *testing.T, m *nstest.NS) string {
	t.Helper()
	var out string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out = m.MustRun(t, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
		if strings.Contains(out, "inet6") {
			break
		}
	}
	return out
}

// TestSLAAC: a member with accept_ra on forms its EUI-64 address from
// the advertised prefix, takes the gateway as its default router, and
// learns the DNS server and search list from the advertisement.
func TestSLAAC(t *testing.T) {
	l := newLAN(t)
	l.start(lanConfig6(spec.IPv6SLAAC), Options{})
	web := l.member("02:fd:00:00:00:10")
	addrs := waitAddr(t, web)
	if !strings.Contains(addrs, "fd77::fd:ff:fe00:10/64") {
		t.Errorf("web's global addresses: %q, want the EUI-64 address fd77::fd:ff:fe00:10/64", addrs)
	}
	route := web.MustRun(t, "ip", "-6", "route", "show", "default")
	wantLines(t, "default route", route, `^default via fe80::\S+ dev eth0 proto ra`)
	wantLines(t, "rdisc6", rdisc6(t, web),
		`^\s*Stateful address conf\.\s*:\s*No\s*$`,
		`^\s*Stateful other conf\.\s*:\s*Yes\s*$`,
		`^\s*Router lifetime\s*:\s*1800`,
		`^\s*MTU\s*:\s*1400`,
		`^\s*Prefix\s*:\s*fd77::/64\s*$`,
		`^\s*On-link\s*:\s*Yes\s*$`,
		`^\s*Autonomous address conf\.\s*:\s*Yes\s*$`,
		`^\s*Recursive DNS server\s*:\s*fd77::1\s*$`,
		`^\s*DNS search list\s*:\s*shop\.foldup\.internal\.?\s*$`,
		`^\s*Source link-layer address\s*:\s*([0-9A-F]{2}:){5}[0-9A-F]{2}\s*$`,
	)
}

// TestUnsolicitedRA: a member that never solicits still configures
// itself, from the advertisements the server sends on its own.
func TestUnsolicitedRA(t *testing.T) {
	l := newLAN(t)
	web := l.member("02:fd:00:00:00:10")
	web.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.eth0.router_solicitations=0")
	// Already up: bounce it so that the setting holds from the start.
	web.MustRun(t, "ip", "link", "set", "eth0", "down")
	web.MustRun(t, "ip", "link", "set", "eth0", "up")
	l.start(lanConfig6(spec.IPv6SLAAC), Options{})
	if addrs := waitAddr(t, web); !strings.Contains(addrs, "fd77::fd:ff:fe00:10/64") {
		t.Errorf("web's global addresses without soliciting: %q", addrs)
	}
}

// TestDHCPv6 serves a static-mode network: the advertisement says to
// take addresses from DHCPv6 and form none, and dhclient -6 gets the
// planned address, DNS server and search list.
func TestDHCPv6(t *testing.T) {
	systest.Command(t, "dhclient")
	l := newLAN(t)
	l.start(lanConfig6(spec.IPv6Static), Options{})
	web := l.member("02:fd:00:00:00:10")
	wantLines(t, "rdisc6", rdisc6(t, web),
		`^\s*Stateful address conf\.\s*:\s*Yes\s*$`,
		`^\s*Autonomous address conf\.\s*:\s*No\s*$`,
	)

	dir := t.TempDir()
	conf := filepath.Join(dir, "dhclient6.conf")
	os.WriteFile(conf, []byte("request dhcp6.name-servers, dhcp6.domain-search;\n"), 0o644)
	script := filepath.Join(dir, "script")
	os.WriteFile(script, []byte(`#!/bin/sh
case "$reason" in
BOUND6|REBOOT6|RENEW6) ip -6 addr replace "$new_ip6_address/$new_ip6_prefixlen" dev "$interface" ;;
esac
env | sort > "`+dir+`/$reason"
`), 0o755)
	pid := filepath.Join(dir, "pid")
	_, err := web.Run(t, "dhclient", "-6", "-1", "-cf", conf, "-sf", script,
		"-lf", filepath.Join(dir, "leases"), "-pf", pid, "eth0")
	if b, rerr := os.ReadFile(pid); rerr == nil {
		web.Run(t, "sh", "-c", "kill "+strings.TrimSpace(string(b))+" 2>/dev/null")
	}
	if err != nil {
		t.Fatalf("dhclient -6: %v", err)
	}
	checkEnv(t, "web", readEnv(t, filepath.Join(dir, "BOUND6")), map[string]string{
		"new_ip6_address":         "fd77::10",
		"new_dhcp6_name_servers":  "fd77::1",
		"new_dhcp6_domain_search": "shop.foldup.internal.",
	})
	addrs := web.MustRun(t, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
	if strings.Contains(addrs, "fd77::fd:ff:fe00:10") || !strings.Contains(addrs, "fd77::10/") {
		t.Errorf("web's global addresses: %q, want fd77::10 only (no SLAAC address)", addrs)
	}

	// A member the plan has no IPv6 address for gets none.
	stranger := l.member("02:aa:00:00:00:01")
	sdir := t.TempDir()
	_, err = stranger.Run(t, "timeout", "4", "dhclient", "-6", "-1", "-cf", conf, "-sf", script,
		"-lf", filepath.Join(sdir, "leases"), "-pf", filepath.Join(sdir, "pid"), "eth0")
	if err == nil {
		t.Errorf("a MAC that is no member's got a DHCPv6 lease")
	}
}

// TestIPv6DNS: the server answers on the gateway's IPv6 address too.
func TestIPv6DNS(t *testing.T) {
	systest.Command(t, "dig")
	l := newLAN(t)
	l.start(lanConfig6(spec.IPv6Static), Options{})
	web := l.member("02:fd:00:00:00:10")
	web.MustRun(t, "ip", "-6", "addr", "add", "fd77::10/64", "dev", "eth0", "nodad")
	got := strings.TrimSpace(web.MustRun(t, "dig", "+short", "+time=2", "+tries=1", "@fd77::1", "db.shop.foldup.internal", "AAAA"))
	if got != "fd77::11" {
		t.Errorf("db AAAA over IPv6 = %q, want fd77::11", got)
	}
}
