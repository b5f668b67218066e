//go:build linux

package containers

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/blkiodev"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-connections/nat"
	"github.com/docker/go-units"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// specOf loads a project of one service "app" (plus what extra gives:
// other services, top-level sections) written as svc's keys, plans it and
// converts app's first member to the engine's create request. No engine,
// no root.
func specOf(t *testing.T, svc, extra string) *Spec {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{"app.env": "FROM_FILE=yes\n", "secret.txt": "s3cret\n", "config.txt": "c=1\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "compose.yaml")
	body := "name: conv\nservices:\n  app:\n    image: busybox:1\n" + indent(svc, "    ") + extra
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := spec.Load(t.Context(), spec.Options{Files: []string{file}, Environ: []string{"HOME=" + dir}})
	if err != nil {
		t.Fatalf("load:\n%s\n%v", body, err)
	}
	pl, err := planner.Compute(p, planner.Observed{}, planner.Intent{})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	for _, m := range pl.Members {
		if m.Service == "app" {
			cs, err := SpecFor(p, pl, m, filepath.Join(dir, "state"))
			if err != nil {
				t.Fatalf("SpecFor: %v", err)
			}
			return cs
		}
	}
	t.Fatal("no member of app in the plan")
	return nil
}

func indent(s, by string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if l != "" {
			b.WriteString(by + l)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestContainerSpec converts a service with each Compose key foldup acts
// on and checks where the key lands in the engine's create request. Every
// key of spec.SupportedServiceKeys has a case: a key added there without
// one fails.
func TestContainerSpec(t *testing.T) {
	type check func(t *testing.T, cs *Spec)
	expect := func(t *testing.T, what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", what, got, want)
		}
	}
	one := func(x int64) *int64 { return &x }
	cases := []struct {
		key, svc, extra string
		check           check
	}{
		{"build", "build: {context: .}\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "Image", cs.Config.Image, "busybox:1") // image: names the built image
		}},
		{"cap_add", "cap_add: [NET_ADMIN]\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "CapAdd", []string(cs.Host.CapAdd), []string{"NET_ADMIN"})
		}},
		{"cap_drop", "cap_drop: [ALL]\n", "", func(t *testing.T, cs *Spec) { expect(t, "CapDrop", []string(cs.Host.CapDrop), []string{"ALL"}) }},
		{"command", "command: [sleep, \"60\"]\n", "", func(t *testing.T, cs *Spec) { expect(t, "Cmd", []string(cs.Config.Cmd), []string{"sleep", "60"}) }},
		{"configs", "configs: [cfg]\n", "configs:\n  cfg: {file: ./config.txt}\n", func(t *testing.T, cs *Spec) {
			if !slices.ContainsFunc(cs.Host.Mounts, func(m mount.Mount) bool { return m.Target == "/cfg" && m.ReadOnly }) {
				t.Errorf("no read-only mount at /cfg: %+v", cs.Host.Mounts)
			}
		}},
		{"container_name", "container_name: my-app\n", "", func(t *testing.T, cs *Spec) { expect(t, "Name", cs.Name, "my-app") }},
		{"cpu_shares", "cpu_shares: 512\n", "", func(t *testing.T, cs *Spec) { expect(t, "CPUShares", cs.Host.CPUShares, int64(512)) }},
		{"cpus", "cpus: 1.5\n", "", func(t *testing.T, cs *Spec) { expect(t, "NanoCPUs", cs.Host.NanoCPUs, int64(1.5e9)) }},
		{"cpuset", "cpuset: \"0-1\"\n", "", func(t *testing.T, cs *Spec) { expect(t, "CpusetCpus", cs.Host.CpusetCpus, "0-1") }},
		{"depends_on", "depends_on: [db]\n", "  db: {image: busybox:1}\n", func(t *testing.T, cs *Spec) {
			expect(t, "Name", cs.Name, "conv-app-1") // an ordering: nothing in the request
		}},
		{"deploy", "deploy: {resources: {limits: {cpus: \"0.5\", memory: 64m, pids: 50}, reservations: {memory: 32m}}}\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "NanoCPUs", cs.Host.NanoCPUs, int64(0.5e9))
			expect(t, "Memory", cs.Host.Memory, int64(64<<20))
			expect(t, "MemoryReservation", cs.Host.MemoryReservation, int64(32<<20))
			expect(t, "PidsLimit", cs.Host.PidsLimit, one(50))
		}},
		{"devices", "devices: [\"/dev/null:/dev/nil:r\"]\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "Devices", cs.Host.Devices, []container.DeviceMapping{{PathOnHost: "/dev/null", PathInContainer: "/dev/nil", CgroupPermissions: "r"}})
		}},
		{"dns", "dns: [192.0.2.53]\n", "", func(t *testing.T, cs *Spec) { expect(t, "DNS", cs.Host.DNS, []string{"192.0.2.53"}) }},
		{"dns_opt", "dns_opt: [\"ndots:2\"]\n", "", func(t *testing.T, cs *Spec) { expect(t, "DNSOptions", cs.Host.DNSOptions, []string{"ndots:2"}) }},
		{"dns_search", "dns_search: [example.test]\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "DNSSearch", cs.Host.DNSSearch, []string{"example.test"})
		}},
		{"domainname", "domainname: example.test\n", "", func(t *testing.T, cs *Spec) { expect(t, "Domainname", cs.Config.Domainname, "example.test") }},
		{"entrypoint", "entrypoint: [/bin/sh, -c]\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "Entrypoint", []string(cs.Config.Entrypoint), []string{"/bin/sh", "-c"})
		}},
		{"env_file", "env_file: [app.env]\n", "", func(t *testing.T, cs *Spec) { expect(t, "Env", cs.Config.Env, []string{"FROM_FILE=yes"}) }},
		{"environment", "environment: {B: \"2\", A: \"1\", UNSET: null}\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "Env", cs.Config.Env, []string{"A=1", "B=2"})
		}},
		{"expose", "expose: [\"9000\", \"9001/udp\"]\n", "", func(t *testing.T, cs *Spec) {
			for _, p := range []string{"9000/tcp", "9001/udp"} {
				if _, ok := cs.Config.ExposedPorts[nat.Port(p)]; !ok {
					t.Errorf("%s not exposed: %v", p, cs.Config.ExposedPorts)
				}
			}
		}},
		{"extends", "extends: {service: base}\n", "  base: {image: busybox:1, working_dir: /from-base}\n", func(t *testing.T, cs *Spec) {
			expect(t, "WorkingDir", cs.Config.WorkingDir, "/from-base")
		}},
		{"extra_hosts", "extra_hosts: [\"db.example:192.0.2.5\"]\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "ExtraHosts", cs.Host.ExtraHosts, []string{"db.example:192.0.2.5"})
		}},
		{"group_add", "group_add: [\"100\"]\n", "", func(t *testing.T, cs *Spec) { expect(t, "GroupAdd", cs.Host.GroupAdd, []string{"100"}) }},
		{"healthcheck", "healthcheck: {test: [CMD, \"true\"], interval: 2s, timeout: 1s, retries: 3, start_period: 5s}\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "Healthcheck", cs.Config.Healthcheck, &container.HealthConfig{Test: []string{"CMD", "true"}, Interval: 2 * time.Second, Timeout: time.Second, Retries: 3, StartPeriod: 5 * time.Second})
		}},
		{"hostname", "hostname: apphost\n", "", func(t *testing.T, cs *Spec) { expect(t, "Hostname", cs.Config.Hostname, "apphost") }},
		{"image", "", "", func(t *testing.T, cs *Spec) { expect(t, "Image", cs.Config.Image, "busybox:1") }},
		{"init", "init: true\n", "", func(t *testing.T, cs *Spec) {
			if cs.Host.Init == nil || !*cs.Host.Init {
				t.Errorf("Init = %v", cs.Host.Init)
			}
		}},
		{"ipc", "ipc: host\n", "", func(t *testing.T, cs *Spec) { expect(t, "IpcMode", cs.Host.IpcMode, container.IpcMode("host")) }},
		{"labels", "labels: {team: db}\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "team label", cs.Config.Labels["team"], "db")
			expect(t, "project label", cs.Config.Labels[LabelProject], "conv")
		}},
		{"logging", "logging: {driver: json-file, options: {max-size: 1m}}\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "LogConfig", cs.Host.LogConfig, container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m"}})
		}},
		{"mac_address", "mac_address: \"02:42:0a:00:00:09\"\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "MacAddress", cs.Network[cs.First].MacAddress, "02:42:0a:00:00:09")
		}},
		{"mem_limit", "mem_limit: 128m\n", "", func(t *testing.T, cs *Spec) { expect(t, "Memory", cs.Host.Memory, int64(128<<20)) }},
		{"mem_reservation", "mem_reservation: 64m\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "MemoryReservation", cs.Host.MemoryReservation, int64(64<<20))
		}},
		{"network_mode", "network_mode: host\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "NetworkMode", cs.Host.NetworkMode, container.NetworkMode("host"))
			expect(t, "Hostname", cs.Config.Hostname, "")
		}},
		{"networks", "networks: {lan: {ipv4_address: 10.66.0.7, aliases: [api]}}\n", "networks:\n  lan: {ipam: {config: [{subnet: 10.66.0.0/24}]}}\n", func(t *testing.T, cs *Spec) {
			ep := cs.Network["conv_lan"]
			if ep == nil {
				t.Fatalf("no endpoint on conv_lan: %v", cs.Networks)
			}
			expect(t, "IPv4Address", ep.IPAMConfig.IPv4Address, "10.66.0.7")
			expect(t, "Aliases", ep.Aliases, []string{"app", "api"})
			expect(t, "DNS", cs.Host.DNS, []string{"10.66.0.1"}) // foldup's server
			expect(t, "DNSSearch", cs.Host.DNSSearch, []string{"conv.foldup.internal"})
		}},
		{"oom_score_adj", "oom_score_adj: 500\n", "", func(t *testing.T, cs *Spec) { expect(t, "OomScoreAdj", cs.Host.OomScoreAdj, 500) }},
		{"pid", "pid: host\n", "", func(t *testing.T, cs *Spec) { expect(t, "PidMode", cs.Host.PidMode, container.PidMode("host")) }},
		{"pids_limit", "pids_limit: 100\n", "", func(t *testing.T, cs *Spec) { expect(t, "PidsLimit", cs.Host.PidsLimit, one(100)) }},
		{"platform", "platform: linux/arm64/v8\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "Platform", cs.Platform, &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"})
		}},
		{"annotations", "annotations: {com.example.a: b}\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "Annotations", cs.Host.Annotations, map[string]string{"com.example.a": "b"})
		}},
		{"blkio_config", "blkio_config: {weight: 300, weight_device: [{path: /dev/sda, weight: 400}], device_read_bps: [{path: /dev/sda, rate: 1mb}], device_write_iops: [{path: /dev/sda, rate: 100}]}\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "BlkioWeight", cs.Host.BlkioWeight, uint16(300))
			expect(t, "BlkioWeightDevice", cs.Host.BlkioWeightDevice, []*blkiodev.WeightDevice{{Path: "/dev/sda", Weight: 400}})
			expect(t, "BlkioDeviceReadBps", cs.Host.BlkioDeviceReadBps, []*blkiodev.ThrottleDevice{{Path: "/dev/sda", Rate: 1 << 20}})
			expect(t, "BlkioDeviceWriteIOps", cs.Host.BlkioDeviceWriteIOps, []*blkiodev.ThrottleDevice{{Path: "/dev/sda", Rate: 100}})
		}},
		{"cgroup", "cgroup: private\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "CgroupnsMode", cs.Host.CgroupnsMode, container.CgroupnsMode("private"))
		}},
		{"cgroup_parent", "cgroup_parent: /mine\n", "", func(t *testing.T, cs *Spec) { expect(t, "CgroupParent", cs.Host.CgroupParent, "/mine") }},
		{"cpu_period", "cpu_period: 100000\n", "", func(t *testing.T, cs *Spec) { expect(t, "CPUPeriod", cs.Host.CPUPeriod, int64(100000)) }},
		{"cpu_quota", "cpu_quota: 50000\n", "", func(t *testing.T, cs *Spec) { expect(t, "CPUQuota", cs.Host.CPUQuota, int64(50000)) }},
		{"cpu_rt_period", "cpu_rt_period: 1000000\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "CPURealtimePeriod", cs.Host.CPURealtimePeriod, int64(1000000))
		}},
		{"cpu_rt_runtime", "cpu_rt_runtime: 950000\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "CPURealtimeRuntime", cs.Host.CPURealtimeRuntime, int64(950000))
		}},
		{"device_cgroup_rules", "device_cgroup_rules: [\"c 1:3 mr\"]\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "DeviceCgroupRules", cs.Host.DeviceCgroupRules, []string{"c 1:3 mr"})
		}},
		{"gpus", "gpus: all\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "DeviceRequests", cs.Host.DeviceRequests, []container.DeviceRequest{{Count: -1, Capabilities: [][]string{{"gpu"}}}})
		}},
		{"mem_swappiness", "mem_swappiness: 10\n", "", func(t *testing.T, cs *Spec) { expect(t, "MemorySwappiness", cs.Host.MemorySwappiness, one(10)) }},
		{"memswap_limit", "mem_limit: 64m\nmemswap_limit: 128m\n", "", func(t *testing.T, cs *Spec) { expect(t, "MemorySwap", cs.Host.MemorySwap, int64(128<<20)) }},
		{"oom_kill_disable", "oom_kill_disable: true\n", "", func(t *testing.T, cs *Spec) {
			if cs.Host.OomKillDisable == nil || !*cs.Host.OomKillDisable {
				t.Errorf("OomKillDisable = %v", cs.Host.OomKillDisable)
			}
		}},
		{"runtime", "runtime: runc\n", "", func(t *testing.T, cs *Spec) { expect(t, "Runtime", cs.Host.Runtime, "runc") }},
		{"storage_opt", "storage_opt: {size: 1G}\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "StorageOpt", cs.Host.StorageOpt, map[string]string{"size": "1G"})
		}},
		{"ports", "ports: [\"8080:80\", \"9090\"]\n", "", func(t *testing.T, cs *Spec) {
			// 8080 is foldup's (its DNAT): exposed only; Docker picks 9090's.
			if _, ok := cs.Config.ExposedPorts[nat.Port("80/tcp")]; !ok {
				t.Errorf("80/tcp not exposed: %v", cs.Config.ExposedPorts)
			}
			if _, ok := cs.Host.PortBindings[nat.Port("80/tcp")]; ok {
				t.Errorf("Docker publishes 80/tcp, which foldup forwards: %v", cs.Host.PortBindings)
			}
			expect(t, "9090 binding", len(cs.Host.PortBindings[nat.Port("9090/tcp")]), 1)
		}},
		{"privileged", "privileged: true\n", "", func(t *testing.T, cs *Spec) { expect(t, "Privileged", cs.Host.Privileged, true) }},
		{"profiles", "profiles: [debug]\n", "", nil}, // decides whether the service runs at all: spec's
		{"pull_policy", "pull_policy: never\n", "", nil},
		{"read_only", "read_only: true\n", "", func(t *testing.T, cs *Spec) { expect(t, "ReadonlyRootfs", cs.Host.ReadonlyRootfs, true) }},
		{"restart", "restart: on-failure:3\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "RestartPolicy", cs.Host.RestartPolicy, container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 3})
		}},
		{"scale", "scale: 2\n", "", func(t *testing.T, cs *Spec) { expect(t, "Name", cs.Name, "conv-app-1") }},
		{"secrets", "secrets: [pw]\n", "secrets:\n  pw: {file: ./secret.txt}\n", func(t *testing.T, cs *Spec) {
			if !slices.ContainsFunc(cs.Host.Mounts, func(m mount.Mount) bool { return m.Target == "/run/secrets/pw" && m.ReadOnly }) {
				t.Errorf("no read-only mount at /run/secrets/pw: %+v", cs.Host.Mounts)
			}
		}},
		{"security_opt", "security_opt: [\"no-new-privileges:true\"]\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "SecurityOpt", cs.Host.SecurityOpt, []string{"no-new-privileges:true"})
		}},
		{"shm_size", "shm_size: 64m\n", "", func(t *testing.T, cs *Spec) { expect(t, "ShmSize", cs.Host.ShmSize, int64(64<<20)) }},
		{"stdin_open", "stdin_open: true\n", "", func(t *testing.T, cs *Spec) { expect(t, "OpenStdin", cs.Config.OpenStdin, true) }},
		{"stop_grace_period", "stop_grace_period: 30s\n", "", func(t *testing.T, cs *Spec) {
			if cs.Config.StopTimeout == nil || *cs.Config.StopTimeout != 30 {
				t.Errorf("StopTimeout = %v", cs.Config.StopTimeout)
			}
		}},
		{"stop_signal", "stop_signal: SIGINT\n", "", func(t *testing.T, cs *Spec) { expect(t, "StopSignal", cs.Config.StopSignal, "SIGINT") }},
		{"sysctls", "sysctls: {net.core.somaxconn: \"1024\"}\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "Sysctls", cs.Host.Sysctls, map[string]string{"net.core.somaxconn": "1024"})
		}},
		{"tmpfs", "tmpfs: [\"/scratch:size=1m\"]\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "Tmpfs", cs.Host.Tmpfs, map[string]string{"/scratch": "size=1m"})
		}},
		{"tty", "tty: true\n", "", func(t *testing.T, cs *Spec) { expect(t, "Tty", cs.Config.Tty, true) }},
		{"ulimits", "ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 64}\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "Ulimits", cs.Host.Ulimits, []*units.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}, {Name: "nproc", Soft: 64, Hard: 64}})
		}},
		{"user", "user: \"1000:1000\"\n", "", func(t *testing.T, cs *Spec) { expect(t, "User", cs.Config.User, "1000:1000") }},
		{"userns_mode", "userns_mode: host\n", "", func(t *testing.T, cs *Spec) {
			expect(t, "UsernsMode", cs.Host.UsernsMode, container.UsernsMode("host"))
		}},
		{"uts", "uts: host\n", "", func(t *testing.T, cs *Spec) { expect(t, "UTSMode", cs.Host.UTSMode, container.UTSMode("host")) }},
		{"volumes", "volumes: [\"data:/var/lib/data\", \"./:/src:ro\"]\n", "volumes:\n  data: {}\n", func(t *testing.T, cs *Spec) {
			if len(cs.Host.Mounts) != 2 || cs.Host.Mounts[0].Target != "/var/lib/data" || cs.Host.Mounts[1].Target != "/src" || !cs.Host.Mounts[1].ReadOnly {
				t.Errorf("Mounts = %+v", cs.Host.Mounts)
			}
		}},
		{"volumes_from", "volumes_from: [db]\n", "  db: {image: busybox:1}\n", func(t *testing.T, cs *Spec) {
			if len(cs.Host.VolumesFrom) != 1 || !strings.Contains(cs.Host.VolumesFrom[0], "db") {
				t.Errorf("VolumesFrom = %v", cs.Host.VolumesFrom)
			}
		}},
		{"working_dir", "working_dir: /work\n", "", func(t *testing.T, cs *Spec) { expect(t, "WorkingDir", cs.Config.WorkingDir, "/work") }},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.key] = true
		if c.check == nil {
			continue
		}
		t.Run(c.key, func(t *testing.T) { c.check(t, specOf(t, c.svc, c.extra)) })
	}
	for key := range spec.SupportedServiceKeys {
		if !covered[key] {
			t.Errorf("supported key %s has no case here", key)
		}
	}
}
