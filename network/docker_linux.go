package network

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// dockerUserChain is the chain Docker leaves to its users, evaluated
// before its own FORWARD rules (and kept across engine restarts).
const dockerUserChain = "DOCKER-USER"

// DockerAccept keeps Docker's FORWARD chain out of the way of bridge's
// traffic. With br_netfilter, frames bridged between ports go through the
// iptables FORWARD hook like routed packets do; Docker's policy there is
// drop, and its own accepts exist only for the networks it manages (and,
// within one network, only while inter-container communication is on).
// An accept in foldup's own table cannot help: a verdict is final only in
// its own base chain, and Docker's chain still drops. So, as Docker
// documents for its users, foldup inserts at the top of DOCKER-USER, in
// the ip and ip6 filter tables where they exist:
//
//	iifname $bridge accept comment "foldup:$bridge"
//	oifname $bridge accept comment "foldup:$bridge"
//
// Traffic that neither enters nor leaves by bridge is not touched. What
// these rules let past Docker is filtered by foldup's own inet table
// (isolation, outbound policy, unsolicited inbound), which must be in
// place first: a drop there is final whatever Docker's chain said. Without
// Docker (no DOCKER-USER) it does nothing. Calling it again adds nothing.
func (h *Host) DockerAccept(bridge string) error {
	return h.eachDockerUser(bridge, "inserting into", func(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain, mine []*nftables.Rule) error {
		if len(mine) == 2 {
			return nil
		}
		for _, r := range mine { // half of a pair: start again
			if err := c.DelRule(r); err != nil {
				return err
			}
		}
		for _, dir := range []expr.MetaKey{expr.MetaKeyOIFNAME, expr.MetaKeyIIFNAME} {
			// Inserted at the top in turn: iifname ends up first.
			c.InsertRule(&nftables.Rule{
				Table: t,
				Chain: ch,
				Exprs: []expr.Any{
					&expr.Meta{Key: dir, Register: reg1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: ifname(bridge)},
					&expr.Counter{},
					accept,
				},
				UserData: userdata.AppendString(nil, userdata.TypeComment, acceptTag(bridge)),
			})
		}
		return nil
	})
}

// DockerAcceptRemove deletes what DockerAccept inserted for bridge, and
// nothing else of Docker's.
func (h *Host) DockerAcceptRemove(bridge string) error {
	return h.eachDockerUser(bridge, "removing from", func(c *nftables.Conn, _ *nftables.Table, _ *nftables.Chain, mine []*nftables.Rule) error {
		for _, r := range mine {
			if err := c.DelRule(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// eachDockerUser calls fn for each DOCKER-USER chain there is (ip, ip6)
// with foldup's rules in it for bridge, then commits what fn queued.
func (h *Host) eachDockerUser(bridge, doing string, fn func(*nftables.Conn, *nftables.Table, *nftables.Chain, []*nftables.Rule) error) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(h.ns)))
	if err != nil {
		return err
	}
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		t, ch, err := dockerUser(c, fam)
		if err != nil {
			return err
		}
		if ch == nil {
			continue
		}
		mine, err := acceptRules(c, t, ch, bridge)
		if err != nil {
			return err
		}
		if err := fn(c, t, ch, mine); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("%s %s: %w", doing, dockerUserChain, err)
	}
	return nil
}

func acceptTag(bridge string) string { return "foldup:" + bridge }

// dockerUser finds Docker's filter table and DOCKER-USER chain of a
// family; both nil when Docker has not made them.
func dockerUser(c *nftables.Conn, fam nftables.TableFamily) (*nftables.Table, *nftables.Chain, error) {
	t, err := c.ListTableOfFamily("filter", fam)
	if errors.Is(err, unix.ENOENT) || t == nil {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	ch, err := c.ListChain(t, dockerUserChain)
	if errors.Is(err, unix.ENOENT) || ch == nil {
		return t, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return t, ch, nil
}

func acceptRules(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain, bridge string) ([]*nftables.Rule, error) {
	rules, err := c.GetRules(t, ch)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dockerUserChain, err)
	}
	var mine []*nftables.Rule
	for _, r := range rules {
		if tag, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok && tag == acceptTag(bridge) {
			mine = append(mine, r)
		}
	}
	return mine, nil
}
