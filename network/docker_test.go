package network

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/foldup/foldup/internal/systest"
)

// dockerPolicy is what Docker 20.10 (iptables-nft) leaves in a namespace
// for a bridge network with inter-container communication off: FORWARD
// drops by default and jumps to DOCKER-USER first. Measured in
// shared/notes/platform.md §6.
const dockerPolicy = `
table ip filter {
	chain DOCKER-USER {
		counter return
	}
	chain FORWARD {
		type filter hook forward priority filter; policy drop;
		counter jump DOCKER-USER
		iifname "fubtest0" oifname "fubtest0" drop
		iifname "fubtest1" oifname "fubtest1" drop
	}
}
`

// dockerPolicy puts Docker's policy in the lab's host namespace: bridged
// frames go through the iptables FORWARD hook, which drops them.
func (l *lab) dockerPolicy() {
	l.t.Helper()
	l.host.MustRun(l.t, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
	f := filepath.Join(l.t.TempDir(), "docker.nft")
	if err := os.WriteFile(f, []byte(dockerPolicy), 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.host.MustRun(l.t, "nft", "-f", f)
}

// TestDockerAcceptKeepsPolicy: past Docker's drop, foldup's own table
// still decides: a NAT network reaches the outside, an isolated one does
// not, and nothing unsolicited comes in.
func TestDockerAcceptKeepsPolicy(t *testing.T) {
	systest.Command(t, "nft")
	l := newLab(t)
	o := l.outside()
	l.net(0, Net{})
	l.net(1, Net{Isolated: true, Outbound: OutboundDrop})
	nat, iso := l.member(10, 0), l.member(10, 1)
	l.apply()
	l.dockerPolicy()
	if ping(t, nat, "192.0.2.2") {
		t.Fatal("Docker's FORWARD drop did not block outbound traffic: the test reproduces nothing")
	}
	for _, br := range []string{"fubtest0", "fubtest1"} {
		if err := l.h.DockerAccept(br); err != nil {
			t.Fatal(err)
		}
	}
	if !ping(t, nat, "192.0.2.2") {
		t.Error("NAT network cannot reach the outside after DockerAccept")
	}
	if ping(t, iso, "192.0.2.2") {
		t.Error("isolated network reaches the outside after DockerAccept")
	}
	if ping(t, o, "10.77.0.10") {
		t.Error("unsolicited traffic reaches a member after DockerAccept")
	}
}

func TestDockerAccept(t *testing.T) {
	systest.Command(t, "nft")
	s := newSegment(t, 2)
	m := s.members[0]
	if !ping(t, m, "10.77.0.11") {
		t.Fatal("members cannot reach each other before Docker's policy")
	}

	// Without Docker there is nothing to do, and no error.
	if err := s.h.DockerAccept("fubtest0"); err != nil {
		t.Fatal(err)
	}

	s.dockerPolicy()
	if ping(t, m, "10.77.0.11") {
		t.Fatal("Docker's FORWARD drop did not block bridged traffic: the test reproduces nothing")
	}

	if err := s.h.DockerAccept("fubtest0"); err != nil {
		t.Fatal(err)
	}
	if err := s.h.DockerAccept("fubtest0"); err != nil {
		t.Fatal(err)
	}
	// Half a pair (one rule deleted by hand) is made whole again.
	s.host.MustRun(t, "sh", "-c", `nft -a list chain ip filter DOCKER-USER | sed -n 's/.*oifname "fubtest0".*# handle \([0-9]*\)/\1/p' | xargs -I{} nft delete rule ip filter DOCKER-USER handle {}`)
	if chain := s.host.MustRun(t, "nft", "list", "chain", "ip", "filter", "DOCKER-USER"); strings.Contains(chain, `oifname "fubtest0"`) {
		t.Fatalf("could not delete half the pair:\n%s", chain)
	}
	if err := s.h.DockerAccept("fubtest0"); err != nil {
		t.Fatal(err)
	}
	if !ping(t, m, "10.77.0.11") {
		t.Error("bridged traffic still blocked after DockerAccept")
	}
	chain := s.host.MustRun(t, "nft", "list", "chain", "ip", "filter", "DOCKER-USER")
	if n := strings.Count(chain, `comment "foldup:fubtest0"`); n != 2 {
		t.Errorf("%d foldup rules in DOCKER-USER, want 2:\n%s", n, chain)
	}
	if !strings.Contains(chain, `iifname "fubtest0" counter`) || !strings.Contains(chain, `oifname "fubtest0" counter`) {
		t.Errorf("rules do not name the bridge each way:\n%s", chain)
	}

	if err := s.h.DockerAcceptRemove("fubtest0"); err != nil {
		t.Fatal(err)
	}
	if ping(t, m, "10.77.0.11") {
		t.Error("traffic passes after DockerAcceptRemove")
	}
	chain = s.host.MustRun(t, "nft", "list", "chain", "ip", "filter", "DOCKER-USER")
	if strings.Contains(chain, "foldup") || !strings.Contains(chain, "counter") {
		t.Errorf("DOCKER-USER after removal (Docker's own rule must stay):\n%s", chain)
	}
}
