package planner

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/foldup/foldup/spec"
)

// inline loads YAML as testdata/foldup.yaml (so ./vmlinuz resolves).
func inline(t testing.TB, y string) *spec.Project {
	t.Helper()
	abs, _ := filepath.Abs("testdata/foldup.yaml")
	p, err := spec.LoadBytes(context.Background(), abs, []byte(y), nil)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return p
}

func TestPlanErrors(t *testing.T) {
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"static outside subnet", `
networks: {lan: {ipam: {config: [{subnet: 10.1.0.0/24}]}}}
vms: {a: {kernel: vmlinuz, networks: {lan: {ipv4_address: 10.2.0.5}}}}`,
			`foldup.yaml:3:59: vms.a.networks.lan.ipv4_address: 10.2.0.5 is outside network "lan"'s subnet 10.1.0.0/24`},
		{"network, broadcast and gateway addresses", `
networks: {lan: {ipam: {config: [{subnet: 10.1.0.0/24}]}}}
vms:
  a: {kernel: vmlinuz, networks: {lan: {ipv4_address: 10.1.0.0}}}
  b: {kernel: vmlinuz, networks: {lan: {ipv4_address: 10.1.0.255}}}
  c: {kernel: vmlinuz, networks: {lan: {ipv4_address: 10.1.0.1}}}`,
			`foldup.yaml:4:55: vms.a.networks.lan.ipv4_address: 10.1.0.0 is the network address of 10.1.0.0/24` + "\n" +
				`foldup.yaml:5:55: vms.b.networks.lan.ipv4_address: 10.1.0.255 is the broadcast address of 10.1.0.0/24` + "\n" +
				`foldup.yaml:6:55: vms.c.networks.lan.ipv4_address: 10.1.0.1 is the gateway (foldup's DNS/DHCP server) of network "lan"`},
		{"address used twice across a VM and a container", `
networks: {lan: {ipam: {config: [{subnet: 10.1.0.0/24}]}}}
services: {db: {image: pg, networks: {lan: {ipv4_address: 10.1.0.5}}}}
vms: {a: {kernel: vmlinuz, networks: {lan: {ipv4_address: 10.1.0.5}}}}`,
			`foldup.yaml:3:59: services.db.networks.lan.ipv4_address: 10.1.0.5 is already a's address`},
		{"MAC used twice", `
vms:
  a: {kernel: vmlinuz, networks: {default: {mac_address: "52:54:00:00:00:01"}}}
  b: {kernel: vmlinuz, networks: {default: {mac_address: "52:54:00:00:00:01"}}}`,
			`foldup.yaml:4:58: vms.b.networks.default.mac_address: 52:54:00:00:00:01 is already the MAC of a on default`},
		{"host port clash", `
services:
  web: {image: nginx, ports: ["8080:80"]}
  api: {image: api, ports: ["127.0.0.1:9000:9000"]}
vms:
  a: {kernel: vmlinuz, ports: ["8080:8080"]}
  b: {kernel: vmlinuz, ports: ["9000:9000", "9000:9000/udp"]}`,
			`foldup.yaml:3:23: services.web.ports: host port 8080/tcp is already forwarded to a` + "\n" +
				`foldup.yaml:7:24: vms.b.ports: host port 9000/tcp is already forwarded to api`},
		{"whole cycle", `
services:
  a: {image: x, depends_on: [b]}
  b: {image: x, depends_on: {v: {condition: service_healthy}}}
vms:
  v: {kernel: vmlinuz, depends_on: [a]}`,
			`foldup.yaml:3:30: services.a.depends_on.b: dependency cycle: a -> b -> v -> a`},
		{"replicas with a static address", `
networks: {lan: {ipam: {config: [{subnet: 10.1.0.0/24}]}}}
services: {w: {image: x, scale: 2, networks: {lan: {ipv4_address: 10.1.0.5}}}}`,
			`foldup.yaml:3:67: services.w.networks.lan.ipv4_address: a static address or MAC cannot be shared by 2 replicas`},
		{"overlapping subnets", `
networks:
  a: {ipam: {config: [{subnet: 10.1.0.0/16}]}}
  b: {ipam: {config: [{subnet: 10.1.2.0/24}]}}
vms: {v: {kernel: vmlinuz, networks: [a, b]}}`,
			`foldup.yaml:4:32: networks.b.ipam.config.0.subnet: 10.1.2.0/24 overlaps 10.1.0.0/16 of network "a"`},
		{"bad subnets", `
networks:
  a: {ipam: {config: [{subnet: 10.1.0.0/30}]}}
  b: {ipam: {config: [{subnet: 10.2.0.1/24}]}}
  c: {enable_ipv6: true, ipam: {config: [{subnet: "fd00::/80"}]}}
  d: {ipam: {config: [{subnet: 10.4.0.0/24, gateway: 10.5.0.1}]}}
  e: {ipam: {config: [{subnet: nonsense}]}}
vms: {v: {kernel: vmlinuz, networks: [a, b, c, d, e]}}`,
			`foldup.yaml:3:32: networks.a.ipam.config.0.subnet: 10.1.0.0/30 is too small: a network needs at least a /29` + "\n" +
				`foldup.yaml:4:32: networks.b.ipam.config.0.subnet: "10.2.0.1/24" has host bits set; the subnet is 10.2.0.0/24` + "\n" +
				`foldup.yaml:5:51: networks.c.ipam.config.0.subnet: fd00::/80: IPv6 mode slaac needs a /64 (or use x-foldup.ipv6: static)` + "\n" +
				`foldup.yaml:6:54: networks.d.ipam.config.0.gateway: "10.5.0.1" is not a host address in 10.4.0.0/24` + "\n" +
				`foldup.yaml:7:32: networks.e.ipam.config.0.subnet: "nonsense" is not a subnet (ADDRESS/BITS)`},
		{"a VM's static IPv6 on a network where guests form their own", `
networks:
  lan: {enable_ipv6: true, ipam: {config: [{subnet: "fd00:1::/64"}]}}
  priv: {enable_ipv6: true, ipam: {config: [{subnet: "fd00:2::/64"}]}, x-foldup: {ipv6: stable-privacy}}
  stat: {enable_ipv6: true, ipam: {config: [{subnet: "fd00:3::/64"}]}, x-foldup: {ipv6: static}}
services: {db: {image: pg, networks: {lan: {ipv6_address: "fd00:1::5"}}}}
vms:
  a: {kernel: vmlinuz, networks: {lan: {ipv6_address: "fd00:1::10"}}}
  b: {kernel: vmlinuz, networks: {priv: {ipv6_address: "fd00:2::10"}, stat: {ipv6_address: "fd00:3::10"}}}`,
			`foldup.yaml:8:55: vms.a.networks.lan.ipv6_address: a VM on network "lan" forms its own IPv6 address (x-foldup.ipv6: slaac): a static address needs x-foldup.ipv6: static there` + "\n" +
				`foldup.yaml:9:56: vms.b.networks.priv.ipv6_address: a VM on network "priv" forms its own IPv6 address (x-foldup.ipv6: stable-privacy): a static address needs x-foldup.ipv6: static there`},
		{"address pool exhausted", `
x-foldup: {address_pools: [{base: 10.9.0.0/24, size: 24}]}
networks: {a: {}, b: {}}
vms: {v: {kernel: vmlinuz, networks: [a, b]}}`,
			`foldup.yaml:3:19: networks.b: no free subnet left in the address pools (x-foldup.address_pools)`},
		{"subnet full", `
networks: {lan: {ipam: {config: [{subnet: 10.1.0.0/29}]}}}
vms:
  a: {kernel: vmlinuz, networks: [lan]}
  b: {kernel: vmlinuz, networks: [lan]}
  c: {kernel: vmlinuz, networks: [lan]}`,
			`foldup.yaml:6:35: vms.c.networks.lan: network "lan"'s subnet 10.1.0.0/29 has no free address left`},
		// Regressions found in review.
		{"a rejected gateway is not replaced by an automatic subnet", `
networks: {lan: {ipam: {config: [{subnet: 10.80.1.0/24, gateway: 10.80.2.1}]}}}
services: {s: {image: x, networks: {lan: {ipv4_address: 10.80.1.5}}}}`,
			`foldup.yaml:2:66: networks.lan.ipam.config.0.gateway: "10.80.2.1" is not a host address in 10.80.1.0/24`},
		{"static IPv6 pool full", `
networks: {lan: {enable_ipv6: true, ipam: {config: [{subnet: 10.80.0.0/22}, {subnet: "fd00::/120"}]}, x-foldup: {ipv6: static}}}
services: {s: {image: x, networks: [lan], scale: 260}}`,
			`foldup.yaml:3:37: services.s.networks.lan: network "lan"'s subnet fd00::/120 has no free IPv6 address left`},
		{"one member forwarding a host port twice", `
vms: {a: {kernel: vmlinuz, ports: ["8080:80", "8080:81"]}}`,
			`foldup.yaml:2:28: vms.a.ports: host port 8080/tcp is already forwarded to a`},
		{"service MACs are checked", `
services:
  s: {image: x, mac_address: "not-a-mac"}
  t: {image: x, networks: {default: {mac_address: "01:00:5e:00:00:01"}}}`,
			`foldup.yaml:3:30: services.s.mac_address: "not-a-mac" is not a MAC address (six hex bytes: 52:54:00:12:34:56)` + "\n" +
				`foldup.yaml:4:51: services.t.networks.default.mac_address: "01:00:5e:00:00:01" is a multicast address; a NIC needs a unicast one`},
		{"replicas with a MAC", `
services: {w: {image: x, deploy: {replicas: 2}, mac_address: "02:00:00:00:00:01"}}`,
			`foldup.yaml:2:62: services.w.mac_address: a static address or MAC cannot be shared by 2 replicas`},
		{"ip_range leaving no room", `
networks: {lan: {ipam: {config: [{subnet: 10.80.1.0/24, ip_range: 10.80.1.0/24}]}}}
services: {s: {image: x, networks: [lan]}}`,
			`foldup.yaml:3:37: services.s.networks.lan: network "lan"'s ip_range 10.80.1.0/24 leaves no address of 10.80.1.0/24 for foldup's members`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compute(inline(t, tt.yaml), Observed{}, Intent{})
			if err == nil {
				t.Fatalf("no error; want:\n%s", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestStable: adding a member renumbers no other, with the previous plan
// observed (guaranteed) and without it (by hashing into the pool).
func TestStable(t *testing.T) {
	base := `
networks: {lan: {enable_ipv6: true, x-foldup: {ipv6: static}}}
services:
  s1: {image: x, networks: [lan]}
  s2: {image: x, networks: [lan]}
vms:
  v1: {kernel: vmlinuz, networks: [lan]}
`
	bigger := strings.Replace(base, "vms:\n", "vms:\n  v0: {kernel: vmlinuz, networks: [lan]}\n", 1)
	bigger = strings.Replace(bigger, "services:\n", "services:\n  s0: {image: x, networks: [lan]}\n", 1)
	before, err := Compute(inline(t, base), Observed{}, Intent{})
	if err != nil {
		t.Fatal(err)
	}
	for _, obs := range []Observed{{}, {Previous: before}} {
		after, err := Compute(inline(t, bigger), obs, Intent{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range before.Members {
			am := find(after, m.Name)
			for i, nic := range m.NICs {
				got := am.NICs[i]
				if !(got.Tap == nic.Tap && got.MAC == nic.MAC && got.IPv4 == nic.IPv4 && got.IPv6 == nic.IPv6) {
					t.Errorf("previous=%v: %s changed from %+v to %+v", obs.Previous != nil, m.Name, nic, got)
				}
			}
		}
		if after.Networks[0].Subnet4 != before.Networks[0].Subnet4 || after.Networks[0].Subnet6 != before.Networks[0].Subnet6 {
			t.Errorf("subnets moved")
		}
	}
}

// TestPrevious: a previous plan's choices stand even where a fresh plan
// would choose differently.
func TestPrevious(t *testing.T) {
	y := "networks: {lan: {}}\nvms: {v1: {kernel: vmlinuz, networks: [lan]}}\n"
	fresh, _ := Compute(inline(t, y), Observed{}, Intent{})
	prev, _ := Compute(inline(t, y), Observed{}, Intent{})
	prev.Networks[0].Subnet4 = netip.MustParsePrefix("10.89.200.0/24")
	prev.Members[0].NICs[0].IPv4 = netip.MustParseAddr("10.89.200.77")
	prev.Members[0].NICs[0].MAC = "02:00:00:00:00:77"
	got, err := Compute(inline(t, y), Observed{Previous: prev}, Intent{})
	if err != nil {
		t.Fatal(err)
	}
	nic := got.Members[0].NICs[0]
	if got.Networks[0].Subnet4.String() != "10.89.200.0/24" || nic.IPv4.String() != "10.89.200.77" || nic.MAC != "02:00:00:00:00:77" {
		t.Errorf("previous choices not kept: %s %s %s (fresh would be %s)", got.Networks[0].Subnet4, nic.IPv4, nic.MAC, fresh.Networks[0].Subnet4)
	}
	// A subnet now taken on the host is given up for a free one.
	got, _ = Compute(inline(t, y), Observed{Previous: prev, UsedSubnets: []netip.Prefix{netip.MustParsePrefix("10.89.200.0/22")}}, Intent{})
	if got.Networks[0].Subnet4.Overlaps(netip.MustParsePrefix("10.89.200.0/22")) {
		t.Errorf("subnet %s overlaps a used one", got.Networks[0].Subnet4)
	}
}

func TestActions(t *testing.T) {
	y := "services: {db: {image: pg}}\nvms: {v: {kernel: vmlinuz, depends_on: [db]}}\n"
	plan, _ := Compute(inline(t, y), Observed{}, Intent{})
	db, v := find(plan, "db"), find(plan, "v")
	obs := Observed{
		Networks:   map[string]bool{"default": true},
		DNSRunning: true,
		Members: map[string]MemberState{
			"db": {Running: true, ConfigHash: db.ConfigHash},
			"v":  {Running: true, ConfigHash: "stale"},
		},
	}
	again, _ := Compute(inline(t, y), obs, Intent{})
	want := `[] -> #1 network default, None, exists
[1] -> #2 firewall testdata, Apply
[1] -> #3 docker-accept default, Apply
[2 3] -> #4 supervisor testdata, Reload, running
[1 4] -> #5 container db, None, running
[5] -> #6 wait db, Wait, a dependency of v
[6] -> #7 vm-stop v, Stop, config changed
[1 7] -> #8 tap fut9a1694d3, Ensure
[7 8] -> #9 qemu v, Recreate, config changed
`
	var got strings.Builder
	for _, line := range strings.SplitAfter(again.String(), "\n") {
		if i := strings.Index(line, " ("); i > 0 {
			line = line[:i] + "\n"
		}
		got.WriteString(line)
	}
	if got.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", got.String(), want)
	}
	if v.ConfigHash == "" || v.ConfigHash == db.ConfigHash {
		t.Errorf("config hashes %q %q", v.ConfigHash, db.ConfigHash)
	}
	// Changing a VM's memory changes its hash and only its hash.
	changed, _ := Compute(inline(t, strings.Replace(y, "kernel: vmlinuz", "kernel: vmlinuz, memory: 1g", 1)), Observed{}, Intent{})
	if find(changed, "v").ConfigHash == v.ConfigHash || find(changed, "db").ConfigHash != db.ConfigHash {
		t.Error("config hash did not follow the change")
	}
}

func find(p *Plan, name string) *Member {
	for _, m := range p.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// TestULAExhausted: with every unique local /64 taken, planning reports it
// instead of searching forever.
func TestULAExhausted(t *testing.T) {
	p := inline(t, "networks: {lan: {enable_ipv6: true}}\nservices: {s: {image: x, networks: [lan]}}\n")
	_, err := Compute(p, Observed{UsedSubnets: []netip.Prefix{netip.MustParsePrefix("fc00::/7")}}, Intent{})
	if err == nil || !strings.Contains(err.Error(), "no free IPv6 /64 left") {
		t.Fatalf("got %v", err)
	}
}

// TestDockerRangeAvoidsStatics: Docker's range never holds an address of
// the plan, wherever the statics sit.
func TestDockerRangeAvoidsStatics(t *testing.T) {
	for _, tt := range []struct{ subnet, static, want string }{
		// The lower half holds the gateway: the largest clear block is a /26.
		{"10.80.1.0/24", "10.80.1.254", "10.80.1.128/26"},
		{"10.80.1.0/24", "10.80.1.130", "10.80.1.192/26"},
		{"10.80.1.0/24", "10.80.1.10", "10.80.1.128/25"},
		{"10.80.1.0/29", "10.80.1.5", "10.80.1.6/31"},
	} {
		y := "networks: {lan: {ipam: {config: [{subnet: " + tt.subnet + "}]}}}\nvms: {v: {kernel: vmlinuz, networks: {lan: {ipv4_address: " + tt.static + "}}}}\n"
		plan, err := Compute(inline(t, y), Observed{}, Intent{})
		if err != nil {
			t.Fatal(err)
		}
		r := plan.Networks[0].DockerRange4
		if r.String() != tt.want || r.Contains(netip.MustParseAddr(tt.static)) || r.Contains(plan.Networks[0].Gateway4) {
			t.Errorf("%s with %s: docker range %s, want %s", tt.subnet, tt.static, r, tt.want)
		}
	}
}

// TestPortsOfOtherProjects: a host port another project forwards is
// refused with the owner named, on the same address or either wildcard;
// one on another address, or another protocol, is free.
func TestPortsOfOtherProjects(t *testing.T) {
	obs := Observed{ForwardedPorts: []ForwardedPort{
		{Port: Port{HostPort: 8080, Target: 80, Protocol: "tcp"}, Owner: "web of project shop"},
		{Port: Port{HostIP: "127.0.0.1", HostPort: 9000, Target: 9000, Protocol: "tcp"}, Owner: "api of project shop"},
	}}
	p := inline(t, `
services:
  web: {image: nginx, ports: ["127.0.0.2:8080:80", "8080:80/udp"]}
  api: {image: api, ports: ["127.0.0.2:9000:9000"]}
vms:
  a: {kernel: vmlinuz, ports: ["127.0.0.1:9000:9000"]}`)
	_, err := Compute(p, obs, Intent{})
	want := `foldup.yaml:3:23: services.web.ports: host port 8080/tcp is already forwarded to web of project shop` + "\n" +
		`foldup.yaml:6:24: vms.a.ports: host port 9000/tcp is already forwarded to api of project shop`
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}
