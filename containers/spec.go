//go:build linux

package containers

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/docker/api/types/blkiodev"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/strslice"
	"github.com/docker/go-connections/nat"
	"github.com/docker/go-units"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Labels foldup puts on everything it makes in Docker. down removes only
// what carries the project's label.
const (
	LabelProject    = "com.foldup.project"
	LabelMember     = "com.foldup.member"
	LabelService    = "com.foldup.service"
	LabelNetwork    = "com.foldup.network"
	LabelVolume     = "com.foldup.volume"
	LabelConfigHash = "com.foldup.config-hash"
	LabelReplica    = "com.foldup.replica"
	// LabelOneOff marks a container foldup run made: no member of the
	// plan, adopted by the firewall as a container joined by hand.
	LabelOneOff = "com.foldup.oneoff"
)

// Spec is everything ContainerCreate needs for one member, and the
// networks to connect it to after creation (Docker before API 1.44 takes
// one network at creation).
type Spec struct {
	Name    string
	Config  *container.Config
	Host    *container.HostConfig
	First   string // Docker network given at creation ("" for network_mode)
	Network map[string]*network.EndpointSettings
	// Order of Network's keys: First, then the others sorted.
	Networks []string
	// Platform is the image's platform to run (platform:), or nil for the
	// engine's own.
	Platform *ocispec.Platform
}

// SpecFor turns member m (a replica of a Compose service) into what
// Docker creates. It is pure: files are only named, not read.
func SpecFor(p *spec.Project, pl *planner.Plan, m *planner.Member, stateDir string) (*Spec, error) {
	svc := p.Compose.Services[m.Service]
	cs := &Spec{Name: planner.ContainerName(p, m), Network: map[string]*network.EndpointSettings{}}
	platform, err := platformOf(svc.Platform)
	if err != nil {
		return nil, p.Errorf([]string{"services", m.Service, "platform"}, "%w", err)
	}
	cs.Platform = platform

	labels := map[string]string{}
	maps.Copy(labels, svc.Labels)
	maps.Copy(labels, map[string]string{
		LabelProject:    p.Name,
		LabelService:    m.Service,
		LabelMember:     m.Name,
		LabelReplica:    strconv.Itoa(m.Replica),
		LabelConfigHash: m.ConfigHash,
	})

	env := make([]string, 0, len(svc.Environment))
	for _, k := range slices.Sorted(maps.Keys(svc.Environment)) {
		if v := svc.Environment[k]; v != nil {
			env = append(env, k+"="+*v)
		}
	}

	cfg := &container.Config{
		Hostname:     m.Hostname,
		Domainname:   svc.DomainName,
		User:         svc.User,
		Env:          env,
		Image:        planner.ImageName(p, svc),
		WorkingDir:   svc.WorkingDir,
		Labels:       labels,
		Tty:          svc.Tty,
		OpenStdin:    svc.StdinOpen,
		StopSignal:   svc.StopSignal,
		ExposedPorts: nat.PortSet{},
	}
	if svc.Hostname == "" && m.Hostname == m.Name && svc.ContainerName == "" && len(m.NICs) == 0 {
		cfg.Hostname = "" // no foldup network: Docker's default, as Compose
	}
	if svc.Command != nil {
		cfg.Cmd = strslice.StrSlice(svc.Command)
	}
	if svc.Entrypoint != nil {
		cfg.Entrypoint = strslice.StrSlice(svc.Entrypoint)
	}
	if svc.StopGracePeriod != nil {
		secs := int(time.Duration(*svc.StopGracePeriod).Seconds())
		cfg.StopTimeout = &secs
	}
	if hc := svc.HealthCheck; hc != nil {
		h := &container.HealthConfig{Test: hc.Test}
		if hc.Disable {
			h.Test = []string{"NONE"}
		}
		h.Interval = durationOf(hc.Interval)
		h.Timeout = durationOf(hc.Timeout)
		h.StartPeriod = durationOf(hc.StartPeriod)
		h.StartInterval = durationOf(hc.StartInterval)
		if hc.Retries != nil {
			h.Retries = int(*hc.Retries)
		}
		cfg.Healthcheck = h
	}
	for _, e := range svc.Expose {
		port, proto, _ := strings.Cut(e, "/")
		cfg.ExposedPorts[nat.Port(port+"/"+cmp.Or(proto, "tcp"))] = struct{}{}
	}

	host := &container.HostConfig{
		CapAdd:         svc.CapAdd,
		CapDrop:        svc.CapDrop,
		Privileged:     svc.Privileged,
		ReadonlyRootfs: svc.ReadOnly,
		Init:           svc.Init,
		Sysctls:        svc.Sysctls,
		ExtraHosts:     svc.ExtraHosts.AsList(":"),
		GroupAdd:       svc.GroupAdd,
		SecurityOpt:    svc.SecurityOpt,
		IpcMode:        container.IpcMode(svc.Ipc),
		PidMode:        container.PidMode(svc.Pid),
		UTSMode:        container.UTSMode(svc.Uts),
		UsernsMode:     container.UsernsMode(svc.UserNSMode),
		ShmSize:        int64(svc.ShmSize),
		VolumesFrom:    svc.VolumesFrom,
		DNSOptions:     svc.DNSOpts,
		PortBindings:   nat.PortMap{},
		Tmpfs:          map[string]string{},
	}
	if svc.OomScoreAdj != 0 {
		host.OomScoreAdj = int(svc.OomScoreAdj)
	}
	if svc.Logging != nil {
		host.LogConfig = container.LogConfig{Type: svc.Logging.Driver, Config: svc.Logging.Options}
	}
	host.RestartPolicy = restartPolicy(svc)

	// Resources: the short keys, then deploy.resources.limits over them.
	host.Resources = container.Resources{
		CPUShares:         svc.CPUShares,
		CpusetCpus:        svc.CPUSet,
		Memory:            int64(svc.MemLimit),
		MemoryReservation: int64(svc.MemReservation),
		NanoCPUs:          int64(svc.CPUS * 1e9),
	}
	if svc.PidsLimit != 0 {
		host.Resources.PidsLimit = &svc.PidsLimit
	}
	if d := svc.Deploy; d != nil && d.Resources.Limits != nil {
		l := d.Resources.Limits
		if l.NanoCPUs != 0 {
			host.Resources.NanoCPUs = int64(float64(l.NanoCPUs) * 1e9)
		}
		if l.MemoryBytes != 0 {
			host.Resources.Memory = int64(l.MemoryBytes)
		}
		if l.Pids != 0 {
			host.Resources.PidsLimit = &l.Pids
		}
	}
	if d := svc.Deploy; d != nil && d.Resources.Reservations != nil && d.Resources.Reservations.MemoryBytes != 0 {
		host.Resources.MemoryReservation = int64(d.Resources.Reservations.MemoryBytes)
	}
	for _, name := range slices.Sorted(maps.Keys(svc.Ulimits)) {
		u := svc.Ulimits[name]
		soft, hard := int64(u.Soft), int64(u.Hard)
		if u.Single != 0 {
			soft, hard = int64(u.Single), int64(u.Single)
		}
		host.Ulimits = append(host.Ulimits, &units.Ulimit{Name: name, Soft: soft, Hard: hard})
	}
	for _, d := range svc.Devices {
		host.Devices = append(host.Devices, container.DeviceMapping{
			PathOnHost: d.Source, PathInContainer: cmp.Or(d.Target, d.Source), CgroupPermissions: cmp.Or(d.Permissions, "rwm"),
		})
	}
	for _, t := range svc.Tmpfs {
		dst, opts, _ := strings.Cut(t, ":")
		host.Tmpfs[dst] = opts
	}
	hostMore(svc, host)

	// Ports: host ports foldup forwards itself (planned, in its nftables
	// table) are only exposed here; Docker publishes the rest (no host
	// port given: Docker picks one, as in Compose).
	planned := map[string]bool{}
	for _, pp := range m.Ports {
		planned[fmt.Sprintf("%d/%s", pp.Target, pp.Protocol)] = true
	}
	for _, pc := range svc.Ports {
		port := nat.Port(fmt.Sprintf("%d/%s", pc.Target, cmp.Or(pc.Protocol, "tcp")))
		cfg.ExposedPorts[port] = struct{}{}
		if planned[string(port)] && pc.Published != "" && !strings.Contains(pc.Published, "-") {
			continue
		}
		host.PortBindings[port] = append(host.PortBindings[port], nat.PortBinding{HostIP: pc.HostIP, HostPort: pc.Published})
	}

	// Mounts.
	for _, v := range svc.Volumes {
		mt, err := mountOf(p, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Service, err)
		}
		host.Mounts = append(host.Mounts, mt)
	}
	for _, s := range svc.Secrets {
		obj, ok := p.Compose.Secrets[s.Source]
		mt, err := fileMount(types.FileObjectConfig(obj), ok, types.FileReferenceConfig(s), "/run/secrets/", stateDir, "secret")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Service, err)
		}
		host.Mounts = append(host.Mounts, mt)
	}
	for _, c := range svc.Configs {
		obj, ok := p.Compose.Configs[c.Source]
		mt, err := fileMount(types.FileObjectConfig(obj), ok, types.FileReferenceConfig(c), "/", stateDir, "config")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Service, err)
		}
		host.Mounts = append(host.Mounts, mt)
	}

	// Networks: foldup's, with the plan's addresses and MACs; DNS is
	// foldup's server unless the file names others.
	switch mode := svc.NetworkMode; {
	case mode == "" || mode == "bridge" && len(m.NICs) > 0:
		for _, nic := range m.NICs {
			n := pl.Network(nic.Network)
			if n == nil {
				return nil, fmt.Errorf("%s: network %s is not in the plan", m.Name, nic.Network)
			}
			ep := &network.EndpointSettings{
				Aliases:    nicAliases(m, nic),
				MacAddress: nic.MAC,
				IPAMConfig: &network.EndpointIPAMConfig{},
			}
			if nic.IPv4.IsValid() {
				ep.IPAMConfig.IPv4Address = nic.IPv4.String()
			}
			if nic.IPv6.IsValid() {
				ep.IPAMConfig.IPv6Address = nic.IPv6.String()
			}
			cs.Network[n.DockerName] = ep
			cs.Networks = append(cs.Networks, n.DockerName)
			if cs.First == "" {
				cs.First = n.DockerName
				host.NetworkMode = container.NetworkMode(n.DockerName)
				if len(svc.DNS) == 0 {
					host.DNS = dnsServers(n)
				}
			}
		}
		if len(svc.DNSSearch) == 0 && pl.Domain != "" && len(m.NICs) > 0 {
			host.DNSSearch = []string{pl.Domain}
		}
	case strings.HasPrefix(mode, "service:"):
		dep := strings.TrimPrefix(mode, "service:")
		host.NetworkMode = container.NetworkMode("container:" + planner.ContainerName(p, &planner.Member{Service: dep, Replica: 1}))
		cfg.Hostname = ""
	default:
		host.NetworkMode = container.NetworkMode(mode)
		if mode == "host" || strings.HasPrefix(mode, "container:") {
			cfg.Hostname = ""
		}
	}
	if len(svc.DNS) > 0 {
		host.DNS = svc.DNS
	}
	if len(svc.DNSSearch) > 0 {
		host.DNSSearch = svc.DNSSearch
	}
	cs.Config, cs.Host = cfg, host
	return cs, nil
}

// nicAliases are the names Docker's own resolver answers for a member on
// one network: the service name (all replicas, as Compose) and the
// network's aliases.
func nicAliases(m *planner.Member, nic *planner.NIC) []string {
	al := []string{m.Service}
	if m.Name != m.Service {
		al = append(al, m.Name)
	}
	return append(al, nic.Aliases...)
}

func dnsServers(n *planner.Network) []string {
	var out []string
	for _, a := range n.DNSAddrs() {
		out = append(out, a.String())
	}
	return out
}

func durationOf(d *types.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return time.Duration(*d)
}

// restartPolicy maps restart: (or deploy.restart_policy) to Docker's.
func restartPolicy(svc types.ServiceConfig) container.RestartPolicy {
	r := svc.Restart
	if r == "" && svc.Deploy != nil && svc.Deploy.RestartPolicy != nil {
		rp := svc.Deploy.RestartPolicy
		switch rp.Condition {
		case "none":
			return container.RestartPolicy{Name: container.RestartPolicyDisabled}
		case "on-failure":
			p := container.RestartPolicy{Name: container.RestartPolicyOnFailure}
			if rp.MaxAttempts != nil {
				p.MaximumRetryCount = int(*rp.MaxAttempts)
			}
			return p
		default:
			return container.RestartPolicy{Name: container.RestartPolicyAlways}
		}
	}
	name, count, _ := strings.Cut(r, ":")
	switch name {
	case "always":
		return container.RestartPolicy{Name: container.RestartPolicyAlways}
	case "unless-stopped":
		return container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}
	case "on-failure":
		n, _ := strconv.Atoi(count)
		return container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: n}
	}
	return container.RestartPolicy{Name: container.RestartPolicyDisabled}
}

func mountOf(p *spec.Project, v types.ServiceVolumeConfig) (mount.Mount, error) {
	mt := mount.Mount{Type: mount.Type(v.Type), Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}
	switch v.Type {
	case types.VolumeTypeBind:
		if v.Bind != nil && v.Bind.Propagation != "" {
			mt.BindOptions = &mount.BindOptions{Propagation: mount.Propagation(v.Bind.Propagation)}
		}
	case types.VolumeTypeVolume:
		if v.Source != "" {
			if _, ok := p.Compose.Volumes[v.Source]; !ok {
				return mt, fmt.Errorf("volume %q is not declared in the top-level volumes:", v.Source)
			}
			mt.Source = planner.VolumeName(p, v.Source)
		}
		if v.Volume != nil {
			mt.VolumeOptions = &mount.VolumeOptions{NoCopy: v.Volume.NoCopy, Subpath: v.Volume.Subpath}
		}
	case types.VolumeTypeTmpfs:
		if v.Tmpfs != nil {
			mt.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: int64(v.Tmpfs.Size), Mode: os.FileMode(v.Tmpfs.Mode)}
		}
	default:
		return mt, fmt.Errorf("volume type %q is not supported", v.Type)
	}
	return mt, nil
}

// fileMount mounts a secret or config read-only, as Compose does without
// Swarm: from its file, or from a file foldup writes for content: and
// environment: ones (under the project's state directory).
func fileMount(obj types.FileObjectConfig, ok bool, ref types.FileReferenceConfig, dir, stateDir, kind string) (mount.Mount, error) {
	if !ok {
		return mount.Mount{}, fmt.Errorf("%s %q is not declared at the top level", kind, ref.Source)
	}
	o := obj
	target := ref.Target
	if target == "" {
		target = dir + ref.Source
	} else if !path.IsAbs(target) {
		target = dir + target
	}
	src := o.File
	if src == "" {
		if o.External {
			return mount.Mount{}, fmt.Errorf("external %s %q needs Swarm, which foldup does not use", kind, ref.Source)
		}
		src = filepath.Join(stateDir, kind+"s", ref.Source)
	}
	return mount.Mount{Type: mount.TypeBind, Source: src, Target: target, ReadOnly: true}, nil
}

// hostMore sets the host configuration of the Compose keys the engine
// takes as they are: cgroups, block I/O and CPU scheduling, swap, the OOM
// killer, GPUs, the runtime, the storage driver's options and
// annotations.
func hostMore(svc types.ServiceConfig, host *container.HostConfig) {
	r := &host.Resources
	r.CgroupParent = svc.CgroupParent
	host.CgroupnsMode = container.CgroupnsMode(svc.Cgroup)
	r.CPUPeriod, r.CPUQuota = svc.CPUPeriod, svc.CPUQuota
	r.CPURealtimePeriod, r.CPURealtimeRuntime = svc.CPURTPeriod, svc.CPURTRuntime
	r.DeviceCgroupRules = svc.DeviceCgroupRules
	if svc.MemSwapLimit != 0 {
		r.MemorySwap = int64(svc.MemSwapLimit)
	}
	if svc.MemSwappiness != 0 {
		v := int64(svc.MemSwappiness)
		r.MemorySwappiness = &v
	}
	if svc.OomKillDisable {
		r.OomKillDisable = &svc.OomKillDisable
	}
	if b := svc.BlkioConfig; b != nil {
		r.BlkioWeight = b.Weight
		for _, d := range b.WeightDevice {
			r.BlkioWeightDevice = append(r.BlkioWeightDevice, &blkiodev.WeightDevice{Path: d.Path, Weight: d.Weight})
		}
		throttle := func(ds []types.ThrottleDevice) []*blkiodev.ThrottleDevice {
			var out []*blkiodev.ThrottleDevice
			for _, d := range ds {
				out = append(out, &blkiodev.ThrottleDevice{Path: d.Path, Rate: uint64(d.Rate)})
			}
			return out
		}
		r.BlkioDeviceReadBps, r.BlkioDeviceWriteBps = throttle(b.DeviceReadBps), throttle(b.DeviceWriteBps)
		r.BlkioDeviceReadIOps, r.BlkioDeviceWriteIOps = throttle(b.DeviceReadIOps), throttle(b.DeviceWriteIOps)
	}
	for _, g := range svc.Gpus {
		caps := g.Capabilities
		if len(caps) == 0 {
			caps = []string{"gpu"}
		}
		r.DeviceRequests = append(r.DeviceRequests, container.DeviceRequest{Driver: g.Driver, Count: int(g.Count),
			DeviceIDs: g.IDs, Capabilities: [][]string{caps}, Options: g.Options})
	}
	host.Runtime = svc.Runtime
	host.StorageOpt = svc.StorageOpt
	if len(svc.Annotations) > 0 {
		host.Annotations = svc.Annotations
	}
}

// platformOf parses platform: (os/arch[/variant]).
func platformOf(s string) (*ocispec.Platform, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return nil, fmt.Errorf("%q is not a platform (os/arch[/variant], as linux/arm64/v8)", s)
	}
	p := &ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}
