package spec

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// load writes files (name -> content) into a fresh directory, changes into
// it, and loads foldup.yaml there with a fixed environment.
func loadFiles(t *testing.T, files map[string]string, env ...string) (*Project, error) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	return Load(t.Context(), Options{Environ: append([]string{"HOME=" + dir}, env...)})
}

func mustLoad(t *testing.T, files map[string]string, env ...string) *Project {
	t.Helper()
	p, err := loadFiles(t, files, env...)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return p
}

const kernelVM = `
vms:
  web:
    kernel: ./vmlinuz
`

// TestAccelPrecedence: a VM's accel, then FOLDUP_ACCEL, then the
// project's x-foldup.accel, as compose ranks a service's setting, the
// environment and the file's defaults.
func TestAccelPrecedence(t *testing.T) {
	files := map[string]string{"k": "", "foldup.yaml": `
x-foldup: {accel: tcg}
vms:
  own: {kernel: k, accel: kvm}
  other: {kernel: k}
`}
	for _, c := range []struct {
		env         []string
		own, other  string
		otherSource string
	}{
		{nil, "kvm", "tcg", "x-foldup.accel"},
		{[]string{"FOLDUP_ACCEL=auto"}, "kvm", "auto", "FOLDUP_ACCEL"},
	} {
		p := mustLoad(t, files, c.env...)
		if got, from := p.Accel("own"); got != c.own || strings.Join(from, ".") != "vms.own.accel" {
			t.Errorf("env %v: own = %q from %v, want %q from vms.own.accel", c.env, got, from, c.own)
		}
		if got, from := p.Accel("other"); got != c.other || strings.Join(from, ".") != c.otherSource {
			t.Errorf("env %v: other = %q from %v, want %q from %s", c.env, got, from, c.other, c.otherSource)
		}
	}
	p := mustLoad(t, map[string]string{"k": "", "foldup.yaml": "vms:\n  a: {kernel: k}\n"})
	if got, from := p.Accel("a"); got != AccelAuto || from != nil {
		t.Errorf("default = %q from %v, want auto from nowhere", got, from)
	}

	// A wrong FOLDUP_ACCEL is an error for a project with VMs, and
	// nothing to one without.
	_, err := loadFiles(t, map[string]string{"k": "", "foldup.yaml": "vms:\n  a: {kernel: k}\n"}, "FOLDUP_ACCEL=kqemu")
	if want := `FOLDUP_ACCEL: "kqemu" (from the environment) is not an accelerator: auto, kvm or tcg`; err == nil || err.Error() != want {
		t.Errorf("FOLDUP_ACCEL=kqemu: %v, want %s", err, want)
	}
	mustLoad(t, map[string]string{"foldup.yaml": "services:\n  a: {image: x}\n"}, "FOLDUP_ACCEL=kqemu")
}

func TestVMDefaults(t *testing.T) {
	p := mustLoad(t, map[string]string{"foldup.yaml": kernelVM, "vmlinuz": ""})
	if p.Name != filepath.Base(p.WorkingDir) {
		t.Errorf("name %q, want the directory's", p.Name)
	}
	vm := p.VMs["web"]
	if vm.CPUs != 1 || vm.Memory != 512<<20 || vm.Arch != hostArch() {
		t.Errorf("defaults: cpus %d memory %d arch %s", vm.CPUs, vm.Memory, vm.Arch)
	}
	if vm.Kernel != filepath.Join(p.WorkingDir, "vmlinuz") {
		t.Errorf("kernel %q not resolved against the project directory", vm.Kernel)
	}
	if _, ok := vm.Networks["default"]; !ok {
		t.Errorf("networks %v: a VM without networks joins default", vm.Networks)
	}
	if n, ok := p.Compose.Networks["default"]; !ok || n.Name != p.Name+"_default" {
		t.Errorf("default network %+v missing or misnamed", n)
	}
	ext := p.Networks["default"]
	if ext.IPv6 != IPv6SLAAC || !ext.DHCP || ext.Outbound != OutboundNAT || ext.Isolated {
		t.Errorf("network defaults %+v", ext)
	}
	if p.Settings.Domain != p.Name+".foldup.internal" {
		t.Errorf("domain %q", p.Settings.Domain)
	}
}

func TestVMFields(t *testing.T) {
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBfC0cg1y1Zf5e3t8kQ7v0aC5eX1s2k8hQp9fF0yJ3aB me@host"
	p := mustLoad(t, map[string]string{
		"vmlinuz": "", "initrd": "", "disk.qcow2": "", "ud.yaml": "#cloud-config\n", "md.yaml": "", "nc.yaml": "",
		"id.pub": key + "\n",
		"foldup.yaml": `
name: shop
networks:
  lan:
    x-foldup: {isolated: true, multicast: [239.1.2.3, "ff05::2"], ipv6: stable-privacy, dhcp: false}
  wan:
    internal: true
services:
  db:
    image: postgres
    depends_on:
      web: {condition: service_healthy}
vms:
  web:
    image: ./disk.qcow2
    kernel: vmlinuz
    initrd: ./initrd
    cmdline: console=ttyS0
    cpus: "${CPUS}"
    memory: 2g
    arch: aarch64
    qemu_args: [-device, virtio-rng-pci]
    networks:
      lan: {ipv4_address: 10.1.0.5, ipv6_address: "fd00::5", mac_address: "52:54:00:00:00:05", aliases: [www]}
      wan:
    cloud_init:
      user_data: ud.yaml
      meta_data: md.yaml
      network_config: nc.yaml
      ssh_authorized_keys: [~/id.pub, "` + key + `"]
    ports: ["8080:80", "127.0.0.1:5353:53/udp"]
    healthcheck: {test: [http, "8080/healthz"], interval: 2s, timeout: 1s, retries: 5, start_period: 10s}
    restart: on-failure:3
    stop_grace_period: 20s
    dns:
      - {name: table., txt: Users}
    environment: [A=1, B=two]
    labels: {tier: front}
  cache:
    image: https://example.test/cache.qcow2
    sha256: "sha256:` + strings.Repeat("ab", 32) + `"
    depends_on: [web]
    profiles: [extra]
dns:
  - {name: database., a: 10.1.0.9}
  - {name: v6, aaaa: "fd00::9", ttl: 60}
  - {name: alias, cname: database.}
  - {name: _pg._tcp, srv: {target: db, port: 5432, priority: 1, weight: "5"}}
  - {name: multi, txt: [a, b]}
x-foldup:
  domain: Shop.Test.
  upstream: ["127.0.0.1", "[::1]:5300"]
  address_pools: [{base: 10.200.0.0/16, size: 26}]
`}, "CPUS=4")
	vm := p.VMs["web"]
	wd := p.WorkingDir
	checks := []struct {
		name      string
		got, want any
	}{
		{"image", vm.Image, filepath.Join(wd, "disk.qcow2")},
		{"initrd", vm.Initrd, filepath.Join(wd, "initrd")},
		{"cmdline", vm.Cmdline, "console=ttyS0"},
		{"cpus", vm.CPUs, 4},
		{"memory", vm.Memory, int64(2 << 30)},
		{"arch", vm.Arch, "aarch64"},
		{"qemu_args", strings.Join(vm.QemuArgs, " "), "-device virtio-rng-pci"},
		{"lan", *vm.Networks["lan"], VMNetwork{IPv4: "10.1.0.5", IPv6: "fd00::5", MAC: "52:54:00:00:00:05", Aliases: []string{"www"}}},
		{"wan", *vm.Networks["wan"], VMNetwork{}},
		{"user_data", vm.CloudInit.UserData, filepath.Join(wd, "ud.yaml")},
		{"network_config", vm.CloudInit.NetworkConfig, filepath.Join(wd, "nc.yaml")},
		{"keys", strings.Join(vm.CloudInit.SSHAuthorizedKeys, "|"), key + "|" + key},
		{"ports", len(vm.Ports), 2},
		{"port1", vm.Ports[1].HostIP + " " + vm.Ports[1].Published + " " + vm.Ports[1].Protocol, "127.0.0.1 5353 udp"},
		{"healthcheck", strings.Join(vm.HealthCheck.Test, " "), "http 8080/healthz"},
		{"interval", time.Duration(vm.HealthCheck.Interval), 2 * time.Second},
		{"timeout", time.Duration(vm.HealthCheck.Timeout), time.Second},
		{"start_period", time.Duration(vm.HealthCheck.StartPeriod), 10 * time.Second},
		{"retries", vm.HealthCheck.Retries, 5},
		{"restart", vm.Restart, "on-failure:3"},
		{"stop_grace_period", time.Duration(*vm.StopGracePeriod), 20 * time.Second},
		{"vm dns", vm.DNS[0].Type() + " " + vm.DNS[0].TXT[0], "TXT Users"},
		{"environment", vm.Environment["B"], "two"},
		{"labels", vm.Labels["tier"], "front"},
		{"cache disabled", p.Disabled["cache"] != nil && p.VMs["cache"] == nil, true},
		{"sha256", p.Disabled["cache"].SHA256, strings.Repeat("ab", 32)},
		{"cache deps", p.Disabled["cache"].DependsOn["web"], types.ServiceDependency{Condition: "service_started", Required: true}},
		{"service->vm dep", p.ServiceDeps["db"]["web"], types.ServiceDependency{Condition: "service_healthy", Required: true}},
		{"compose dep stripped", len(p.Compose.Services["db"].DependsOn), 0},
		{"records", len(p.DNS), 5},
		{"srv", *p.DNS[3].SRV, SRV{Target: "db", Port: 5432, Priority: 1, Weight: 5}},
		{"ttl", p.DNS[1].TTL, uint32(60)},
		{"multi txt", strings.Join(p.DNS[4].TXT, ","), "a,b"},
		{"domain", p.Settings.Domain, "shop.test"},
		{"upstream", strings.Join(p.Settings.Upstream, " "), "127.0.0.1:53 [::1]:5300"},
		{"pool", p.Settings.AddressPools[0].Base.String() + " " + string(rune('0'+p.Settings.AddressPools[0].Size/10)), "10.200.0.0/16 2"},
		{"lan ext", p.Networks["lan"].Isolated && !p.Networks["lan"].DHCP && p.Networks["lan"].IPv6 == IPv6StablePrivacy && p.Networks["lan"].Outbound == OutboundDrop, true},
		{"multicast", len(p.Networks["lan"].Multicast), 2},
		{"internal -> drop", p.Networks["wan"].Outbound, OutboundDrop},
		{"x- keys hidden", len(p.Compose.Extensions), 1}, // x-foldup only
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	// With the profile on, the VM is active.
	p2, err := Load(context.Background(), Options{Profiles: []string{"extra"}, Environ: []string{"CPUS=1", "HOME=" + wd}})
	if err != nil {
		t.Fatal(err)
	}
	if p2.VMs["cache"] == nil {
		t.Error("profile extra did not enable cache")
	}
}

// TestErrors checks the exact message, file, line and column of every
// error the loader reports.
func TestErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files map[string]string
		env   []string
		want  string // all errors, one a line
	}{
		{"yaml syntax", map[string]string{"foldup.yaml": "services:\n  a: [\n"},
			nil, "foldup.yaml:2:6: did not find expected node content (the flow sequence [ opened here is not closed before the end of the file)"},
		// yaml.v3 said line 3, the line before the [, and no column.
		{"unclosed flow sequence", map[string]string{"foldup.yaml": "services:\n  web:\n    image: nginx\n    ports: [80, 81\n    command: x\n"},
			nil, "foldup.yaml:5:5: did not find expected ',' or ']' (the flow sequence [ opened at 4:12 is not closed)"},
		{"unclosed flow mapping", map[string]string{"foldup.yaml": "services:\n  web: {image: x\n  db: y\n"},
			nil, "foldup.yaml:3:3: did not find expected ',' or '}' (the flow mapping { opened at 2:8 is not closed)"},
		{"key out of place", map[string]string{"foldup.yaml": "services:\n  web:\n    image: x\n   bad: y\n"},
			nil, "foldup.yaml:4:4: did not find expected key"},
		{"service port out of range", map[string]string{"foldup.yaml": "services:\n  web:\n    image: nginx\n    ports: [\"8080:80\", \"99999:80\", {target: 80, published: \"70000\"}]\n"},
			nil, "foldup.yaml:4:24: services.web.ports.1: invalid hostPort: 99999\nfoldup.yaml:4:36: services.web.ports.2: invalid hostPort: 70000"},
		{"not a mapping", map[string]string{"foldup.yaml": "- a\n"},
			nil, "foldup.yaml:1:1: top-level object must be a mapping"},
		{"duplicate key", map[string]string{"foldup.yaml": "vms:\n  a: {kernel: k}\n  a: {kernel: k}\n", "k": ""},
			nil, "foldup.yaml:3:3: vms.a: duplicate key"},
		{"unknown top-level key", map[string]string{"foldup.yaml": "servics: {}\n"},
			nil, `foldup.yaml:1:1: servics: unknown key "servics" (did you mean "services"?)`},
		{"unknown service key", map[string]string{"foldup.yaml": "services:\n  a:\n    image: x\n    imgae: y\n"},
			nil, `foldup.yaml:4:5: services.a.imgae: unknown key "imgae" (did you mean "image"?)`},
		{"unknown vm key", map[string]string{"foldup.yaml": "vms:\n  a:\n    kernel: k\n    cpu: 2\n", "k": ""},
			nil, `foldup.yaml:4:5: vms.a.cpu: unknown key "cpu" (did you mean "cpus"?)`},
		{"unknown network x-foldup key", map[string]string{"foldup.yaml": "networks:\n  lan:\n    x-foldup: {isolate: true}\n"},
			nil, `foldup.yaml:3:16: networks.lan.x-foldup.isolate: unknown key "isolate" (did you mean "isolated"?)`},
		{"schema type", map[string]string{"foldup.yaml": "services:\n  a:\n    image: [x]\n"},
			nil, "foldup.yaml:3:12: services.a.image: must be a string, not list"},
		{"interpolation required", map[string]string{"foldup.yaml": "services:\n  a:\n    image: ${IMG:?set IMG}\n"},
			nil, "foldup.yaml:3:12: services.a.image: required variable IMG is missing a value: set IMG"},
		{"interpolation syntax", map[string]string{"foldup.yaml": "services:\n  a:\n    image: x\n    command: [\"${\"]\n"},
			nil, `foldup.yaml:4:15: services.a.command.0: invalid interpolation "${" (write $$ for a literal $)`},
		{"no boot source", map[string]string{"foldup.yaml": "vms:\n  a:\n    cpus: 1\n"},
			nil, "foldup.yaml:2:3: vms.a: needs an image or a kernel to boot"},
		{"initrd without kernel", map[string]string{"foldup.yaml": "vms:\n  a:\n    image: d\n    initrd: d\n", "d": ""},
			nil, "foldup.yaml:4:5: vms.a.initrd: needs kernel"},
		{"url without sha256", map[string]string{"foldup.yaml": "vms:\n  a:\n    image: https://x.test/d.qcow2\n"},
			nil, "foldup.yaml:3:12: vms.a.image: a downloaded image needs sha256, to know it is the one meant"},
		{"bad sha256", map[string]string{"foldup.yaml": "vms:\n  a:\n    image: https://x.test/d\n    sha256: abc\n"},
			nil, `foldup.yaml:4:13: vms.a.sha256: "abc" is not a SHA-256 digest (64 hex digits)`},
		{"missing files", map[string]string{"foldup.yaml": "vms:\n  a:\n    kernel: ./k\n    initrd: /nonexistent/i\n    cloud_init: {user_data: u}\n"},
			nil, "foldup.yaml:3:13: vms.a.kernel: ./k: no such file\nfoldup.yaml:4:13: vms.a.initrd: /nonexistent/i: no such file\nfoldup.yaml:5:29: vms.a.cloud_init.user_data: u: no such file"},
		{"vm names", map[string]string{"foldup.yaml": "vms:\n  \"..\": {kernel: k}\n  -x: {kernel: k}\n  a.b: {kernel: k}\n", "k": ""},
			nil, `foldup.yaml:2:3: vms...: ".." is not a VM name: it is the VM's hostname, DNS name and directory, so letters, digits, - and _ (at most 63, no - first or last)` + "\n" +
				`foldup.yaml:3:3: vms.-x: "-x" is not a VM name: it is the VM's hostname, DNS name and directory, so letters, digits, - and _ (at most 63, no - first or last)` + "\n" +
				`foldup.yaml:4:3: vms.a.b: "a.b" is not a VM name: it is the VM's hostname, DNS name and directory, so letters, digits, - and _ (at most 63, no - first or last)`},
		{"service names", map[string]string{"foldup.yaml": "services:\n  \"..\": {image: x}\n  .x: {image: x}\n  web.v2_a-1: {image: x}\n"},
			nil, `foldup.yaml:2:3: services...: ".." is not a service name: a letter or digit first, then letters, digits, ., - or _` + "\n" +
				`foldup.yaml:3:3: services..x: ".x" is not a service name: a letter or digit first, then letters, digits, ., - or _`},
		{"dependency cycle", map[string]string{"foldup.yaml": "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on:\n      a: {condition: service_started}\n"},
			nil, "foldup.yaml:4:18: services.a.depends_on.b: dependency cycle detected: a -> b -> a"},
		{"directory as file", map[string]string{"foldup.yaml": "vms:\n  a:\n    kernel: sub\n", "sub/x": ""},
			nil, "foldup.yaml:3:13: vms.a.kernel: sub is a directory, not a file"},
		{"cpus", map[string]string{"foldup.yaml": "vms:\n  a: {kernel: k, cpus: 0}\n  b: {kernel: k, cpus: many}\n", "k": ""},
			nil, "foldup.yaml:2:24: vms.a.cpus: must be between 1 and 255, not 0\nfoldup.yaml:3:24: vms.b.cpus: many is not a whole number"},
		{"memory", map[string]string{"foldup.yaml": "vms:\n  a: {kernel: k, memory: 1m}\n  b: {kernel: k, memory: lots}\n", "k": ""},
			nil, "foldup.yaml:2:26: vms.a.memory: must be at least 16 MiB, not 1MiB\nfoldup.yaml:3:26: vms.b.memory: lots is not a size (bytes, or a number with a unit: 512m, 2g)"},
		{"accel", map[string]string{"foldup.yaml": "x-foldup: {accel: fast}\nvms:\n  a: {kernel: k, accel: hvf}\n", "k": ""},
			nil, `foldup.yaml:1:19: x-foldup.accel: "fast" is not an accelerator: auto, kvm or tcg` + "\n" +
				`foldup.yaml:3:25: vms.a.accel: "hvf" is not an accelerator: auto, kvm or tcg`},
		{"arch", map[string]string{"foldup.yaml": "vms:\n  a: {kernel: k, arch: mips}\n", "k": ""},
			nil, `foldup.yaml:2:24: vms.a.arch: "mips" is not a supported architecture (x86_64, aarch64, riscv64)`},
		{"vm addresses", map[string]string{"foldup.yaml": "networks: {lan: {}}\nvms:\n  a:\n    kernel: k\n    networks:\n      lan: {ipv4_address: 10.0.0.300, ipv6_address: 10.0.0.1, mac_address: 01:00:5e:00:00:01}\n", "k": ""},
			nil, `foldup.yaml:6:27: vms.a.networks.lan.ipv4_address: "10.0.0.300" is not an IPv4 address` + "\n" +
				`foldup.yaml:6:53: vms.a.networks.lan.ipv6_address: "10.0.0.1" is not an IPv6 address` + "\n" +
				`foldup.yaml:6:76: vms.a.networks.lan.mac_address: "01:00:5e:00:00:01" is a multicast address; a NIC needs a unicast one`},
		{"bad mac", map[string]string{"foldup.yaml": "vms:\n  a:\n    kernel: k\n    networks: {default: {mac_address: \"zz\"}}\n", "k": ""},
			nil, `foldup.yaml:4:39: vms.a.networks.default.mac_address: "zz" is not a MAC address (six hex bytes: 52:54:00:12:34:56)`},
		{"undefined network", map[string]string{"foldup.yaml": "vms:\n  a:\n    kernel: k\n    networks: [lan]\n", "k": ""},
			nil, `foldup.yaml:4:16: vms.a.networks.lan: undefined network "lan"`},
		{"external network", map[string]string{"foldup.yaml": "networks: {ext: {external: true}}\nvms:\n  a:\n    kernel: k\n    networks: [ext]\n", "k": ""},
			nil, `foldup.yaml:5:16: vms.a.networks.ext: network "ext" is external: foldup attaches VMs only to networks it creates`},
		{"name clash", map[string]string{"foldup.yaml": "services:\n  a: {image: x}\nvms:\n  a: {kernel: k}\n", "k": ""},
			nil, `foldup.yaml:4:3: vms.a: name already used by service "a": VMs and services share one namespace (and DNS)`},
		{"depends on undefined", map[string]string{"foldup.yaml": "vms:\n  a:\n    kernel: k\n    depends_on: [ghost]\n", "k": ""},
			nil, `foldup.yaml:4:18: vms.a.depends_on.ghost: depends on undefined service or VM "ghost"`},
		{"depends on self", map[string]string{"foldup.yaml": "vms:\n  a:\n    kernel: k\n    depends_on: {a: {condition: service_started}}\n", "k": ""},
			nil, `foldup.yaml:4:18: vms.a.depends_on.a: a depends on itself`},
		{"depends on disabled", map[string]string{"foldup.yaml": "vms:\n  a: {kernel: k, depends_on: [b]}\n  b: {kernel: k, profiles: [x]}\n", "k": ""},
			nil, `foldup.yaml:2:31: vms.a.depends_on.b: "b" is disabled by its profiles; enable one of them or set required: false`},
		{"bad condition", map[string]string{"foldup.yaml": "vms:\n  a: {kernel: k, depends_on: {b: {condition: up}}}\n  b: {kernel: k}\n", "k": ""},
			nil, `foldup.yaml:2:46: vms.a.depends_on.b.condition: must be one of: service_started, service_healthy, service_completed_successfully`},
		{"healthchecks", map[string]string{"foldup.yaml": `vms:
  a: {kernel: k, healthcheck: {test: [tcp, "99999"]}}
  b: {kernel: k, healthcheck: {test: [http, "x/y"]}}
  c: {kernel: k, healthcheck: {test: [serial, "("]}}
  d: {kernel: k, healthcheck: {test: [ping, x]}}
  e: {kernel: k, healthcheck: {test: [tcp]}}
  f: {kernel: k, healthcheck: {test: [tcp, "22"], interval: 0s, retries: 0}}
  g: {kernel: k, healthcheck: {test: [tcp, "22"], interval: soon}}
`, "k": ""},
			nil, `foldup.yaml:2:44: vms.a.healthcheck.test.1: "99999" is not a port number` + "\n" +
				`foldup.yaml:3:45: vms.b.healthcheck.test.1: "x/y" is not PORT, /PATH or PORT/PATH` + "\n" +
				"foldup.yaml:4:47: vms.c.healthcheck.test.1: \"(\" is not a regular expression: error parsing regexp: missing closing ): `(`\n" +
				`foldup.yaml:5:39: vms.d.healthcheck.test.0: "ping" is not a VM health check; use tcp, http, serial or NONE` + "\n" +
				`foldup.yaml:6:38: vms.e.healthcheck.test: takes two items, [KIND, ARGUMENT]: ["tcp", PORT], ["http", PATH-or-PORT] or ["serial", REGEX]` + "\n" +
				"foldup.yaml:7:61: vms.f.healthcheck.interval: must be positive\n" +
				"foldup.yaml:7:74: vms.f.healthcheck.retries: must be at least 1\n" +
				"foldup.yaml:8:61: vms.g.healthcheck.interval: soon is not a valid duration"},
		{"restart", map[string]string{"foldup.yaml": "vms:\n  a: {kernel: k, restart: sometimes}\n", "k": ""},
			nil, `foldup.yaml:2:27: vms.a.restart: "sometimes" is not a restart policy: no, always, on-failure[:N] or unless-stopped`},
		{"vm port without host", map[string]string{"foldup.yaml": "vms:\n  a: {kernel: k, ports: [\"80\"]}\n", "k": ""},
			nil, `foldup.yaml:2:26: vms.a.ports.0: "80" needs a host port (HOST:GUEST): a VM's ports are forwarded from fixed host ports`},
		{"vm port syntax", map[string]string{"foldup.yaml": "vms:\n  a: {kernel: k, ports: [\"x:80\"]}\n", "k": ""},
			nil, `foldup.yaml:2:26: vms.a.ports.0: invalid hostPort: x`},
		{"cloud-init iso excludes", map[string]string{"foldup.yaml": "vms:\n  a:\n    kernel: k\n    cloud_init: {iso: k, user_data: k}\n", "k": ""},
			nil, `foldup.yaml:4:18: vms.a.cloud_init.iso: a ready seed ISO excludes user_data, meta_data, network_config and ssh_authorized_keys`},
		{"not a key file", map[string]string{"foldup.yaml": "vms:\n  a:\n    kernel: k\n    cloud_init: {ssh_authorized_keys: [k2]}\n", "k": "", "k2": "hello\n"},
			nil, `foldup.yaml:4:40: vms.a.cloud_init.ssh_authorized_keys.0: k2 does not hold an SSH public key`},
		{"records", map[string]string{"foldup.yaml": `dns:
  - {name: a, a: "::1"}
  - {name: b, aaaa: 1.2.3.4}
  - {name: "c d", txt: x}
  - {name: e}
  - {name: f, a: 1.2.3.4, txt: x}
  - {name: g, cname: "-bad-"}
  - {name: h, srv: {target: t, port: 70000}}
  - {name: i, a: 1.2.3.4, ttl: -1}
  - {a: 1.2.3.4}
`},
			nil, `foldup.yaml:2:18: dns.0.a: "::1" is not an IPv4 address` + "\n" +
				`foldup.yaml:3:21: dns.1.aaaa: "1.2.3.4" is not an IPv6 address` + "\n" +
				`foldup.yaml:4:12: dns.2.name: "c d" is not a DNS name (label "c d")` + "\n" +
				"foldup.yaml:5:5: dns.3: needs one of a, aaaa, txt, cname, srv\n" +
				"foldup.yaml:6:5: dns.4: has a and txt: a record has exactly one of a, aaaa, txt, cname, srv\n" +
				`foldup.yaml:7:22: dns.5.cname: "-bad-" is not a DNS name (label "-bad-")` + "\n" +
				"foldup.yaml:8:38: dns.6.srv.port: 70000 is not a number from 0 to 65535\n" +
				"foldup.yaml:9:32: dns.7.ttl: -1 is not a TTL in seconds\n" +
				`foldup.yaml:10:5: dns.8: missing required key "name"`},
		{"network x-foldup", map[string]string{"foldup.yaml": `networks:
  a: {x-foldup: {ipv6: eui, multicast: [10.0.0.1], outbound: "bad chain!"}}
  b: {x-foldup: {isolated: true, outbound: nat}}
`},
			nil, `foldup.yaml:2:24: networks.a.x-foldup.ipv6: "eui" is not an IPv6 mode: slaac, static or stable-privacy` + "\n" +
				`foldup.yaml:2:41: networks.a.x-foldup.multicast.0: "10.0.0.1" is not a multicast group address` + "\n" +
				`foldup.yaml:2:62: networks.a.x-foldup.outbound: "bad chain!" is not nat, drop or an nftables chain name` + "\n" +
				`foldup.yaml:3:44: networks.b.x-foldup.outbound: an isolated network sends nothing outside; remove outbound or isolated`},
		{"settings", map[string]string{"foldup.yaml": `x-foldup:
  domain: "bad domain"
  upstream: [nowhere]
  address_pools: [{base: "fd00::/8"}, {base: 10.0.0.0/16, size: 8}]
`},
			nil, `foldup.yaml:2:11: x-foldup.domain: "bad domain" is not a DNS name (label "bad domain")` + "\n" +
				`foldup.yaml:3:14: x-foldup.upstream.0: "nowhere" is not IP or IP:PORT` + "\n" +
				`foldup.yaml:4:26: x-foldup.address_pools.0.base: "fd00::/8" is not an IPv4 prefix` + "\n" +
				`foldup.yaml:4:65: x-foldup.address_pools.1.size: must be between the base's prefix length (16) and 29, not 8`},
		{"compose refs", map[string]string{"foldup.yaml": `services:
  a:
    image: x
    networks: [nope]
    depends_on: [ghost]
    volumes: ["data:/d", ":/bad"]
    env_file: missing.env
`},
			nil, `foldup.yaml:4:16: services.a.networks.0: undefined network "nope"` + "\n" +
				`foldup.yaml:5:18: services.a.depends_on.ghost: depends on undefined service or VM "ghost"` + "\n" +
				`foldup.yaml:6:15: services.a.volumes.0: undefined volume "data"` + "\n" +
				`foldup.yaml:6:26: services.a.volumes.1: ":/bad": invalid spec: :/bad: empty section between colons` + "\n" +
				"foldup.yaml:7:15: services.a.env_file: env file missing.env not found"},
		{"container_name with replicas", map[string]string{"foldup.yaml": "services:\n  a:\n    image: x\n    scale: 2\n    container_name: cc\n"},
			nil, "foldup.yaml:5:21: services.a.container_name: a container name is unique, so it cannot name 2 replicas"},
		{"compose-go's own check", map[string]string{"foldup.yaml": "services:\n  a:\n    image: x\n    scale: 2\n    deploy: {replicas: 3}\n"},
			nil, "foldup.yaml:2:3: services.a: can't set distinct values on 'scale' and 'deploy.replicas'"},
		{"bad project name", map[string]string{"foldup.yaml": "name: Shop!\nservices: {a: {image: x}}\n"},
			nil, `foldup.yaml:1:7: name: project name "Shop!" must contain only lowercase letters, digits, dashes and underscores, and start with a letter or digit`},
		// Regressions found in review.
		{"memory zero or negative", map[string]string{"foldup.yaml": "vms:\n  a: {kernel: k, memory: 0}\n  b: {kernel: k, memory: -5}\n", "k": ""},
			nil, "foldup.yaml:2:26: vms.a.memory: 0 is not a size (bytes, or a number with a unit: 512m, 2g)\nfoldup.yaml:3:26: vms.b.memory: -5 is not a size (bytes, or a number with a unit: 512m, 2g)"},
		{"every missing key, every failing entry", map[string]string{"foldup.yaml": "vms:\n  a: {kernel: k, depends_on: {x: {}, b: {}}}\n  b: {kernel: k}\ndns:\n  - {name: s, srv: {weight: 1}}\n", "k": ""},
			nil, `foldup.yaml:2:31: vms.a.depends_on.x: depends on undefined service or VM "x"` + "\n" +
				`foldup.yaml:2:34: vms.a.depends_on.x: missing required key "condition"` + "\n" +
				`foldup.yaml:2:41: vms.a.depends_on.b: missing required key "condition"` + "\n" +
				`foldup.yaml:5:20: dns.0.srv: missing required keys "port", "target"`},
		{"infinity", map[string]string{"foldup.yaml": "vms:\n  a: {kernel: k, cpus: .inf}\n", "k": ""},
			nil, "foldup.yaml:2:24: vms.a.cpus: +Inf is not a whole number"},
		{"merge keys cannot multiply past the node budget", map[string]string{"foldup.yaml": laughs(9)},
			nil, "foldup.yaml:2:15: x-6: document too large: more than 1000000 nodes after alias expansion"},
		{"merge key must be a mapping", map[string]string{"foldup.yaml": "services:\n  a:\n    <<: [1]\n    image: x\n"},
			nil, "foldup.yaml:3:9: services.a: merge key (<<) must refer to a mapping"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadFiles(t, tt.files, tt.env...)
			if err == nil {
				t.Fatalf("no error; want:\n%s", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
			for _, e := range Errors(err) {
				if e.Pos.File != "foldup.yaml" || e.Pos.Line == 0 {
					t.Errorf("error without position: %v", e)
				}
			}
		})
	}
}

// TestMergeFiles checks that -f files merge as compose merges them, VMs
// and dns included, and that errors point into the file that set the value.
func TestMergeFiles(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("k", "")
	write("base.yaml", `
services:
  db: {image: pg, environment: {A: "1"}}
vms:
  web:
    kernel: k
    cpus: 1
    memory: 1g
    ports: ["8080:80"]
    networks: [default]
dns:
  - {name: one, a: 10.0.0.1}
`)
	write("over.yaml", `
services:
  db: {environment: {B: "2"}}
vms:
  web:
    cpus: 4
    ports: ["8443:443"]
    networks: {default: {ipv4_address: 10.0.0.9}}
dns:
  - {name: two, a: 10.0.0.2}
`)
	p, err := Load(t.Context(), Options{Files: []string{"base.yaml", "over.yaml"}, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	vm := p.VMs["web"]
	if vm.CPUs != 4 || vm.Memory != 1<<30 || len(vm.Ports) != 2 || vm.Networks["default"].IPv4 != "10.0.0.9" {
		t.Errorf("merged vm: cpus %d memory %d ports %v networks %+v", vm.CPUs, vm.Memory, vm.Ports, vm.Networks["default"])
	}
	env := p.Compose.Services["db"].Environment
	if *env["A"] != "1" || *env["B"] != "2" {
		t.Errorf("merged service environment %v", env)
	}
	if len(p.DNS) != 2 || p.DNS[1].Name != "two" {
		t.Errorf("dns %v", p.DNS)
	}
	if got := p.Locate("vms", "web", "cpus").String(); got != "over.yaml:6:11" {
		t.Errorf("cpus located at %s, want the override", got)
	}
	if got := p.Locate("vms", "web", "memory").String(); got != "base.yaml:8:13" {
		t.Errorf("memory located at %s, want the base", got)
	}

	write("bad.yaml", "vms:\n  web:\n    cpus: 0\n")
	_, err = Load(t.Context(), Options{Files: []string{"base.yaml", "bad.yaml"}, Environ: []string{}})
	if err == nil || err.Error() != "bad.yaml:3:11: vms.web.cpus: must be between 1 and 255, not 0" {
		t.Errorf("error %v, want it in bad.yaml", err)
	}
}

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"compose.yaml", "foldup.yaml", "foldup.override.yaml"} {
		os.WriteFile(filepath.Join(dir, f), []byte("services: {x: {image: i}}\n"), 0o644)
	}
	t.Chdir(sub)
	p, err := Load(t.Context(), Options{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "foldup.yaml"), filepath.Join(dir, "foldup.override.yaml")}
	if !reflect.DeepEqual(p.Files, want) {
		t.Errorf("files %v, want %v (foldup.yaml first, found in a parent, with its override)", p.Files, want)
	}
	if p.Name != filepath.Base(dir) {
		t.Errorf("name %q, want the directory of the file", p.Name)
	}
	if _, err := Load(t.Context(), Options{WorkingDir: sub, Environ: []string{}}); err != ErrNoFile {
		t.Errorf("with --project-directory and no file there: %v, want ErrNoFile", err)
	}
}

func TestDotEnvAndPrecedence(t *testing.T) {
	p := mustLoad(t, map[string]string{
		".env":        "IMG=from-dotenv\nCPUS=2\nCOMPOSE_PROJECT_NAME=fromenv\n",
		"k":           "",
		"foldup.yaml": "name: fromfile\nservices: {a: {image: \"${IMG}\"}}\nvms: {v: {kernel: k, cpus: \"${CPUS}\"}}\n",
	}, "CPUS=3")
	if got := p.Compose.Services["a"].Image; got != "from-dotenv" {
		t.Errorf("image %q: .env not read", got)
	}
	if p.VMs["v"].CPUs != 3 {
		t.Errorf("cpus %d: the process environment must win over .env", p.VMs["v"].CPUs)
	}
	if p.Name != "fromenv" {
		t.Errorf("name %q: COMPOSE_PROJECT_NAME wins over name:", p.Name)
	}
}

// laughs returns a small file whose merge keys expand tenfold per level.
func laughs(levels int) string {
	var b strings.Builder
	b.WriteString("x-0: &a0 {k: v}\n")
	for k := 1; k <= levels; k++ {
		refs := make([]string, 10)
		for i := range refs {
			refs[i] = "*a" + strconv.Itoa(k-1)
		}
		b.WriteString("x-" + strconv.Itoa(k) + ": &a" + strconv.Itoa(k) + " {<<: [" + strings.Join(refs, ", ") + "]}\n")
	}
	return b.String()
}

// TestErrorsStable: the same bad file gives the same errors every time
// (the validator's own order is a map's).
func TestErrorsStable(t *testing.T) {
	files := map[string]string{"foldup.yaml": "vms:\n  a: {kernel: k, depends_on: {x: {}, b: {}, c: {}}}\n  b: {kernel: k}\n  c: {kernel: k}\n", "k": ""}
	_, first := loadFiles(t, files)
	for range 20 {
		if _, err := Load(t.Context(), Options{Environ: []string{}}); err.Error() != first.Error() {
			t.Fatalf("errors differ between runs:\n%v\n---\n%v", first, err)
		}
	}
}

// TestMergeKeepsBaseSettings: an override naming a network without
// settings keeps the base's address; a repeated port is kept once.
func TestMergeKeepsBaseSettings(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	os.WriteFile("k", nil, 0o644)
	os.WriteFile("a.yaml", []byte("networks: {lan: {}}\nvms: {v: {kernel: k, ports: [\"8080:80\"], networks: {lan: {ipv4_address: 10.1.0.5}}}}\n"), 0o644)
	os.WriteFile("b.yaml", []byte("vms: {v: {ports: [\"8080:80\"], networks: [lan]}}\n"), 0o644)
	p, err := Load(t.Context(), Options{Files: []string{"a.yaml", "b.yaml"}, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	vm := p.VMs["v"]
	if vm.Networks["lan"].IPv4 != "10.1.0.5" || len(vm.Ports) != 1 {
		t.Errorf("networks %+v ports %v", vm.Networks["lan"], vm.Ports)
	}
}

// With NameOnly, the files a project names need not exist (down of a
// project whose images were deleted); the file's own errors still count.
func TestLoadNameOnly(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "foldup.yaml")
	if err := os.WriteFile(file, []byte("name: gone\nvms:\n  a:\n    kernel: ./k\n    initrd: /nonexistent/i\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(t.Context(), Options{Files: []string{file}}); err == nil || !strings.Contains(err.Error(), "vms.a.kernel: ./k: no such file") {
		t.Fatalf("without NameOnly: want the missing kernel, got %v", err)
	}
	p, err := Load(t.Context(), Options{Files: []string{file}, NameOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "gone" || p.VMs["a"].Kernel != filepath.Join(dir, "k") {
		t.Errorf("got name %q, kernel %q", p.Name, p.VMs["a"].Kernel)
	}
	if err := os.WriteFile(file, []byte("name: gone\nvms:\n  a:\n    kernel: ./k\n    cpus: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(t.Context(), Options{Files: []string{file}, NameOnly: true}); err == nil || !strings.Contains(err.Error(), "foldup.yaml:5:11: vms.a.cpus: must be between 1 and 255, not 0") {
		t.Errorf("NameOnly with a bad field: got %v", err)
	}
}

func TestLabelAndChainNames(t *testing.T) {
	for _, c := range []struct {
		s     string
		label bool
		chain bool
	}{
		{"a", true, true},
		{"_", true, false},
		{"a-b", true, false},
		{"a_b", true, true},
		{"-a", false, false},
		{"a-", false, false},
		{"1a", true, false},
		{"", false, false},
		{"a.b", false, false},
		{strings.Repeat("a", 63), true, true},
		{strings.Repeat("a", 64), false, true},
		{strings.Repeat("a", 255), false, true},
		{strings.Repeat("a", 256), false, false},
	} {
		if got := isLabel(c.s); got != c.label {
			t.Errorf("isLabel(%q) = %v, want %v", c.s, got, c.label)
		}
		if got := isChain(c.s); got != c.chain {
			t.Errorf("isChain(%q) = %v, want %v", c.s, got, c.chain)
		}
	}
}

// TestProjectErrorf: the planner's and the runtime's errors about a loaded
// file carry its position and field, and wrap what they say.
func TestProjectErrorf(t *testing.T) {
	p := mustLoad(t, map[string]string{"k": "", "foldup.yaml": "vms:\n  a:\n    kernel: k\n"})
	err := p.Errorf([]string{"vms", "a", "kernel"}, "cannot boot: %w", io.ErrUnexpectedEOF)
	if got, want := err.Error(), "foldup.yaml:3:13: vms.a.kernel: cannot boot: unexpected EOF"; got != want {
		t.Errorf("Errorf = %q, want %q", got, want)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Error("Errorf does not wrap its %w")
	}
	if got, want := p.KeyErrorf([]string{"vms", "a"}, "no qemu").Error(), "foldup.yaml:2:3: vms.a: no qemu"; got != want {
		t.Errorf("KeyErrorf = %q, want %q", got, want)
	}
	if es := Errors(err); len(es) != 1 || es[0].Pos.Line != 3 {
		t.Errorf("Errors(Errorf) = %v", es)
	}
}

// TestWarnings: a service key foldup does not act on is named with its
// place and why; supported keys (blkio_config) and x- extensions are not.
func TestWarnings(t *testing.T) {
	p := mustLoad(t, map[string]string{"foldup.yaml": "services:\n  app:\n    image: x\n    blkio_config: {weight: 300}\n    links: [db]\n    x-note: mine\n    umask: \"0022\"\n  db: {image: y}\n"})
	var got []string
	for _, w := range p.Warnings() {
		got = append(got, w.String())
	}
	want := []string{
		"foldup.yaml:5:5: services.app.links: foldup's DNS resolves every member by its name and aliases; ignored",
		"foldup.yaml:7:5: services.app.umask: not in the engine's API; ignored",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Warnings = %q, want %q", got, want)
	}
}
