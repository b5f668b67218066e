//go:build linux

package dnsd

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/nstest"
	"github.com/foldup/foldup/internal/systest"
)

// wantWeb is what web's DHCP client must be told.
var wantWeb = map[string]string{
	"ip":           "10.77.0.10",
	"mask":         "24",
	"router":       "10.77.0.1",
	"dns":          "10.77.0.1",
	"serverid":     "10.77.0.1",
	"hostname":     "webhost",
	"domain":       "shop.foldup.internal",
	"search":       "shop.foldup.internal",
	"mtu":          "1400",
	"lease":        "120",
	"staticroutes": "10.99.0.0/16 10.77.0.254 0.0.0.0/0 10.77.0.1",
}

func TestDHCP4Udhcpc(t *testing.T) {
	systest.Command(t, "busybox")
	l := newLAN(t)
	s := l.start(lanConfig(Range{}), Options{})
	web := l.member("02:fd:00:00:00:10")
	env := udhcpc(t, web)
	if env == nil {
		t.Fatal("udhcpc got no lease")
	}
	checkEnv(t, "web", env, wantWeb)
	if out := web.MustRun(t, "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(out, "10.77.0.10/24") {
		t.Errorf("web's eth0 after bound: %s", out)
	}
	leases := s.Leases()
	if len(leases) != 1 || leases[0].IPv4.String() != "10.77.0.10" || leases[0].MAC != "02:fd:00:00:00:10" || leases[0].Pool {
		t.Errorf("leases = %+v, want web's static lease", leases)
	}
}

// TestDHCP4Renew keeps udhcpc running and makes it renew (SIGUSR1): a
// unicast REQUEST from its address, which the server must ACK and
// record.
func TestDHCP4Renew(t *testing.T) {
	systest.Command(t, "busybox")
	l := newLAN(t)
	s := l.start(lanConfig(Range{}), Options{})
	web := l.member("02:fd:00:00:00:10")

	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	os.WriteFile(script, []byte(udhcpcScript), 0o755)
	cmd := exec.Command("ip", "netns", "exec", web.Name, "env", "UDHCPC_OUT="+dir,
		"busybox", "udhcpc", "-f", "-i", "eth0", "-s", script, "-t", "3", "-T", "1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFile(t, filepath.Join(dir, "bound"))
	first := s.Leases()[0].Expires

	time.Sleep(1100 * time.Millisecond) // so that the renewed lease ends later
	cmd.Process.Signal(syscall.SIGUSR1)
	waitFile(t, filepath.Join(dir, "renew"))
	checkEnv(t, "web renewing", readEnv(t, filepath.Join(dir, "renew")), map[string]string{"ip": "10.77.0.10", "lease": "120"})
	if got := s.Leases()[0].Expires; !got.After(first) {
		t.Errorf("lease expiry after renew = %v, want after %v", got, first)
	}
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	t.Fatalf("%s never appeared", filepath.Base(path))
}

// dhclient runs ISC dhclient once in m ("-r" to release instead), with
// a script that records each reason's environment in dir.
func dhclient(t *testing.T, m *nstest.NS, dir string, extra ...string) error {
	t.Helper()
	conf := filepath.Join(dir, "dhclient.conf")
	os.WriteFile(conf, []byte(`option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;
request subnet-mask, routers, domain-name-servers, domain-name, domain-search, host-name,
	interface-mtu, rfc3442-classless-static-routes;
timeout 10;
`), 0o644)
	script := filepath.Join(dir, "script")
	os.WriteFile(script, []byte(`#!/bin/sh
case "$reason" in
BOUND|REBOOT|RENEW) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
RELEASE) ip addr flush dev "$interface" ;;
esac
env | sort > "`+dir+`/$reason"
`), 0o755)
	pid := filepath.Join(dir, "pid")
	args := append([]string{"dhclient", "-1", "-cf", conf, "-sf", script,
		"-lf", filepath.Join(dir, "leases"), "-pf", pid}, extra...)
	_, err := m.Run(t, append(args, "eth0")...)
	// Once bound, dhclient stays in the background to renew: stop it.
	if b, rerr := os.ReadFile(pid); rerr == nil {
		m.Run(t, "sh", "-c", "kill "+strings.TrimSpace(string(b))+" 2>/dev/null")
		os.Remove(pid)
	}
	return err
}

func TestDHCP4Dhclient(t *testing.T) {
	systest.Command(t, "dhclient")
	l := newLAN(t)
	s := l.start(lanConfig(Range{}), Options{})
	db := l.member("02:fd:00:00:00:11")
	dir := t.TempDir()
	if err := dhclient(t, db, dir); err != nil {
		t.Fatalf("dhclient: %v", err)
	}
	checkEnv(t, "db", readEnv(t, filepath.Join(dir, "BOUND")), map[string]string{
		"new_ip_address":                      "10.77.0.11",
		"new_subnet_mask":                     "255.255.255.0",
		"new_routers":                         "10.77.0.1",
		"new_domain_name_servers":             "10.77.0.1",
		"new_domain_name":                     "shop.foldup.internal",
		"new_domain_search":                   "shop.foldup.internal.",
		"new_host_name":                       "db",
		"new_interface_mtu":                   "1400",
		"new_dhcp_lease_time":                 "120",
		"new_dhcp_server_identifier":          "10.77.0.1",
		"new_rfc3442_classless_static_routes": "16 10 99 10 77 0 254 0 10 77 0 1",
	})

	// Again with the lease file: dhclient asks for its old address
	// (INIT-REBOOT, no server identifier).
	if err := dhclient(t, db, dir); err != nil {
		t.Fatalf("dhclient, second run: %v", err)
	}
	checkEnv(t, "db rebooting", readEnv(t, filepath.Join(dir, "REBOOT")), map[string]string{"new_ip_address": "10.77.0.11"})

	// Release: the server ends the lease at once.
	before := time.Now()
	if err := dhclient(t, db, dir, "-r"); err != nil {
		t.Fatalf("dhclient -r: %v", err)
	}
	var got Lease
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = s.Leases()[0]; got.Expires.Before(before.Add(time.Minute)) {
			break
		}
	}
	if !got.Expires.Before(before.Add(time.Minute)) {
		t.Errorf("after release, the lease ends %v, want now", got.Expires)
	}
}

func TestDHCP4UnknownMAC(t *testing.T) {
	systest.Command(t, "busybox")
	l := newLAN(t)
	s := l.start(lanConfig(Range{}), Options{})
	stranger := l.member("02:aa:00:00:00:01")
	if env := udhcpc(t, stranger); env != nil {
		t.Errorf("a MAC that is no member's got a lease: %v", env)
	}
	// Even asking for a member's address by name gets nothing.
	if env := udhcpc(t, stranger, "-r", "10.77.0.10"); env != nil {
		t.Errorf("a MAC that is no member's got a lease asking for web's address: %v", env)
	}
	if ls := s.Leases(); len(ls) != 0 {
		t.Errorf("leases = %+v, want none", ls)
	}
}

// TestDHCP4Pool serves MACs that are no member's from a pool, and keeps
// their leases across a restart: after it, another client cannot take
// the address, and its holder gets it back.
func TestDHCP4Pool(t *testing.T) {
	systest.Command(t, "busybox")
	l := newLAN(t)
	pool := Range{netip.MustParseAddr("10.77.0.9"), netip.MustParseAddr("10.77.0.12")} // web and db are in it
	leaseFile := filepath.Join(t.TempDir(), "leases.json")
	cfg := lanConfig(pool)
	s := l.start(cfg, Options{LeaseFile: leaseFile})
	a := l.member("02:aa:00:00:00:01")
	b := l.member("02:aa:00:00:00:02")
	envA := udhcpc(t, a)
	if envA == nil {
		t.Fatal("no pool lease for a")
	}
	ipA := envA["ip"]
	if ipA != "10.77.0.9" && ipA != "10.77.0.12" {
		t.Fatalf("a got %s: want 10.77.0.9 or .12, the pool's addresses that are no member's", ipA)
	}
	checkEnv(t, "a", envA, map[string]string{"router": "10.77.0.1", "dns": "10.77.0.1", "mask": "24", "lease": "120"})
	if _, ok := envA["hostname"]; ok {
		t.Errorf("a pool client was given a hostname: %q", envA["hostname"])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = l.start(cfg, Options{LeaseFile: leaseFile})
	envB := udhcpc(t, b, "-r", ipA)
	if envB == nil {
		t.Fatal("no pool lease for b")
	}
	if envB["ip"] == ipA || (envB["ip"] != "10.77.0.9" && envB["ip"] != "10.77.0.12") {
		t.Errorf("b asked for a's address after a restart and got %s: want the pool's other address", envB["ip"])
	}
	if env := udhcpc(t, a); env == nil || env["ip"] != ipA {
		t.Errorf("a after the restart got %v, want %s again", env["ip"], ipA)
	}
	// The pool is full now: a third stranger gets nothing.
	if env := udhcpc(t, l.member("02:aa:00:00:00:03")); env != nil {
		t.Errorf("a third client got %s from a full pool", env["ip"])
	}
}

// TestDNSFromMembers queries the server from two members over the real
// network: the per-VM view follows the querier's address.
func TestDNSFromMembers(t *testing.T) {
	systest.Command(t, "busybox")
	systest.Command(t, "dig")
	l := newLAN(t)
	l.start(lanConfig(Range{}), Options{})
	web := l.member("02:fd:00:00:00:10")
	db := l.member("02:fd:00:00:00:11")
	for _, m := range []*nstest.NS{web, db} {
		if udhcpc(t, m) == nil {
			t.Fatal("no lease")
		}
	}
	dig := func(m *nstest.NS, name, qtype string) string {
		return strings.TrimSpace(m.MustRun(t, "dig", "+short", "+time=2", "+tries=1", "@10.77.0.1", name, qtype))
	}
	if got := dig(db, "web.shop.foldup.internal", "A"); got != "10.77.0.10" {
		t.Errorf("db: web = %q", got)
	}
	if got := dig(web, "motd.shop.foldup.internal", "TXT"); got != `"web's own"` {
		t.Errorf("web sees motd = %q, want its own record", got)
	}
	if got := dig(db, "motd.shop.foldup.internal", "TXT"); got != "" {
		t.Errorf("db sees web's motd: %q", got)
	}
}
