//go:build linux

// Package firewall is the project's firewall as its plan has it: the
// nftables configuration (isolation, anti-spoofing, NAT, port forwards)
// and its member ports, the VMs' taps from the plan and the containers'
// veths from the engine.
package firewall

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/netip"
	"slices"

	dockernet "github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/foldup/foldup/containers"
	"github.com/foldup/foldup/network"
	"github.com/foldup/foldup/planner"
)

// Config is the project's firewall for plan pl with the given
// container ports (by interface name) and its VMs' taps.
func Config(project string, pl *planner.Plan, ports map[string]network.Port) network.Config {
	cfg := network.Config{Project: project}
	for _, n := range pl.Networks {
		if n.External {
			continue
		}
		cfg.Networks = append(cfg.Networks, network.Net{
			Bridge: n.Bridge, Gateway4: n.Gateway4, Gateway6: n.Gateway6,
			Isolated: n.Isolated, Outbound: n.Outbound, Multicast: n.Multicast,
		})
	}
	all := vmPorts(pl)
	maps.Copy(all, ports)
	for _, k := range slices.Sorted(maps.Keys(all)) {
		cfg.Ports = append(cfg.Ports, all[k])
	}
	for _, m := range pl.Members {
		for _, pt := range m.Ports {
			cfg.Forwards = append(cfg.Forwards, forwards(m, pt)...)
		}
		for _, nic := range m.NICs {
			if mac, err := net.ParseMAC(nic.MAC); err == nil {
				cfg.MACs = append(cfg.MACs, mac)
			}
		}
	}
	return cfg
}

// forwards are the DNAT rules of one planned port: to the member's first
// IPv4 address, and its first IPv6 one too unless the host address is
// IPv4.
func forwards(m *planner.Member, pt planner.Port) []network.Forward {
	hostIP, _ := netip.ParseAddr(pt.HostIP)
	var out []network.Forward
	for _, v6 := range []bool{false, true} {
		if hostIP.IsValid() && hostIP.Is6() != v6 && !hostIP.IsUnspecified() {
			continue
		}
		for _, nic := range m.NICs {
			to := nic.IPv4
			if v6 {
				to = nic.IPv6
			}
			if !to.IsValid() {
				continue
			}
			hip := hostIP
			if hip.IsUnspecified() {
				hip = netip.Addr{}
			}
			out = append(out, network.Forward{Protocol: pt.Protocol, HostIP: hip, HostPort: pt.HostPort, To: to, Port: pt.Target})
			break
		}
	}
	return out
}

// ContainerPorts finds a running container's veths on foldup's bridges
// (through the container's network namespace: the host end of each of
// its interfaces) and returns them as firewall member ports, each allowed
// to send only as the member's MAC and planned addresses. A container
// that is not running has none.
func ContainerPorts(ctx context.Context, dc containers.Engine, host *network.Host, pl *planner.Plan, m *planner.Member, name string) ([]network.Port, error) {
	if len(m.NICs) == 0 {
		return nil, nil
	}
	c, err := dc.ContainerInspect(ctx, name)
	if err != nil {
		return nil, err
	}
	if c.State == nil || c.State.Pid == 0 {
		return nil, nil // exited already (a one-shot job): nothing sends
	}
	peers, err := host.PeerPorts(c.State.Pid)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // it has exited since: nothing sends
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	var out []network.Port
	for _, nic := range m.NICs {
		n := pl.Network(nic.Network)
		if n == nil {
			continue
		}
		hw, _ := net.ParseMAC(nic.MAC)
		veth, ok := peers[hw.String()]
		if !ok && c.NetworkSettings != nil && c.NetworkSettings.Networks[n.DockerName] != nil {
			// An engine that gave the container a MAC of its own, not the
			// plan's (Podman 4.3's CNI backend does): the port is held to
			// that one.
			if own, err := net.ParseMAC(c.NetworkSettings.Networks[n.DockerName].MacAddress); err == nil {
				hw = own
				veth, ok = peers[hw.String()]
			}
		}
		if !ok {
			continue
		}
		p := network.Port{Name: veth, Bridge: n.Bridge, MAC: hw}
		if nic.IPv4.IsValid() {
			p.IPv4 = []netip.Addr{nic.IPv4}
		}
		if nic.IPv6.IsValid() {
			p.IPv6 = []netip.Addr{nic.IPv6}
		}
		out = append(out, p)
	}
	return out, nil
}

// SyncContainers brings the firewall's member ports to the project's
// running containers, as they are now. The supervisor calls it whenever
// one of them starts: a container restarted by its restart policy, by
// `foldup start` or by `docker start` comes back with a new veth, which
// must be held to the member's addresses like the old one.
func SyncContainers(ctx context.Context, dc containers.Engine, host *network.Host, project string, pl *planner.Plan) error {
	running, err := containers.List(ctx, dc, project, false)
	if err != nil {
		return err
	}
	ours := map[string]bool{}
	for _, c := range running {
		ours[c.ID] = true
	}
	ports, err := HandJoined(ctx, dc, host, pl, ours)
	if err != nil {
		return err
	}
	for _, m := range pl.Members {
		c, ok := running[m.Name]
		if m.Kind != planner.Container || !ok {
			continue
		}
		ps, err := ContainerPorts(ctx, dc, host, pl, m, c.ID)
		if client.IsErrNotFound(err) {
			continue // removed since the list
		}
		if err != nil {
			return err
		}
		for _, p := range ps {
			ports[p.Name] = p
		}
	}
	return host.FirewallApply(Config(project, pl, ports))
}

// HandJoined returns the ports of the containers someone joined to the
// project's networks by hand (`docker run --network P_lan`), ours aside
// (the project's containers, by ID): each held, as a member is, to the
// MAC and the addresses the engine gave it, so that it can neither send
// as another member nor serve DHCP or router advertisements. It is
// guarded from when the supervisor sees the engine connect it, a few
// milliseconds after; until then the bridge forwards its frames as any
// other port's.
func HandJoined(ctx context.Context, dc containers.Engine, host *network.Host, pl *planner.Plan, ours map[string]bool) (map[string]network.Port, error) {
	out := map[string]network.Port{}
	for _, n := range pl.Networks {
		if n.External {
			continue
		}
		nw, err := dc.NetworkInspect(ctx, n.DockerName, dockernet.InspectOptions{})
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for id, ep := range nw.Containers {
			if ours[id] {
				continue
			}
			c, err := dc.ContainerInspect(ctx, id)
			if errdefs.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if c.State == nil || c.State.Pid == 0 || c.Config != nil && c.Config.Labels[containers.LabelProject] == pl.Project && c.Config.Labels[containers.LabelOneOff] == "" {
				continue
			}
			peers, err := host.PeerPorts(c.State.Pid)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("container %s: %w", c.Name, err)
			}
			hw, err := net.ParseMAC(ep.MacAddress)
			veth, ok := peers[hw.String()]
			if err != nil || !ok {
				continue
			}
			p := network.Port{Name: veth, Bridge: n.Bridge, MAC: hw}
			if a, err := netip.ParsePrefix(ep.IPv4Address); err == nil {
				p.IPv4 = []netip.Addr{a.Addr()}
			}
			if a, err := netip.ParsePrefix(ep.IPv6Address); err == nil {
				p.IPv6 = []netip.Addr{a.Addr()}
			}
			out[veth] = p
		}
	}
	return out, nil
}

// vmPorts are the firewall member ports of the plan's VMs: their taps,
// known from the plan whether or not the VM runs yet.
func vmPorts(pl *planner.Plan) map[string]network.Port {
	out := map[string]network.Port{}
	for _, m := range pl.Members {
		if m.Kind != planner.VM {
			continue
		}
		for _, nic := range m.NICs {
			n := pl.Network(nic.Network)
			hw, err := net.ParseMAC(nic.MAC)
			if n == nil || err != nil || nic.Tap == "" {
				continue
			}
			p := network.Port{Name: nic.Tap, Bridge: n.Bridge, MAC: hw, RA: true}
			if nic.IPv4.IsValid() {
				p.IPv4 = []netip.Addr{nic.IPv4}
			}
			if nic.IPv6.IsValid() {
				p.IPv6 = []netip.Addr{nic.IPv6}
			}
			out[nic.Tap] = p
		}
	}
	return out
}
