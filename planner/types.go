// Package planner turns a loaded project and what is observed of the host
// into a Plan: every network's subnet, gateway and bridge, every member's
// addresses, MACs and interface names, and the dependency graph of the
// steps that bring the project up.
//
// The planner is pure: no Docker, no netlink, no clock, no randomness. The
// same project and observations always give the same plan, which is what
// makes `foldup plan` reviewable and its golden tests possible. Automatic
// values (subnets, addresses, MACs, names) are derived from stable hashes
// of the project, network and member names, and kept from the previous
// plan when one is observed, so adding a member never renumbers another.
package planner

import (
	"net/netip"
	"slices"

	"github.com/foldup/foldup/spec"
)

// Plan is the complete, JSON-serialisable description of a project as it
// should run.
type Plan struct {
	Project  string        `json:"project"`
	Domain   string        `json:"domain"`
	Upstream []string      `json:"upstream,omitempty"`
	Networks []*Network    `json:"networks"`
	Members  []*Member     `json:"members"`
	Records  []spec.Record `json:"records,omitempty"` // seen by every member
	Steps    []*Step       `json:"steps"`
	// Orphans are the project's containers of services the file no longer
	// has, which up keeps (without --remove-orphans) and names.
	Orphans []string `json:"orphans,omitempty"`
}

// Network is one foldup network: a Linux bridge that Docker adopts.
type Network struct {
	Name       string `json:"name"`        // key in the file
	DockerName string `json:"docker_name"` // Docker's name for it
	Bridge     string `json:"bridge"`      // Linux interface name
	External   bool   `json:"external,omitempty"`

	Subnet4      netip.Prefix `json:"subnet4"`
	Gateway4     netip.Addr   `json:"gateway4"`
	DockerRange4 netip.Prefix `json:"docker_range4"` // Docker's IPAM hands out only these
	Subnet6      netip.Prefix `json:"subnet6,omitzero"`
	Gateway6     netip.Addr   `json:"gateway6,omitzero"`
	IPv6Mode     string       `json:"ipv6_mode,omitempty"`

	Isolated  bool         `json:"isolated,omitempty"`
	Internal  bool         `json:"internal,omitempty"`
	Outbound  string       `json:"outbound"`
	DHCP      bool         `json:"dhcp"`
	Multicast []netip.Addr `json:"multicast,omitempty"`
	MTU       int          `json:"mtu,omitempty"`
}

// DNSAddrs returns where the project's DNS/DHCP server listens on n: the
// gateway addresses.
func (n *Network) DNSAddrs() []netip.Addr {
	var out []netip.Addr
	if n.Gateway4.IsValid() {
		out = append(out, n.Gateway4)
	}
	if n.Gateway6.IsValid() {
		out = append(out, n.Gateway6)
	}
	return out
}

// Member kinds.
const (
	Container = "container"
	VM        = "vm"
)

// Member is one container (one replica of a service) or one VM.
type Member struct {
	Name     string `json:"name"` // unique across the project; also its DNS name
	Kind     string `json:"kind"`
	Service  string `json:"service"` // the services: or vms: key
	Replica  int    `json:"replica"` // 1-based
	Hostname string `json:"hostname"`
	// Container is the engine's name for a container member.
	Container string `json:"container,omitempty"`

	NICs      []*NIC        `json:"nics,omitempty"`
	Ports     []Port        `json:"ports,omitempty"`
	DependsOn []Dependency  `json:"depends_on,omitempty"`
	Records   []spec.Record `json:"records,omitempty"` // seen by this member only (VMs)

	// ConfigHash changes whenever anything that needs the member recreated
	// changes.
	ConfigHash string `json:"config_hash"`
}

// NIC is a member's interface on one network.
type NIC struct {
	Network string     `json:"network"`
	MAC     string     `json:"mac"`
	IPv4    netip.Addr `json:"ipv4,omitzero"`
	IPv6    netip.Addr `json:"ipv6,omitzero"`
	Tap     string     `json:"tap,omitempty"` // VMs only
	Aliases []string   `json:"aliases,omitempty"`
	// Netem is the impairment of the member's port on the network (the
	// member's x-foldup.netem, else the network's); Ifb is the device
	// that carries what the member sends through it, when it applies
	// to that direction. Neither is in the configuration hash.
	Netem *spec.Netem `json:"netem,omitempty"`
	Ifb   string      `json:"ifb,omitempty"`
}

// Port is a host port forwarded to a member.
type Port struct {
	HostIP   string `json:"host_ip,omitempty"`
	HostPort uint16 `json:"host_port"`
	Target   uint16 `json:"target"`
	Protocol string `json:"protocol"`
}

// Dependency is an edge of the member graph.
type Dependency struct {
	Member    string `json:"member"`
	Condition string `json:"condition"`
	Required  bool   `json:"required"`
}

// Observed is what the runtime sees of the host and of the project's
// previous run. The zero value is a host with nothing on it.
type Observed struct {
	// UsedSubnets are taken on the host (routes, other projects, Docker):
	// automatic subnets avoid them.
	UsedSubnets []netip.Prefix
	// Previous is the plan last applied, if any. Its automatic choices are
	// kept wherever they are still valid.
	Previous *Plan
	// Networks that exist, by name in the file.
	Networks map[string]bool
	// Members that exist, by member name.
	Members map[string]MemberState
	// DNSRunning says whether the project's DNS/DHCP server runs.
	DNSRunning bool
	// ForwardedPorts are the host ports other projects forward.
	ForwardedPorts []ForwardedPort
}

// ForwardedPort is a host port that something else forwards already.
type ForwardedPort struct {
	Port
	Owner string // who it is forwarded to, in words: "web of project shop"
}

// MemberState is what is observed of one member.
type MemberState struct {
	Kind       string // Container or VM
	Running    bool
	ConfigHash string
	// Container is the engine's name for a container member.
	Container string
}

// Network returns the plan's network of that name, or nil.
func (p *Plan) Network(name string) *Network {
	for _, n := range p.Networks {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// HasContainers says whether the plan has a container member: whether
// the project needs a container engine.
func (p *Plan) HasContainers() bool {
	return slices.ContainsFunc(p.Members, func(m *Member) bool { return m.Kind == Container })
}
