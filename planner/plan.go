package planner

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/foldup/foldup/spec"
)

// planner holds the state of one Compute call.
type planner struct {
	p    *spec.Project
	obs  Observed
	in   Intent
	errs spec.ErrorList
	plan *Plan

	nets    map[string]*Network
	members map[string]*Member
	// Who holds what, for conflict checks and probing.
	ips   map[netip.Addr]string // address -> member name
	macs  map[string]string     // MAC -> member/network
	links map[string]bool       // interface names
	prev  map[string]*NIC       // previous plan's NICs by member/network
	// Networks whose explicit IPv4 or IPv6 subnet was rejected, already
	// reported: addresses on them are not checked again.
	bad4, bad6 map[string]bool
}

// Compute plans project p on a host where obs was observed. It returns
// every problem found as a spec.ErrorList, positioned in the project's
// files.
func Compute(p *spec.Project, obs Observed, in Intent) (*Plan, error) {
	pl := &planner{
		p:       p,
		obs:     obs,
		in:      in,
		nets:    map[string]*Network{},
		members: map[string]*Member{},
		ips:     map[netip.Addr]string{},
		macs:    map[string]string{},
		links:   map[string]bool{},
		prev:    map[string]*NIC{},
		bad4:    map[string]bool{},
		bad6:    map[string]bool{},
		plan: &Plan{
			Project:  p.Name,
			Domain:   p.Settings.Domain,
			Upstream: p.Settings.Upstream,
			Records:  p.DNS,
		},
	}
	if obs.Previous != nil {
		for _, m := range obs.Previous.Members {
			for _, nic := range m.NICs {
				pl.prev[m.Name+"/"+nic.Network] = nic
			}
		}
	}
	pl.networks()
	pl.memberList()
	pl.addresses()
	pl.ports()
	pl.configHashes()
	pl.netem()
	if err := pl.errs.Err(); err != nil {
		return nil, err
	}
	if err := pl.checkIntent(); err != nil {
		return nil, err
	}
	pl.steps()
	if err := pl.errs.Err(); err != nil {
		return nil, err
	}
	return pl.plan, nil
}

func (pl *planner) errorf(path []string, format string, args ...any) {
	pl.errs.Add(pl.p.Locate(path...), strings.Join(path, "."), format, args...)
}

func (pl *planner) keyErrorf(path []string, format string, args ...any) {
	pl.errs.Add(pl.p.LocateKey(path...), strings.Join(path, "."), format, args...)
}

// networks decides each network's subnets, gateways and bridge name.
func (pl *planner) networks() {
	p := pl.p
	names := slices.Sorted(maps.Keys(p.Compose.Networks))
	var taken []netip.Prefix // subnets given to this project's networks
	// Networks whose explicit subnet of a family was rejected: no automatic
	// one replaces it, or every later error would speak of the wrong subnet.
	bad4, bad6 := pl.bad4, pl.bad6

	// Explicit subnets first, so automatic ones avoid them.
	for _, name := range names {
		cn := p.Compose.Networks[name]
		ext := p.Networks[name]
		n := &Network{
			Name:       name,
			DockerName: cn.Name,
			External:   bool(cn.External),
			IPv6Mode:   ext.IPv6,
			Isolated:   ext.Isolated,
			Internal:   cn.Internal,
			Outbound:   ext.Outbound,
			DHCP:       ext.DHCP,
			Multicast:  ext.Multicast,
		}
		if n.DockerName == "" {
			n.DockerName = p.Name + "_" + name
		}
		if mtu, ok := cn.DriverOpts["com.docker.network.driver.mtu"]; ok {
			v, err := strconv.Atoi(mtu)
			if err != nil || v < 576 || v > 65535 {
				pl.errorf([]string{"networks", name, "driver_opts", "com.docker.network.driver.mtu"}, "%q is not an MTU from 576 to 65535", mtu)
			}
			n.MTU = v
		}
		pl.nets[name] = n
		pl.plan.Networks = append(pl.plan.Networks, n)
		if n.External {
			continue
		}
		pl.bridgeName(n)
		for i, pool := range cn.Ipam.Config {
			at := []string{"networks", name, "ipam", "config", strconv.Itoa(i)}
			if pool.Subnet == "" {
				continue
			}
			pfx, err := netip.ParsePrefix(pool.Subnet)
			if err != nil {
				pl.errorf(append(at, "subnet"), "%q is not a subnet (ADDRESS/BITS)", pool.Subnet)
				bad4[name], bad6[name] = true, true
				continue
			}
			is4 := pfx.Addr().Is4()
			bad := bad6
			if is4 {
				bad = bad4
			}
			bad[name] = true // until it passes every check below
			if pfx != pfx.Masked() {
				pl.errorf(append(at, "subnet"), "%q has host bits set; the subnet is %s", pool.Subnet, pfx.Masked())
				continue
			}
			switch {
			case is4 && n.Subnet4.IsValid(), !is4 && n.Subnet6.IsValid():
				pl.errorf(append(at, "subnet"), "a second IPv%s subnet; foldup networks have one of each family", map[bool]string{true: "4", false: "6"}[is4])
				continue
			case is4 && pfx.Bits() > 29:
				pl.errorf(append(at, "subnet"), "%s is too small: a network needs at least a /29", pfx)
				continue
			case !is4 && pfx.Bits() > 120:
				pl.errorf(append(at, "subnet"), "%s is too small: a network needs at least a /120", pfx)
				continue
			case !is4 && n.IPv6Mode != spec.IPv6Static && pfx.Bits() != 64:
				pl.errorf(append(at, "subnet"), "%s: IPv6 mode %s needs a /64 (or use x-foldup.ipv6: static)", pfx, n.IPv6Mode)
				continue
			}
			for _, other := range taken {
				if other.Overlaps(pfx) {
					pl.errorf(append(at, "subnet"), "%s overlaps %s of network %q", pfx, other, pl.netOf(other))
				}
			}
			taken = append(taken, pfx)
			delete(bad, name)
			gw := addrAt(pfx, 1)
			if pool.Gateway != "" {
				g, err := netip.ParseAddr(pool.Gateway)
				if err != nil || !pfx.Contains(g) || g == pfx.Addr() || (is4 && g == lastAddr(pfx)) {
					pl.errorf(append(at, "gateway"), "%q is not a host address in %s", pool.Gateway, pfx)
					bad[name] = true
					continue
				}
				gw = g
			}
			if is4 {
				n.Subnet4, n.Gateway4 = pfx, gw
				if pool.IPRange != "" {
					r, err := netip.ParsePrefix(pool.IPRange)
					if err != nil || !pfx.Contains(r.Addr()) || r.Bits() < pfx.Bits() {
						pl.errorf(append(at, "ip_range"), "%q is not a range inside %s", pool.IPRange, pfx)
						continue
					}
					n.DockerRange4 = r.Masked()
				}
			} else {
				n.Subnet6, n.Gateway6 = pfx, gw
			}
		}
	}

	// Automatic subnets: IPv4 from the address pools, IPv6 from a unique
	// local prefix derived from the project.
	for _, name := range names {
		n := pl.nets[name]
		if n.External {
			continue
		}
		cn := p.Compose.Networks[name]
		if !n.Subnet4.IsValid() && !bad4[name] && (cn.EnableIPv4 == nil || *cn.EnableIPv4) {
			if pfx, ok := pl.autoSubnet4(n, append(taken, pl.obs.UsedSubnets...)); ok {
				n.Subnet4, n.Gateway4 = pfx, addrAt(pfx, 1)
				taken = append(taken, pfx)
			}
		}
		if !n.Subnet6.IsValid() && !bad6[name] && cn.EnableIPv6 != nil && *cn.EnableIPv6 {
			if pfx, ok := pl.autoSubnet6(n, append(taken, pl.obs.UsedSubnets...)); ok {
				n.Subnet6, n.Gateway6 = pfx, addrAt(pfx, 1)
				taken = append(taken, pfx)
			}
		}
		if !n.Subnet4.IsValid() && !n.Subnet6.IsValid() && !bad4[name] && !bad6[name] {
			pl.keyErrorf([]string{"networks", name}, "has neither an IPv4 nor an IPv6 subnet")
		}
	}
}

func (pl *planner) netOf(pfx netip.Prefix) string {
	for _, n := range pl.plan.Networks {
		if n.Subnet4 == pfx || n.Subnet6 == pfx {
			return n.Name
		}
	}
	return "?"
}

// autoSubnet4 picks a free subnet from the address pools: the previous
// plan's when it is still free, else the one a hash of the project and
// network points at, else the next free one after it.
func (pl *planner) autoSubnet4(n *Network, avoid []netip.Prefix) (netip.Prefix, bool) {
	if prev := pl.prevNetwork(n.Name); prev != nil && prev.Subnet4.IsValid() && !overlaps(prev.Subnet4, avoid) {
		return prev.Subnet4, true
	}
	for _, pool := range pl.p.Settings.AddressPools {
		count := uint64(1) << (pool.Size - pool.Base.Bits())
		start := hash64(pl.p.Name, n.Name) % count
		for i := range count {
			idx := (start + i) % count
			pfx := netip.PrefixFrom(addrAt(pool.Base, idx<<(32-pool.Size)), pool.Size)
			if !overlaps(pfx, avoid) {
				return pfx, true
			}
		}
	}
	pl.keyErrorf([]string{"networks", n.Name}, "no free subnet left in the address pools (x-foldup.address_pools)")
	return netip.Prefix{}, false
}

// autoSubnet6 derives a /64 in the unique local range (RFC 4193): fd, a
// 40-bit global ID from the project name, a 16-bit subnet ID from the
// network name.
func (pl *planner) autoSubnet6(n *Network, avoid []netip.Prefix) (netip.Prefix, bool) {
	if prev := pl.prevNetwork(n.Name); prev != nil && prev.Subnet6.IsValid() && !overlaps(prev.Subnet6, avoid) {
		return prev.Subnet6, true
	}
	global := hashBytes("ula", pl.p.Name)
	start := uint16(hash64("ula", pl.p.Name, n.Name))
	for i := range 1 << 16 {
		sub := start + uint16(i)
		var b [16]byte
		b[0] = 0xfd
		copy(b[1:6], global[:5])
		b[6], b[7] = byte(sub>>8), byte(sub)
		pfx := netip.PrefixFrom(netip.AddrFrom16(b), 64)
		if !overlaps(pfx, avoid) {
			return pfx, true
		}
	}
	pl.keyErrorf([]string{"networks", n.Name}, "no free IPv6 /64 left in the project's unique local prefix; give the network an ipam subnet")
	return netip.Prefix{}, false
}

func (pl *planner) prevNetwork(name string) *Network {
	if pl.obs.Previous == nil {
		return nil
	}
	for _, n := range pl.obs.Previous.Networks {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// bridgeName names n's bridge "fub" plus 8 hex digits of a hash of the
// project and network: 11 bytes, inside the kernel's 15, and the same on
// every run.
func (pl *planner) bridgeName(n *Network) {
	n.Bridge = pl.linkName("fub", pl.p.Name, "network", n.Name)
}

func (pl *planner) linkName(prefix string, parts ...string) string {
	for salt := 0; ; salt++ {
		ps := parts
		if salt > 0 {
			ps = append(slices.Clip(parts), strconv.Itoa(salt))
		}
		name := fmt.Sprintf("%s%08x", prefix, uint32(hash64(ps...)))
		if !pl.links[name] {
			pl.links[name] = true
			return name
		}
	}
}

// memberList makes a member of each container replica and each VM.
func (pl *planner) memberList() {
	p := pl.p
	for _, name := range p.ServiceNames() {
		svc := p.Compose.Services[name]
		scale := svc.GetScale()
		for r := 1; r <= scale; r++ {
			m := &Member{Name: name, Kind: Container, Service: name, Replica: r, Hostname: svc.Hostname}
			if scale > 1 {
				m.Name = fmt.Sprintf("%s-%d", name, r)
			}
			if m.Hostname == "" {
				m.Hostname = m.Name
			}
			pl.addMember(m)
		}
	}
	for _, name := range p.VMNames() {
		pl.addMember(&Member{Name: name, Kind: VM, Service: name, Replica: 1, Hostname: name, Records: p.VMs[name].DNS})
	}
	slices.SortFunc(pl.plan.Members, func(a, b *Member) int { return cmp.Compare(a.Name, b.Name) })
}

func (pl *planner) addMember(m *Member) {
	if other, ok := pl.members[m.Name]; ok {
		// web-2 as a replica of web and a service of its own.
		pl.keyErrorf(pl.memberPath(m), "member name %q is also a replica of %q", m.Name, other.Service)
		return
	}
	pl.members[m.Name] = m
	pl.plan.Members = append(pl.plan.Members, m)
}

func (pl *planner) memberPath(m *Member, f ...string) []string {
	section := "services"
	if m.Kind == VM {
		section = "vms"
	}
	return append([]string{section, m.Service}, f...)
}

// attachment is what the file says of one member on one network.
type attachment struct {
	network     string
	ipv4, ipv6  string
	mac         string
	aliases     []string
	pathNetwork []string // where the attachment is written
	macPath     []string // where the MAC is written
}

func (pl *planner) attachments(m *Member) []attachment {
	var out []attachment
	if m.Kind == VM {
		vm := pl.p.VMs[m.Service]
		for _, n := range slices.Sorted(maps.Keys(vm.Networks)) {
			a := vm.Networks[n]
			path := pl.memberPath(m, "networks", n)
			out = append(out, attachment{n, a.IPv4, a.IPv6, a.MAC, a.Aliases, path, append(slices.Clip(path), "mac_address")})
		}
		return out
	}
	svc := pl.p.Compose.Services[m.Service]
	if svc.NetworkMode != "" {
		return nil // host, none, service:x or container:x: no NIC of ours
	}
	for _, n := range slices.Sorted(maps.Keys(svc.Networks)) {
		a := attachment{network: n, pathNetwork: pl.memberPath(m, "networks", n)}
		if c := svc.Networks[n]; c != nil {
			a.ipv4, a.ipv6, a.mac, a.aliases = c.Ipv4Address, c.Ipv6Address, c.MacAddress, c.Aliases
		}
		a.macPath = append(slices.Clip(a.pathNetwork), "mac_address")
		if a.mac == "" && len(svc.Networks) == 1 && svc.MacAddress != "" {
			a.mac, a.macPath = svc.MacAddress, pl.memberPath(m, "mac_address")
		}
		if m.Replica > 1 || svc.GetScale() > 1 {
			// Replicas cannot share the one static address or MAC given.
			for _, f := range []struct {
				v    *string
				path []string
			}{{&a.ipv4, append(slices.Clip(a.pathNetwork), "ipv4_address")}, {&a.ipv6, append(slices.Clip(a.pathNetwork), "ipv6_address")}, {&a.mac, a.macPath}} {
				if *f.v != "" && m.Replica == 1 {
					pl.errorf(f.path, "a static address or MAC cannot be shared by %d replicas", svc.GetScale())
				}
				*f.v = ""
			}
		}
		out = append(out, a)
	}
	return out
}

// addresses assigns each member's NICs, in three passes so that nothing
// automatic can take what is static or was given before: static addresses
// and MACs, then the previous plan's, then new ones.
func (pl *planner) addresses() {
	type pending struct {
		m   *Member
		nic *NIC
		a   attachment
	}
	var all []pending
	for _, m := range pl.plan.Members {
		for _, a := range pl.attachments(m) {
			n := pl.nets[a.network]
			if n == nil {
				pl.keyErrorf(a.pathNetwork, "undefined network %q", a.network)
				continue
			}
			nic := &NIC{Network: a.network, Aliases: a.aliases}
			if m.Kind == VM {
				nic.Tap = pl.linkName("fut", pl.p.Name, "tap", m.Name, a.network)
			}
			m.NICs = append(m.NICs, nic)
			if n.External {
				continue // Docker's IPAM decides there
			}
			all = append(all, pending{m, nic, a})
		}
	}

	// Pass 1: static values.
	for _, e := range all {
		n := pl.nets[e.a.network]
		if e.a.mac != "" {
			if msg := spec.CheckMAC(e.a.mac); msg != "" {
				pl.errorf(e.a.macPath, "%s", msg)
			} else {
				mac, _ := net.ParseMAC(e.a.mac)
				e.nic.MAC = mac.String()
				pl.claimMAC(e.nic.MAC, e.m, e.a, true)
			}
		}
		if e.a.ipv4 != "" {
			pl.static(e.m, e.nic, e.a, n, e.a.ipv4, 4)
		}
		if e.a.ipv6 != "" {
			pl.static(e.m, e.nic, e.a, n, e.a.ipv6, 6)
		}
	}
	// The Docker range avoids the VMs' static addresses: Docker's IPAM
	// knows nothing of them.
	for _, n := range pl.plan.Networks {
		if n.Subnet4.IsValid() && !n.DockerRange4.IsValid() {
			n.DockerRange4 = pl.dockerRange(n)
		}
	}
	// Pass 2: what the previous plan gave, when still valid.
	for _, e := range all {
		prev := pl.prev[e.m.Name+"/"+e.a.network]
		if prev == nil {
			continue
		}
		n := pl.nets[e.a.network]
		if e.nic.MAC == "" && prev.MAC != "" && pl.macs[prev.MAC] == "" {
			e.nic.MAC = prev.MAC
			pl.claimMAC(prev.MAC, e.m, e.a, false)
		}
		if !e.nic.IPv4.IsValid() && prev.IPv4.IsValid() && pl.usable4(n, prev.IPv4) {
			e.nic.IPv4 = prev.IPv4
			pl.ips[prev.IPv4] = e.m.Name
		}
		if !e.nic.IPv6.IsValid() && prev.IPv6.IsValid() && n.Subnet6.Contains(prev.IPv6) && pl.ips[prev.IPv6] == "" && n.IPv6Mode == spec.IPv6Static {
			e.nic.IPv6 = prev.IPv6
			pl.ips[prev.IPv6] = e.m.Name
		}
	}
	// Pass 3: new values, members in name order.
	for _, e := range all {
		n := pl.nets[e.a.network]
		if e.nic.MAC == "" {
			e.nic.MAC = pl.autoMAC(e.m, e.a)
		}
		if !e.nic.IPv4.IsValid() && n.Subnet4.IsValid() {
			e.nic.IPv4 = pl.auto4(n, e.m, e.a)
		}
		if !e.nic.IPv6.IsValid() && n.Subnet6.IsValid() {
			e.nic.IPv6 = pl.auto6(n, e.m, e.nic)
		}
	}
}

func (pl *planner) static(m *Member, nic *NIC, a attachment, n *Network, s string, family int) {
	field := "ipv4_address"
	subnet := n.Subnet4
	if family == 6 {
		field, subnet = "ipv6_address", n.Subnet6
	}
	path := append(slices.Clip(a.pathNetwork), field)
	addr, err := netip.ParseAddr(s)
	switch {
	case err != nil || (family == 4) != addr.Is4():
		pl.errorf(path, "%q is not an IPv%d address", s, family)
		return
	case !subnet.IsValid() && (pl.bad4[a.network] && family == 4 || pl.bad6[a.network] && family == 6):
		return // the subnet's own error says it all
	case !subnet.IsValid():
		pl.errorf(path, "network %q has no IPv%d subnet", a.network, family)
		return
	case !subnet.Contains(addr):
		pl.errorf(path, "%s is outside network %q's subnet %s", addr, a.network, subnet)
		return
	case family == 6 && m.Kind == VM && n.IPv6Mode != spec.IPv6Static:
		// A guest forms its own address from the router advertisement;
		// DNS and the firewall would know one it never takes.
		pl.errorf(path, "a VM on network %q forms its own IPv6 address (x-foldup.ipv6: %s): a static address needs x-foldup.ipv6: static there", a.network, n.IPv6Mode)
		return
	case addr == subnet.Addr():
		pl.errorf(path, "%s is the network address of %s", addr, subnet)
		return
	case family == 4 && addr == lastAddr(subnet):
		pl.errorf(path, "%s is the broadcast address of %s", addr, subnet)
		return
	case addr == n.Gateway4 || addr == n.Gateway6:
		pl.errorf(path, "%s is the gateway (foldup's DNS/DHCP server) of network %q", addr, a.network)
		return
	}
	if other, ok := pl.ips[addr]; ok {
		pl.errorf(path, "%s is already %s's address", addr, other)
		return
	}
	pl.ips[addr] = m.Name
	if family == 4 {
		nic.IPv4 = addr
	} else {
		nic.IPv6 = addr
	}
}

// dockerRange returns the part of n's subnet that Docker's own IPAM may
// hand out (to containers joined by hand with docker run --network): the
// largest aligned block, at most half the subnet, that holds no address
// of the plan and not the gateway, the highest such block first. Docker
// never sees VM addresses, so its range must keep clear of them.
func (pl *planner) dockerRange(n *Network) netip.Prefix {
	for bits := n.Subnet4.Bits() + 1; bits <= 31; bits++ {
		block := uint64(1) << (32 - bits)
		for off := size(n.Subnet4) - block; ; off -= block {
			r := netip.PrefixFrom(addrAt(n.Subnet4, off), bits)
			clear := !r.Contains(n.Gateway4)
			for a := range pl.ips {
				if clear && r.Contains(a) {
					clear = false
				}
			}
			if clear {
				return r
			}
			if off == 0 {
				break
			}
		}
	}
	pl.keyErrorf([]string{"networks", n.Name}, "static addresses leave no block of %s for Docker's own IPAM; set ipam.config ip_range", n.Subnet4)
	return netip.Prefix{}
}

func (pl *planner) usable4(n *Network, a netip.Addr) bool {
	return n.Subnet4.Contains(a) && a != n.Subnet4.Addr() && a != lastAddr(n.Subnet4) &&
		a != n.Gateway4 && !n.DockerRange4.Contains(a) && pl.ips[a] == ""
}

// auto4 gives m an address in n: the one a hash of project, network and
// member points at within the member pool (the subnet less Docker's
// range), or the next free one after it. Hashing into the pool itself
// spreads members evenly, so that a new member seldom collides with, and
// never moves, another.
func (pl *planner) auto4(n *Network, m *Member, a attachment) netip.Addr {
	type span struct{ lo, hi uint64 } // offsets [lo, hi)
	last := size(n.Subnet4) - 1       // broadcast
	spans := []span{{1, last}}
	if r := n.DockerRange4; r.IsValid() {
		lo := offsetOf(n.Subnet4, r.Addr())
		hi := min(lo+size(r), last)
		spans = []span{{1, max(lo, 1)}, {hi, last}}
	}
	var total uint64
	for _, s := range spans {
		if s.hi > s.lo {
			total += s.hi - s.lo
		}
	}
	at := func(i uint64) netip.Addr {
		for _, s := range spans {
			if s.hi <= s.lo {
				continue
			}
			if i < s.hi-s.lo {
				return addrAt(n.Subnet4, s.lo+i)
			}
			i -= s.hi - s.lo
		}
		return netip.Addr{}
	}
	if total > 0 {
		start := hash64(pl.p.Name, n.Name, m.Name) % total
		for i := range total {
			addr := at((start + i) % total)
			if pl.usable4(n, addr) {
				pl.ips[addr] = m.Name
				return addr
			}
		}
	}
	if total == 0 {
		pl.errorf(a.pathNetwork, "network %q's ip_range %s leaves no address of %s for foldup's members", n.Name, n.DockerRange4, n.Subnet4)
		return netip.Addr{}
	}
	pl.errorf(a.pathNetwork, "network %q's subnet %s has no free address left", n.Name, n.Subnet4)
	return netip.Addr{}
}

// auto6 gives m its IPv6 address in n as the network's mode says: EUI-64
// of the MAC (slaac), RFC 7217 as the guest will form it (stable-privacy),
// or a hashed host part (static).
func (pl *planner) auto6(n *Network, m *Member, nic *NIC) netip.Addr {
	mac, err := net.ParseMAC(nic.MAC)
	if err != nil || len(mac) != 6 {
		return netip.Addr{}
	}
	var hw [6]byte
	copy(hw[:], mac)
	var addr netip.Addr
	switch n.IPv6Mode {
	case spec.IPv6SLAAC:
		addr = eui64(n.Subnet6, hw)
	case spec.IPv6StablePrivacy:
		addr = stablePrivacy(n.Subnet6, StableSecret(pl.p.Name, m.Name, n.Name), hw, 0)
	default:
		hb := hostBits(n.Subnet6)
		count := uint64(1) << min(hb, 63)
		start := hash64(pl.p.Name, n.Name, m.Name, "v6") % count
		for i := range count {
			a := addrAt(n.Subnet6, (start+i)%count)
			if a != n.Subnet6.Addr() && a != n.Gateway6 && pl.ips[a] == "" {
				addr = a
				break
			}
		}
		if !addr.IsValid() {
			pl.errorf(pl.memberPath(m, "networks", n.Name), "network %q's subnet %s has no free IPv6 address left", n.Name, n.Subnet6)
			return netip.Addr{}
		}
	}
	if other, ok := pl.ips[addr]; ok && addr.IsValid() {
		pl.errorf(pl.memberPath(m, "networks", n.Name), "IPv6 address %s of %s is already %s's", addr, m.Name, other)
	}
	pl.ips[addr] = m.Name
	return addr
}

// StableSecret is the stable_secret (RFC 7217) a member is given for its
// interface on network, so that the address the guest forms is known in
// advance.
func StableSecret(project, member, network string) [16]byte {
	var s [16]byte
	copy(s[:], hashBytes("stable-secret", project, member, network))
	return s
}

func (pl *planner) claimMAC(mac string, m *Member, a attachment, static bool) {
	if other, ok := pl.macs[mac]; ok {
		pl.errorf(a.macPath, "%s is already the MAC of %s", mac, other)
		return
	}
	pl.macs[mac] = m.Name + " on " + a.network
}

// autoMAC derives a locally administered unicast MAC from the project,
// member and network.
func (pl *planner) autoMAC(m *Member, a attachment) string {
	for salt := 0; ; salt++ {
		b := hashBytes("mac", pl.p.Name, m.Name, a.network, strconv.Itoa(salt))
		b[0] = b[0]&0xfc | 0x02 // locally administered, unicast
		mac := net.HardwareAddr(b[:6]).String()
		if _, taken := pl.macs[mac]; !taken {
			pl.claimMAC(mac, m, a, false)
			return mac
		}
	}
}

// ports lists the host ports forwarded to each member and reports clashes:
// the same port and protocol on the same host address, or on any address
// when either side listens on all of them.
func (pl *planner) ports() {
	type key struct {
		port  uint16
		proto string
	}
	type holder struct{ ip, member string }
	holders := map[key][]holder{}
	for _, fp := range pl.obs.ForwardedPorts {
		k := key{fp.HostPort, fp.Protocol}
		holders[k] = append(holders[k], holder{fp.HostIP, fp.Owner})
	}
	wildcard := func(ip string) bool { return ip == "" || ip == "0.0.0.0" || ip == "::" }
	for _, m := range pl.plan.Members {
		var cfgs []types.ServicePortConfig
		if m.Kind == VM {
			cfgs = pl.p.VMs[m.Service].Ports
		} else {
			cfgs = pl.p.Compose.Services[m.Service].Ports
		}
		for _, c := range cfgs {
			if c.Published == "" || strings.Contains(c.Published, "-") {
				continue // Docker picks the host port
			}
			// compose-go has expanded port ranges, so i is not an index into
			// the file's list: errors point at the ports key.
			at := pl.memberPath(m, "ports")
			n, err := strconv.ParseUint(c.Published, 10, 16)
			if err != nil {
				pl.keyErrorf(at, "%q is not a host port", c.Published)
				continue
			}
			port := Port{HostIP: c.HostIP, HostPort: uint16(n), Target: uint16(c.Target), Protocol: cmp.Or(c.Protocol, "tcp")}
			m.Ports = append(m.Ports, port)
			k := key{port.HostPort, port.Protocol}
			for _, h := range holders[k] {
				if h.ip == port.HostIP || wildcard(h.ip) || wildcard(port.HostIP) {
					pl.keyErrorf(at, "host port %d/%s is already forwarded to %s", port.HostPort, port.Protocol, h.member)
					break
				}
			}
			holders[k] = append(holders[k], holder{port.HostIP, m.Name})
		}
	}
}

// netem gives each NIC its impairment, after the configuration hashes:
// changing one changes qdiscs, never the member.
func (pl *planner) netem() {
	for _, m := range pl.plan.Members {
		for _, nic := range m.NICs {
			n := pl.p.NetemFor(m.Service, nic.Network)
			if n == nil || (*n == spec.Netem{Direction: n.Direction}) {
				continue
			}
			nic.Netem = n
			if n.Direction == spec.NetemFrom || n.Direction == spec.NetemBoth {
				nic.Ifb = pl.linkName("fui", pl.p.Name, "ifb", m.Name, nic.Network)
			}
		}
	}
}

// configHashes fingerprints each member's configuration and network
// placement. The runtime recreates a member whose hash changed.
func (pl *planner) configHashes() {
	for _, m := range pl.plan.Members {
		var cfg any
		if m.Kind == VM {
			cfg = pl.p.VMs[m.Service]
		} else {
			cfg = pl.p.Compose.Services[m.Service]
		}
		b, err := json.Marshal(struct {
			Config any
			NICs   []*NIC
			Ports  []Port
		}{cfg, m.NICs, m.Ports})
		if err != nil {
			pl.errorf(pl.memberPath(m), "hashing configuration: %v", err)
			continue
		}
		sum := sha256.Sum256(b)
		m.ConfigHash = hex.EncodeToString(sum[:8])
	}
}
