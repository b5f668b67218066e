package dnsd

import (
	"net"
	"net/netip"
	"time"

	"github.com/foldup/foldup/spec"
)

// Config is what the server answers: the names of DNS, the addresses of
// DHCPv4 and DHCPv6, the prefixes of router advertisements.
type Config struct {
	// Domain is the project's domain (e.g. shop.foldup.internal): members
	// are NAME.Domain, relative record names are under it.
	Domain string
	// Members are the project's containers and VMs.
	Members []Member
	// Records are seen by every querier.
	Records []spec.Record
	// Subnets are the project's networks: reverse lookups inside them are
	// answered here (NXDOMAIN when unknown), never sent upstream.
	Subnets []netip.Prefix
	// Upstream resolvers (host:port) for names that are not the project's.
	// None: such queries are refused.
	Upstream []string
	// Networks are where the server hands out addresses and advertises
	// prefixes. Only Start uses them: a Server keeps the networks it was
	// started on.
	Networks []Network
}

// Member is one container or VM.
type Member struct {
	Name    string   // its DNS name, unique in the project
	Aliases []string // more names (network aliases, a hostname)
	Addrs   []netip.Addr
	// Records only this member sees (Fold's per-VM bindings); chosen by
	// the querier's source address being one of Addrs. They shadow
	// project-wide records of the same name.
	Records []spec.Record
	// Hostname is what DHCP tells the member to call itself (Name if
	// empty).
	Hostname string
	// NICs are the member's interfaces on networks the server hands out
	// addresses on: its static leases.
	NICs []NIC
}

// NIC is a member's interface on one network.
type NIC struct {
	Network string // Network.Name
	MAC     net.HardwareAddr
	IPv4    netip.Addr // its DHCPv4 lease, if valid
	IPv6    netip.Addr // its DHCPv6 lease, if valid and the network is IPv6Static
}

// Network is one network the server serves: it listens on Interface at
// the gateway addresses.
type Network struct {
	Name      string
	Interface string // the bridge

	Subnet4  netip.Prefix
	Gateway4 netip.Addr // the server's address; the DNS server DHCP names
	// Router says whether DHCP and RAs offer the gateway as the default
	// router (not on isolated networks).
	Router bool
	// DHCP4 says whether to answer DHCPv4 at all.
	DHCP4 bool
	// Pool4, when valid, is a range [Pool4.Start, Pool4.End] from which
	// MACs that are no member's get addresses; otherwise they get nothing.
	Pool4 Range
	// Routes are classless static routes (RFC 3442) to hand out.
	Routes []Route
	MTU    int           // 0: not sent
	Lease  time.Duration // 0: DefaultLease

	Subnet6  netip.Prefix // a /64 to advertise; invalid: no IPv6
	Gateway6 netip.Addr
	IPv6Mode string // spec.IPv6SLAAC, spec.IPv6Static or spec.IPv6StablePrivacy
}

// Range is an inclusive range of addresses.
type Range struct{ Start, End netip.Addr }

// Valid reports whether r holds at least one address.
func (r Range) Valid() bool {
	return r.Start.IsValid() && r.End.IsValid() && r.Start.BitLen() == r.End.BitLen() && r.Start.Compare(r.End) <= 0
}

// Contains reports whether a is in r.
func (r Range) Contains(a netip.Addr) bool {
	return r.Valid() && a.BitLen() == r.Start.BitLen() && r.Start.Compare(a) <= 0 && a.Compare(r.End) <= 0
}

// Route is a classless static route: Dst via Gateway.
type Route struct {
	Dst     netip.Prefix
	Gateway netip.Addr
}

// DefaultLease is the DHCP lease time when a network sets none: short
// enough that a recreated member's address is everyone's soon, long
// enough that renewals are no load (dnsmasq's default is an hour; a lab
// network changes more often).
const DefaultLease = 10 * time.Minute
