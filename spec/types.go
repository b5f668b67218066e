package spec

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
)

// Project is a loaded and validated foldup file: the Compose model of the
// containers, networks and volumes, plus foldup's VMs and DNS records.
type Project struct {
	Name       string
	WorkingDir string
	Files      []string // absolute paths, in merge order

	// Compose is compose-go's model of everything Compose knows: services
	// (foldup's containers), networks, volumes, secrets, configs.
	Compose *types.Project

	VMs      map[string]*VM
	Disabled map[string]*VM // VMs whose profiles are not active
	DNS      []Record       // records every member sees

	// Networks holds each Compose network's x-foldup settings, defaults
	// filled in, for every network in Compose.Networks.
	Networks map[string]NetworkExt
	Settings Settings // top-level x-foldup

	// ServiceDeps holds the depends_on entries of services that name a VM.
	// compose-go knows nothing of VMs, so these are kept here and removed
	// from Compose.Services[].DependsOn.
	ServiceDeps map[string]types.DependsOnConfig

	// Environment is what variables were interpolated from: the process's
	// environment, then the env files'. Variables are the ${...} the files
	// use, with their defaults (config --environment, --variables).
	Environment map[string]string
	Variables   map[string]template.Variable

	// ServiceNetem is each service's x-foldup.netem.
	ServiceNetem map[string]*Netem

	srcs []*source
	cfg  loadConfig
}

// VMNames returns the names of the active VMs, sorted.
func (p *Project) VMNames() []string {
	names := make([]string, 0, len(p.VMs))
	for n := range p.VMs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ServiceNames returns the names of the active services, sorted.
func (p *Project) ServiceNames() []string {
	names := p.Compose.ServiceNames()
	slices.Sort(names)
	return names
}

// Locate returns where the field at path was written: the last file, in
// merge order, that sets it. A path that exists in no file gives the
// position of its nearest existing ancestor. Planner and runtime use it to
// give their own errors a position.
func (p *Project) Locate(path ...string) Pos {
	return locate(p.srcs, path, false)
}

// LocateKey is Locate for a mapping entry, giving the key's position.
func (p *Project) LocateKey(path ...string) Pos {
	return locate(p.srcs, path, true)
}

func locate(srcs []*source, path []string, key bool) Pos {
	var best Pos
	bestDepth := -1
	for i := len(srcs) - 1; i >= 0; i-- {
		var pos Pos
		var found bool
		if key {
			pos, found = srcs[i].locateKey(path)
		} else {
			pos, found = srcs[i].locate(path)
		}
		if found {
			return pos
		}
		// Not in this file: remember the file that gets closest.
		if d := srcs[i].depth(path); d > bestDepth {
			best, bestDepth = pos, d
		}
	}
	return best
}

// VM is a virtual machine from the vms: section.
type VM struct {
	Name string `yaml:"-" json:"-"`

	Image   string `yaml:"image,omitempty" json:"image,omitempty"`
	SHA256  string `yaml:"sha256,omitempty" json:"sha256,omitempty"`
	Kernel  string `yaml:"kernel,omitempty" json:"kernel,omitempty"`
	Initrd  string `yaml:"initrd,omitempty" json:"initrd,omitempty"`
	Cmdline string `yaml:"cmdline,omitempty" json:"cmdline,omitempty"`

	CPUs     int      `yaml:"cpus" json:"cpus"`
	Memory   int64    `yaml:"memory" json:"memory"` // bytes
	Arch     string   `yaml:"arch" json:"arch"`
	Accel    string   `yaml:"accel,omitempty" json:"accel,omitempty"` // as the VM says: auto, kvm, tcg or ""; see Project.Accel
	QemuArgs []string `yaml:"qemu_args,omitempty" json:"qemu_args,omitempty"`

	// Networks maps a network name to this VM's settings on it.
	Networks map[string]*VMNetwork `yaml:"networks,omitempty" json:"networks,omitempty"`

	CloudInit *CloudInit `yaml:"cloud_init,omitempty" json:"cloud_init,omitempty"`

	Ports       []types.ServicePortConfig `yaml:"ports,omitempty" json:"ports,omitempty"`
	DependsOn   types.DependsOnConfig     `yaml:"depends_on,omitempty" json:"depends_on,omitempty"`
	HealthCheck *HealthCheck              `yaml:"healthcheck,omitempty" json:"healthcheck,omitempty"`
	Restart     string                    `yaml:"restart,omitempty" json:"restart,omitempty"`

	StopGracePeriod *types.Duration `yaml:"stop_grace_period,omitempty" json:"stop_grace_period,omitempty"`

	DNS         []Record          `yaml:"dns,omitempty" json:"dns,omitempty"`
	Environment map[string]string `yaml:"environment,omitempty" json:"environment,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Profiles    []string          `yaml:"profiles,omitempty" json:"profiles,omitempty"`

	// XFoldup is the VM's x-foldup: its link impairment. Not part of the
	// configuration hash: changing it changes qdiscs, not the VM.
	XFoldup *VMExt `yaml:"x-foldup,omitempty" json:"-"`
}

// VMExt is a VM's x-foldup.
type VMExt struct {
	Netem *Netem `yaml:"netem,omitempty"`
}

// VMNetwork is a VM's attachment to one network. Empty fields are assigned
// by the planner.
type VMNetwork struct {
	IPv4    string   `yaml:"ipv4_address,omitempty" json:"ipv4_address,omitempty"`
	IPv6    string   `yaml:"ipv6_address,omitempty" json:"ipv6_address,omitempty"`
	MAC     string   `yaml:"mac_address,omitempty" json:"mac_address,omitempty"`
	Aliases []string `yaml:"aliases,omitempty" json:"aliases,omitempty"`
}

// CloudInit is a NoCloud seed: files (absolute paths after loading) or a
// ready ISO.
type CloudInit struct {
	UserData          string   `yaml:"user_data,omitempty" json:"user_data,omitempty"`
	MetaData          string   `yaml:"meta_data,omitempty" json:"meta_data,omitempty"`
	NetworkConfig     string   `yaml:"network_config,omitempty" json:"network_config,omitempty"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys,omitempty" json:"ssh_authorized_keys,omitempty"` // key lines, files read
	ISO               string   `yaml:"iso,omitempty" json:"iso,omitempty"`
}

// Health check kinds for VMs.
const (
	CheckTCP    = "tcp"
	CheckHTTP   = "http"
	CheckSerial = "serial"
	CheckNone   = "NONE"
)

// HealthCheck is a VM's health check: the host probes the guest.
type HealthCheck struct {
	Test        []string       `yaml:"test" json:"test"` // [kind, arg]
	Interval    types.Duration `yaml:"interval" json:"interval"`
	Timeout     types.Duration `yaml:"timeout" json:"timeout"`
	StartPeriod types.Duration `yaml:"start_period" json:"start_period"`
	Retries     int            `yaml:"retries" json:"retries"`
	Disable     bool           `yaml:"disable,omitempty" json:"disable,omitempty"`
}

// Defaults of VM health checks, as Docker's for containers.
const (
	DefaultInterval = 30 * time.Second
	DefaultTimeout  = 30 * time.Second
	DefaultRetries  = 3
)

// Record is a DNS record: a name and exactly one kind of data. A name
// without a final dot is relative to the project's domain.
type Record struct {
	Name  string   `yaml:"name" json:"name"`
	TTL   uint32   `yaml:"ttl,omitempty" json:"ttl,omitempty"`
	A     string   `yaml:"a,omitempty" json:"a,omitempty"`
	AAAA  string   `yaml:"aaaa,omitempty" json:"aaaa,omitempty"`
	TXT   []string `yaml:"txt,omitempty" json:"txt,omitempty"`
	CNAME string   `yaml:"cname,omitempty" json:"cname,omitempty"`
	SRV   *SRV     `yaml:"srv,omitempty" json:"srv,omitempty"`
}

// Type returns the record's type: A, AAAA, TXT, CNAME or SRV.
func (r Record) Type() string {
	switch {
	case r.A != "":
		return "A"
	case r.AAAA != "":
		return "AAAA"
	case r.TXT != nil:
		return "TXT"
	case r.CNAME != "":
		return "CNAME"
	case r.SRV != nil:
		return "SRV"
	}
	return ""
}

// SRV is the data of an SRV record.
type SRV struct {
	Target   string `yaml:"target" json:"target"`
	Port     uint16 `yaml:"port" json:"port"`
	Priority uint16 `yaml:"priority" json:"priority"`
	Weight   uint16 `yaml:"weight" json:"weight"`
}

// IPv6 address modes of a network.
const (
	IPv6SLAAC         = "slaac"          // EUI-64 from the MAC (Fold's default)
	IPv6Static        = "static"         // assigned by the plan, served by DHCPv6
	IPv6StablePrivacy = "stable-privacy" // RFC 7217, formed by the guest
)

// Outbound policies of a network.
const (
	OutboundNAT  = "nat"
	OutboundDrop = "drop"
)

// NetworkExt is a network's x-foldup block.
type NetworkExt struct {
	Isolated  bool         `yaml:"isolated" json:"isolated"`
	Multicast []netip.Addr `yaml:"multicast,omitempty" json:"multicast,omitempty"`
	IPv6      string       `yaml:"ipv6" json:"ipv6"`
	DHCP      bool         `yaml:"dhcp" json:"dhcp"`
	// Outbound is nat, drop, or the name of an nftables chain to jump to.
	Outbound string `yaml:"outbound" json:"outbound"`
	// Kube is how foldup kube makes the network on Kubernetes.
	Kube KubeNetwork `yaml:"kube,omitzero" json:"kube,omitzero"`
	// Netem impairs every member's port on the network.
	Netem *Netem `yaml:"netem,omitempty" json:"netem,omitempty"`
}

// KubeNetwork is a network's x-foldup.kube: the CNI plugin of its
// NetworkAttachmentDefinition, and the plugin's bridge or master.
type KubeNetwork struct {
	CNI    string `yaml:"cni,omitempty" json:"cni,omitempty"` // bridge (""), macvlan or ovn-k8s-cni-overlay
	Bridge string `yaml:"bridge,omitempty" json:"bridge,omitempty"`
	Master string `yaml:"master,omitempty" json:"master,omitempty"`
}

// CNI plugins foldup kube writes networks for.
const (
	CNIBridge  = "bridge"
	CNIMacvlan = "macvlan"
	CNIOVN     = "ovn-k8s-cni-overlay"
)

// KubeSettings are x-foldup.kube: where foldup kube names the VMs' images,
// and the image it runs the DNS/DHCP server from.
type KubeSettings struct {
	Registry string `yaml:"registry,omitempty" json:"registry,omitempty"`
	Image    string `yaml:"image,omitempty" json:"image,omitempty"`
}

// Settings is the top-level x-foldup block.
type Settings struct {
	Domain string `yaml:"domain" json:"domain"`
	Accel  string `yaml:"accel,omitempty" json:"accel,omitempty"` // the VMs' default accelerator, as written
	// EnvAccel is FOLDUP_ACCEL from the environment (or .env).
	EnvAccel     string        `yaml:"-" json:"-"`
	Upstream     []string      `yaml:"upstream,omitempty" json:"upstream,omitempty"`
	AddressPools []AddressPool `yaml:"address_pools" json:"address_pools"`
	Kube         KubeSettings  `yaml:"kube,omitzero" json:"kube,omitzero"`
}

// Accelerators a VM may ask for.
const (
	AccelAuto = "auto" // KVM where a probe guest runs under it, else TCG
	AccelKVM  = "kvm"  // KVM, or an error
	AccelTCG  = "tcg"  // qemu's emulator
)

// AccelEnv is the environment variable that sets the VMs' accelerator,
// below a VM's own accel and above x-foldup.accel.
const AccelEnv = "FOLDUP_ACCEL"

// Accel returns the accelerator VM name asks for (auto, kvm or tcg) and
// where that was said, in compose's order of precedence: the VM's accel,
// then FOLDUP_ACCEL, then x-foldup.accel; from is nil for the default.
// The path's position is Locate(from...); FOLDUP_ACCEL has none.
func (p *Project) Accel(name string) (accel string, from []string) {
	v := p.VMs[name]
	switch {
	case v != nil && v.Accel != "":
		return v.Accel, []string{"vms", name, "accel"}
	case p.Settings.EnvAccel != "":
		return p.Settings.EnvAccel, []string{AccelEnv}
	case p.Settings.Accel != "":
		return p.Settings.Accel, []string{"x-foldup", "accel"}
	}
	return AccelAuto, nil
}

// AddressPool is where automatic IPv4 subnets come from.
type AddressPool struct {
	Base netip.Prefix `yaml:"base" json:"base"`
	Size int          `yaml:"size" json:"size"`
}

// DefaultAddressPools is used when the file names none: far from Docker's
// own defaults (172.17.0.0/16 and up), so foldup and Docker never pick the
// same subnet.
var DefaultAddressPools = []AddressPool{{Base: netip.MustParsePrefix("10.89.0.0/16"), Size: 24}}

// DefaultDomainSuffix is appended to the project name to make the default
// DNS domain. .internal is reserved for private use (ICANN, 2024), so it
// can never shadow a real name.
const DefaultDomainSuffix = "foldup.internal"

// Keys returns the keys of the mapping at path, as written in any of the
// project's files (after merge keys), sorted and without repeats. The
// runtime uses it to warn about keys it does not act on.
func (p *Project) Keys(path ...string) []string {
	var keys []string
	for _, s := range p.srcs {
		n, found := s.node(path, false)
		if !found || n == nil {
			continue
		}
		keys = append(keys, mappingKeys(n)...)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// Select keeps only the named services and VMs and those they depend on,
// and then only the networks, volumes, secrets and configs those use (as
// docker compose config SERVICE... prints). A name that is neither is an
// error.
func (p *Project) Select(names []string) error {
	keep := map[string]bool{}
	var visit func(n string)
	visit = func(n string) {
		if keep[n] {
			return
		}
		keep[n] = true
		if s, ok := p.Compose.Services[n]; ok {
			for d := range s.DependsOn {
				visit(d)
			}
			for d := range p.ServiceDeps[n] {
				visit(d)
			}
		}
		if vm, ok := p.VMs[n]; ok {
			for d := range vm.DependsOn {
				visit(d)
			}
		}
	}
	for _, n := range names {
		if _, ok := p.Compose.Services[n]; !ok && p.VMs[n] == nil {
			return fmt.Errorf("no such service or VM: %s", n)
		}
		visit(n)
	}
	for n := range p.Compose.Services {
		if !keep[n] {
			delete(p.Compose.Services, n)
			delete(p.ServiceDeps, n)
		}
	}
	for n := range p.VMs {
		if !keep[n] {
			delete(p.VMs, n)
		}
	}
	p.withoutUnused()
	return nil
}

// NetemFor is the impairment of a member's port on a network: the
// member's own (its service's or VM's x-foldup.netem), else the
// network's; nil for none.
func (p *Project) NetemFor(service, network string) *Netem {
	if v := p.VMs[service]; v != nil && v.XFoldup != nil && v.XFoldup.Netem != nil {
		return v.XFoldup.Netem
	}
	if n := p.ServiceNetem[service]; n != nil {
		return n
	}
	return p.Networks[network].Netem
}
