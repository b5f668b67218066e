package dnsd

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/server6"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/net/ipv6"
)

// Options are how a Server runs, as opposed to what it serves.
type Options struct {
	// Enter runs fn in the network namespace of the networks' interfaces,
	// where the server's sockets must be made (network.Host.Do). Nil: the
	// caller's namespace.
	Enter func(fn func() error) error
	// LeaseFile is where leases are kept across restarts ("" keeps them
	// in memory only).
	LeaseFile string
	// DNSPort is the DNS port on each gateway address (0: 53).
	DNSPort uint16
	// DNSListen, if set, is where DNS listens instead of the gateways.
	DNSListen []netip.AddrPort
	// Logger receives what goes wrong that is nobody's error to return: a
	// client declining its address, a reply that could not be sent.
	Logger *slog.Logger

	now func() time.Time // test seam
}

// Server is a project's DNS, DHCPv4, DHCPv6 and router-advertisement
// server, on the gateway addresses of each of its networks.
type Server struct {
	dns    *DNS
	leases *leases
	log    *slog.Logger
	now    func() time.Time
	nets   []Network

	snap atomic.Pointer[snapshot]

	cfgMu sync.Mutex // guards cfg, and serialises updates
	cfg   Config     // what the server serves now

	closers []io.Closer
	done    chan struct{} // closed by Close: stops the advertisers
	wg      sync.WaitGroup
}

// snapshot is the part of a Config the DHCP servers answer from,
// replaced whole by Update like the DNS zone.
type snapshot struct {
	domain  string
	static  map[leaseKey]binding // members' DHCPv4 addresses by network and MAC
	static6 map[leaseKey]binding // and DHCPv6 addresses
	taken   map[netip.Addr]bool  // every member's static address: not the pool's
}

func newSnapshot(cfg Config) *snapshot {
	s := &snapshot{
		domain:  cfg.Domain,
		static:  map[leaseKey]binding{},
		static6: map[leaseKey]binding{},
		taken:   map[netip.Addr]bool{},
	}
	for _, m := range cfg.Members {
		host := m.Hostname
		if host == "" {
			host = m.Name
		}
		for _, a := range m.Addrs {
			s.taken[a] = true
		}
		for _, nic := range m.NICs {
			if nic.IPv4.IsValid() && len(nic.MAC) == 6 {
				s.static[leaseKey{nic.Network, string(nic.MAC)}] = binding{ip: nic.IPv4, hostname: host}
				s.taken[nic.IPv4] = true
			}
			if nic.IPv6.IsValid() && len(nic.MAC) == 6 {
				s.static6[leaseKey{nic.Network, string(nic.MAC)}] = binding{ip: nic.IPv6, hostname: host}
			}
		}
	}
	return s
}

func (s *Server) snapshot() *snapshot { return s.snap.Load() }

// Start serves cfg on cfg.Networks: DNS on every gateway address, DHCPv4
// on every network with DHCP4 set. It returns once every socket is bound,
// or the first error with nothing left running.
func Start(cfg Config, opts Options) (_ *Server, err error) {
	s := &Server{log: opts.Logger, now: opts.now, nets: cfg.Networks, done: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "dnsd")
	if s.now == nil {
		s.now = time.Now
	}
	if s.dns, err = NewDNS(cfg); err != nil {
		return nil, err
	}
	s.snap.Store(newSnapshot(cfg))
	s.cfg = cfg
	if s.leases, err = openLeases(opts.LeaseFile, s.now); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	enter := opts.Enter
	if enter == nil {
		enter = func(fn func() error) error { return fn() }
	}
	port := opts.DNSPort
	if port == 0 {
		port = 53
	}
	dnsAt := opts.DNSListen
	if dnsAt == nil {
		for _, n := range cfg.Networks {
			for _, a := range []netip.Addr{n.Gateway4, n.Gateway6} {
				if a.IsValid() {
					dnsAt = append(dnsAt, netip.AddrPortFrom(a, port))
				}
			}
		}
	}
	err = enter(func() error {
		if err := s.dns.Listen(dnsAt...); err != nil {
			return fmt.Errorf("dns: %w", err)
		}
		s.closers = append(s.closers, s.dns)
		for _, n := range cfg.Networks {
			if !n.DHCP4 || !n.Gateway4.IsValid() {
				continue
			}
			conn, err := server4.NewIPv4UDPConn(n.Interface, &net.UDPAddr{Port: dhcpv4.ServerPort})
			if err != nil {
				return fmt.Errorf("dhcp4 on %s: %w", n.Interface, err)
			}
			s.closers = append(s.closers, conn)
			bigReadBuffer(conn)
			d := &dhcp4{s: s, n: n, conn: conn}
			s.wg.Go(d.serve)
		}
		for _, n := range cfg.Networks {
			if n.Subnet6.IsValid() && n.Gateway6.IsValid() {
				if err := s.startIPv6(n, cfg.Domain); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// startIPv6 starts router advertisements and DHCPv6 on n. It runs in
// the networks' namespace.
func (s *Server) startIPv6(n Network, domain string) error {
	ifi, err := net.InterfaceByName(n.Interface)
	if err != nil {
		return fmt.Errorf("ipv6 on %s: %w", n.Interface, err)
	}
	pc, err := listenICMPv6(n.Interface)
	if err != nil {
		return fmt.Errorf("router advertisements on %s: %w", n.Interface, err)
	}
	s.closers = append(s.closers, pc)
	if err := pc.JoinGroup(ifi, &net.IPAddr{IP: net.ParseIP("ff02::2")}); err != nil {
		return fmt.Errorf("router advertisements on %s: joining all-routers: %w", n.Interface, err)
	}
	r := &ra{s: s, n: n, ifi: ifi, conn: pc, msg: routerAdvertisement(n, ifi.HardwareAddr, domain)}
	s.wg.Go(r.serve)
	s.wg.Go(func() { r.advertise(s.done) })

	conn, err := server6.NewIPv6UDPConn(n.Interface, &net.UDPAddr{IP: net.IPv6unspecified, Port: dhcpv6.DefaultServerPort})
	if err != nil {
		return fmt.Errorf("dhcp6 on %s: %w", n.Interface, err)
	}
	s.closers = append(s.closers, conn)
	bigReadBuffer(conn)
	group := &net.UDPAddr{IP: dhcpv6.AllDHCPRelayAgentsAndServers}
	if err := ipv6.NewPacketConn(conn).JoinGroup(ifi, group); err != nil {
		return fmt.Errorf("dhcp6 on %s: joining %s: %w", n.Interface, group.IP, err)
	}
	d := &dhcp6{s: s, n: n, conn: conn, serverID: &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: ifi.HardwareAddr}}
	s.wg.Go(d.serve)
	return nil
}

// Update replaces the members and records the server answers for, at
// once for every query and request that arrives after it returns. The
// networks stay those Start was given.
func (s *Server) Update(cfg Config) error {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	return s.update(cfg)
}

// update installs cfg. Callers hold cfgMu.
func (s *Server) update(cfg Config) error {
	if err := s.dns.Update(cfg); err != nil {
		return err
	}
	s.snap.Store(newSnapshot(cfg))
	cfg.Networks = s.nets
	s.cfg = cfg
	return nil
}

// AddMember adds m, or replaces the member of that name: the runtime
// calls it as each container or VM is created.
func (s *Server) AddMember(m Member) error {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	cfg := s.cfg
	cfg.Members = slices.DeleteFunc(slices.Clone(cfg.Members), func(o Member) bool { return o.Name == m.Name })
	cfg.Members = append(cfg.Members, m)
	return s.update(cfg)
}

// RemoveMember removes the member called name, if there is one. Its
// leases stay in the lease table until they expire.
func (s *Server) RemoveMember(name string) error {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	cfg := s.cfg
	cfg.Members = slices.DeleteFunc(slices.Clone(cfg.Members), func(o Member) bool { return o.Name == name })
	return s.update(cfg)
}

// Leases returns every lease the server has given, by address.
func (s *Server) Leases() []Lease { return s.leases.list() }

// DNSAddrs returns where DNS listens.
func (s *Server) DNSAddrs() []netip.AddrPort { return s.dns.Addrs() }

// Close stops the server and saves its leases.
func (s *Server) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i].Close())
	}
	s.closers = nil
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.wg.Wait()
	errs = append(errs, s.leases.close())
	return errors.Join(errs...)
}

// Networks returns the networks the server was started on.
func (s *Server) Networks() []Network { return slices.Clone(s.nets) }
