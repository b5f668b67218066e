package dnsd

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/foldup/foldup/internal/atomicfile"
)

// Lease is an address the server gave a client.
type Lease struct {
	Network  string     `json:"network"`
	MAC      string     `json:"mac"`
	IPv4     netip.Addr `json:"ipv4"`
	Hostname string     `json:"hostname,omitempty"` // the name the client sent
	Expires  time.Time  `json:"expires"`
	// Pool says the address came from the network's pool, not from the
	// plan: only pool leases need the state file to survive a restart.
	Pool bool `json:"pool,omitempty"`
}

// leaseKey identifies a client: a MAC on a network.
type leaseKey struct {
	network string
	mac     string // the 6 bytes, as a string
}

// How long an offered pool address stays reserved for the client it was
// offered to, and how long a declined address is left alone.
const (
	offerHold   = 30 * time.Second
	declineHold = 10 * time.Minute
)

// leases is the lease table, saved to a state file when it changes.
type leases struct {
	path string // "" keeps leases in memory only
	now  func() time.Time

	mu       sync.Mutex // guards following fields
	byKey    map[leaseKey]*Lease
	byIP     map[netip.Addr]*Lease
	declined map[netip.Addr]time.Time
	saveErr  error // the last save's, reported by close

	dirty     chan struct{} // has a value when the table changed since the last save
	done      chan struct{} // closed by close
	closeOnce sync.Once
	saved     chan struct{} // closed when the saver has stopped
}

// openLeases loads the state file at path, if there is one, and starts
// saving changes to it: the first change at once, later ones at most
// twice a second, so that a burst of clients costs a few writes.
func openLeases(path string, now func() time.Time) (*leases, error) {
	l := &leases{
		path:     path,
		now:      now,
		byKey:    map[leaseKey]*Lease{},
		byIP:     map[netip.Addr]*Lease{},
		declined: map[netip.Addr]time.Time{},
		dirty:    make(chan struct{}, 1),
		done:     make(chan struct{}),
		saved:    make(chan struct{}),
	}
	if path != "" {
		if err := l.load(); err != nil {
			return nil, err
		}
	}
	go l.saver()
	return l, nil
}

type leaseFile struct {
	Version int      `json:"version"`
	Leases  []*Lease `json:"leases"`
}

func (l *leases) load() error {
	b, err := os.ReadFile(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading leases: %w", err)
	}
	var f leaseFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("reading leases: %s: %w", l.path, err)
	}
	if f.Version != 1 {
		return fmt.Errorf("reading leases: %s: version %d, want 1", l.path, f.Version)
	}
	now := l.now()
	for _, ls := range f.Leases {
		mac, err := net.ParseMAC(ls.MAC)
		if err != nil || !ls.IPv4.IsValid() || !ls.Expires.After(now) {
			continue // expired or damaged: forget it
		}
		ls.MAC = mac.String()
		l.put(leaseKey{ls.Network, string(mac)}, ls)
	}
	return nil
}

// put records ls for k, replacing whatever held k or its address.
func (l *leases) put(k leaseKey, ls *Lease) {
	if old := l.byKey[k]; old != nil && l.byIP[old.IPv4] == old {
		delete(l.byIP, old.IPv4)
	}
	if other := l.byIP[ls.IPv4]; other != nil {
		mac, _ := net.ParseMAC(other.MAC)
		delete(l.byKey, leaseKey{other.Network, string(mac)})
	}
	l.byKey[k] = ls
	l.byIP[ls.IPv4] = ls
	l.changed()
}

// changed marks the table for saving. Callers hold mu.
func (l *leases) changed() {
	select {
	case l.dirty <- struct{}{}:
	default:
	}
}

func (l *leases) saver() {
	defer close(l.saved)
	for {
		select {
		case <-l.done:
			select {
			case <-l.dirty:
				l.save()
			default:
			}
			return
		case <-l.dirty:
			l.save()
		}
		select {
		case <-l.done:
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// save writes the table to a temporary file, syncs it and renames it
// over the state file, so that a crash leaves the old file or the new.
func (l *leases) save() {
	if l.path == "" {
		return
	}
	l.mu.Lock()
	f := leaseFile{Version: 1}
	for _, ls := range l.byKey {
		c := *ls
		f.Leases = append(f.Leases, &c)
	}
	l.mu.Unlock()
	slices.SortFunc(f.Leases, func(a, b *Lease) int { return a.IPv4.Compare(b.IPv4) })
	err := writeFileAtomic(l.path, f)
	l.mu.Lock()
	l.saveErr = err
	l.mu.Unlock()
}

func writeFileAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving leases: %w", err)
	}
	return nil
}

// close saves what is unsaved and stops the saver.
func (l *leases) close() error {
	l.closeOnce.Do(func() { close(l.done) })
	<-l.saved
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.saveErr
}

// list returns a copy of every lease, by address.
func (l *leases) list() []Lease {
	l.mu.Lock()
	out := make([]Lease, 0, len(l.byKey))
	for _, ls := range l.byKey {
		out = append(out, *ls)
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b Lease) int { return a.IPv4.Compare(b.IPv4) })
	return out
}

// find returns the lease k holds, if any.
func (l *leases) find(k leaseKey) (Lease, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ls := l.byKey[k]; ls != nil {
		return *ls, true
	}
	return Lease{}, false
}

// grant records that k holds ip until expires.
func (l *leases) grant(k leaseKey, ip netip.Addr, hostname string, expires time.Time, pool bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ls := l.byKey[k]; ls != nil && ls.IPv4 == ip && ls.Hostname == hostname && ls.Pool == pool {
		if expires.Sub(ls.Expires) > time.Second || expires.Before(ls.Expires) {
			ls.Expires = expires
			l.changed()
		}
		return
	}
	l.put(k, &Lease{Network: k.network, MAC: net.HardwareAddr(k.mac).String(), IPv4: ip,
		Hostname: hostname, Expires: expires, Pool: pool})
}

// release ends k's lease now, keeping the record so that the client gets
// the same address again if it is still free.
func (l *leases) release(k leaseKey, ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ls := l.byKey[k]; ls != nil && ls.IPv4 == ip {
		ls.Expires = l.now()
		l.changed()
	}
}

// decline records that ip, which k was offered or holds, is in use by
// someone the server does not know of: it is not offered again for a
// while. It reports whether it was k's to decline: a client declines
// only its own address (RFC 2131 4.4.1), and a decline of any other
// would let one client grow the table without bound.
func (l *leases) decline(k leaseKey, ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls := l.byKey[k]
	if ls == nil || ls.IPv4 != ip {
		return false
	}
	l.declined[ip] = l.now().Add(declineHold)
	delete(l.byKey, k)
	delete(l.byIP, ip)
	l.changed()
	return true
}

// allocate picks a pool address for k: the one it asks for if free,
// else the one it held before if that is still free, else the first free
// one from a place in the pool chosen by the MAC's hash, so that a
// client tends to get the same address on every network restart. taken
// reports addresses that are not the pool's to give (members' static
// addresses, the gateway). It reserves the address for offerHold.
func (l *leases) allocate(k leaseKey, pool Range, requested netip.Addr, taken func(netip.Addr) bool) (netip.Addr, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	free := func(a netip.Addr) bool {
		if !pool.Contains(a) || taken(a) {
			return false
		}
		if until, ok := l.declined[a]; ok {
			if now.Before(until) {
				return false
			}
			delete(l.declined, a)
		}
		ls := l.byIP[a]
		return ls == nil || ls == l.byKey[k] || !ls.Expires.After(now)
	}
	pick := netip.Addr{}
	if requested.IsValid() && free(requested) {
		pick = requested
	} else if ls := l.byKey[k]; ls != nil && free(ls.IPv4) {
		pick = ls.IPv4
	} else {
		pick = l.probe(k, pool, free)
	}
	if !pick.IsValid() {
		return pick, false
	}
	if ls := l.byKey[k]; ls == nil || ls.IPv4 != pick || ls.Expires.Before(now.Add(offerHold)) {
		hostname := ""
		if ls != nil {
			hostname = ls.Hostname
		}
		l.put(k, &Lease{Network: k.network, MAC: net.HardwareAddr(k.mac).String(), IPv4: pick,
			Hostname: hostname, Expires: now.Add(offerHold), Pool: true})
	}
	return pick, true
}

// probe walks the pool from the MAC's hash and returns the first free
// address.
func (l *leases) probe(k leaseKey, pool Range, free func(netip.Addr) bool) netip.Addr {
	start, end := pool.Start.As4(), pool.End.As4()
	lo, hi := binary.BigEndian.Uint32(start[:]), binary.BigEndian.Uint32(end[:])
	size := uint64(hi-lo) + 1
	h := fnv.New64a()
	h.Write([]byte(k.network))
	h.Write([]byte(k.mac))
	off := h.Sum64() % size
	for i := range size {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], lo+uint32((off+i)%size))
		a := netip.AddrFrom4(b)
		if free(a) {
			return a
		}
	}
	return netip.Addr{}
}
