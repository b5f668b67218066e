package network

import (
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Netem is a link's impairment, as tc's netem applies it.
type Netem struct {
	Delay     time.Duration `json:"delay,omitempty"`
	Jitter    time.Duration `json:"jitter,omitempty"`
	Loss      float64       `json:"loss,omitempty"`      // percent
	Duplicate float64       `json:"duplicate,omitempty"` // percent
	Corrupt   float64       `json:"corrupt,omitempty"`   // percent
	Rate      uint64        `json:"rate,omitempty"`      // bytes per second
}

// IsZero: no impairment.
func (n *Netem) IsZero() bool { return n == nil || *n == Netem{} }

func (n *Netem) qdisc(link int) *netlink.Netem {
	return netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: link, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		netlink.NetemQdiscAttrs{
			Latency:     uint32(n.Delay / time.Microsecond),
			Jitter:      uint32(n.Jitter / time.Microsecond),
			Loss:        float32(n.Loss),
			Duplicate:   float32(n.Duplicate),
			CorruptProb: float32(n.Corrupt),
			Rate64:      n.Rate,
			// Room for a second's frames at the rate, or at a delay:
			// netem's default of 1000 drops frames a long delay holds.
			Limit: 10000,
		})
}

// SetNetem impairs a member's port: to, the frames the port sends to the
// member (its egress); from, the frames the member sends (the port's
// ingress, redirected through the ifb device named ifb, which SetNetem
// makes when it is missing: the caller journals that name first). A nil
// or zero one takes that direction's impairment away.
func (h *Host) SetNetem(port string, to, from *Netem, ifb string) error {
	link, err := h.nl.LinkByName(port)
	if err != nil {
		return fmt.Errorf("netem on %s: %w", port, err)
	}
	idx := link.Attrs().Index
	if to.IsZero() {
		if err := h.delRoot(idx); err != nil {
			return fmt.Errorf("netem on %s: %w", port, err)
		}
	} else if err := h.nl.QdiscReplace(to.qdisc(idx)); err != nil {
		return fmt.Errorf("netem on %s: %w", port, noNetem(err))
	}
	if from.IsZero() {
		return h.clearIngress(idx, ifb)
	}
	dev, err := h.nl.LinkByName(ifb)
	if err != nil {
		if err := h.nl.LinkAdd(&netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: ifb, TxQLen: 1000}}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("netem from %s: ifb %s: %w", port, ifb, err)
		}
		if dev, err = h.nl.LinkByName(ifb); err != nil {
			return fmt.Errorf("netem from %s: ifb %s: %w", port, ifb, err)
		}
	}
	if err := h.nl.LinkSetUp(dev); err != nil {
		return fmt.Errorf("netem from %s: ifb %s: %w", port, ifb, err)
	}
	if err := h.nl.QdiscReplace(from.qdisc(dev.Attrs().Index)); err != nil {
		return fmt.Errorf("netem from %s: ifb %s: %w", port, ifb, noNetem(err))
	}
	// The ingress qdisc once: it has no options to change, and the kernel
	// refuses replacing one that is there (EINVAL).
	if has, err := h.hasIngress(idx); err != nil {
		return fmt.Errorf("netem from %s: %w", port, err)
	} else if !has {
		ingress := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}
		if err := h.nl.QdiscAdd(ingress); err != nil {
			return fmt.Errorf("netem from %s: ingress: %w", port, err)
		}
	}
	// Every frame in: a u32 match of nothing, redirected to the ifb; the
	// one an earlier apply added goes first (the kernel would add a
	// second beside it, and the first would keep matching).
	if err := h.delIngressFilters(idx); err != nil {
		return fmt.Errorf("netem from %s: %w", port, err)
	}
	filter := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: netlink.MakeHandle(0xffff, 0), Priority: 1, Protocol: unix.ETH_P_ALL},
		Sel:         &netlink.TcU32Sel{Flags: netlink.TC_U32_TERMINAL, Nkeys: 1, Keys: []netlink.TcU32Key{{}}},
		Actions:     []netlink.Action{netlink.NewMirredAction(dev.Attrs().Index)},
	}
	if err := h.nl.FilterAdd(filter); err != nil {
		return fmt.Errorf("netem from %s: redirect to %s: %w", port, ifb, err)
	}
	return nil
}

// ErrNoNetem: the kernel has no netem qdisc.
var ErrNoNetem = errors.New("this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM; Debian's kernels have it: modprobe sch_netem)")

// noNetem is the kernel's answer to a netem qdisc it does not know
// (ENOENT: no such qdisc kind) in words.
func noNetem(err error) error {
	if errors.Is(err, unix.ENOENT) {
		return ErrNoNetem
	}
	return err
}

// delRoot takes a link's root qdisc away, if it has one of its own.
func (h *Host) delRoot(idx int) error {
	qs, err := h.nl.QdiscList(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: idx}})
	if err != nil {
		return err
	}
	for _, q := range qs {
		if q.Attrs().Parent == netlink.HANDLE_ROOT && q.Type() == "netem" {
			return h.nl.QdiscDel(q)
		}
	}
	return nil
}

func (h *Host) delIngressFilters(idx int) error {
	fs, err := h.nl.FilterList(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: idx}}, netlink.MakeHandle(0xffff, 0))
	if err != nil {
		return err
	}
	for _, f := range fs {
		if err := h.nl.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}

func (h *Host) hasIngress(idx int) (bool, error) {
	qs, err := h.nl.QdiscList(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: idx}})
	if err != nil {
		return false, err
	}
	for _, q := range qs {
		if q.Attrs().Parent == netlink.HANDLE_INGRESS {
			return true, nil
		}
	}
	return false, nil
}

// clearIngress takes a port's ingress redirect and its ifb away.
func (h *Host) clearIngress(idx int, ifb string) error {
	qs, err := h.nl.QdiscList(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: idx}})
	if err != nil {
		return err
	}
	for _, q := range qs {
		if q.Attrs().Parent == netlink.HANDLE_INGRESS {
			if err := h.nl.QdiscDel(q); err != nil {
				return err
			}
		}
	}
	if ifb == "" {
		return nil
	}
	return h.LinkDel(ifb)
}

// NetemOn is the impairment a port sends with, and the one its ifb
// holds for what the member sends; nil for none.
func (h *Host) NetemOn(port, ifb string) (to, from *Netem, err error) {
	read := func(name string) (*Netem, error) {
		link, err := h.nl.LinkByName(name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return nil, nil
			}
			return nil, err
		}
		qs, err := h.nl.QdiscList(link)
		if err != nil {
			return nil, err
		}
		for _, q := range qs {
			if n, ok := q.(*netlink.Netem); ok && q.Attrs().Parent == netlink.HANDLE_ROOT {
				return &Netem{
					Delay:     tickTime(n.Latency),
					Jitter:    tickTime(n.Jitter),
					Loss:      u32Percent(n.Loss),
					Duplicate: u32Percent(n.Duplicate),
					Corrupt:   u32Percent(n.CorruptProb),
					Rate:      n.Rate64,
				}, nil
			}
		}
		return nil, nil
	}
	if to, err = read(port); err != nil {
		return nil, nil, err
	}
	from, err = read(ifb)
	return to, from, err
}

// tickTime is a netem time in the kernel's ticks as a duration (netlink
// reads them back as its TickInUsec makes them).
func tickTime(ticks uint32) time.Duration {
	return time.Duration(float64(ticks)/netlink.TickInUsec()) * time.Microsecond
}

func u32Percent(v uint32) float64 { return float64(v) / float64(^uint32(0)) * 100 }
