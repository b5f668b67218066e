//go:build linux

package executor

import (
	"context"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/foldup/foldup/internal/foldtest"
	"github.com/foldup/foldup/internal/systest"
)

// TestHandJoined: a container joined to a project's network by hand
// (`docker run --network P_lan`, what docker-vde-plugin was for), with
// foldup's server as its DNS (--dns the gateway), resolves members by
// name; the supervisor holds its port to the MAC and address the engine
// gave it, as a member's: from its own address it reaches a member, from
// another address of the subnet it reaches nothing.
func TestHandJoined(t *testing.T) {
	systest.Command(t, "docker")
	e := newTestEnv(t)
	p := foldtest.NewProject("hj").
		AddNetwork("lan", "{}").
		AddService("peer", "image: foldup-test/busybox:1\ninit: true\nnetworks: [lan]\ncommand: [\"sleep\", \"3600\"]")
	_, res := e.upInProcess(t, "hj", p.String())
	n, peer := res.Plan.Network("lan"), planMember(t, res.Plan, "peer").NICs[0]
	docker := func(args ...string) (string, error) {
		out, err := exec.CommandContext(t.Context(), "docker", append([]string{"-H", e.eng.Host}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := docker("run", "-d", "--name", "joined", "--network", n.DockerName, "--cap-add", "NET_ADMIN",
		"--dns", n.Gateway4.String(), "--dns-search", res.Plan.Domain, "foldup-test/busybox:1", "sleep", "3600"); err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		exec.CommandContext(context.Background(), "docker", "-H", e.eng.Host, "rm", "-f", "joined").Run()
	})

	// Names, through foldup's server.
	if out, _ := docker("exec", "joined", "nslookup", "peer"); !strings.Contains(out, peer.IPv4.String()) {
		t.Errorf("nslookup peer in the joined container:\n%s", out)
	}

	// Its port in the guard's set, held to its MAC and address.
	c, err := e.eng.Client.ContainerInspect(t.Context(), "joined")
	if err != nil {
		t.Fatal(err)
	}
	own, err := netip.ParseAddr(c.NetworkSettings.Networks[n.DockerName].IPAddress)
	if err != nil {
		t.Fatal(err)
	}
	peers, err := e.host.PeerPorts(c.State.Pid)
	if err != nil {
		t.Fatal(err)
	}
	veth := peers[c.NetworkSettings.Networks[n.DockerName].MacAddress]
	waitFor(t, 10*time.Second, func() bool {
		out, _ := e.ns.Run(t, "nft", "list", "set", "bridge", "foldup-hj", "ports")
		return veth != "" && strings.Contains(out, veth)
	})

	ping := func(src netip.Addr) bool {
		_, err := docker("exec", "joined", "ping", "-c", "1", "-W", "2", "-I", src.String(), peer.IPv4.String())
		return err == nil
	}
	if !ping(own) {
		t.Errorf("the joined container cannot reach peer from its own address %s", own)
	}
	other := own.Next()
	for other == peer.IPv4 || other == n.Gateway4 {
		other = other.Next()
	}
	if out, err := docker("exec", "joined", "ip", "addr", "add", other.String()+"/"+strconv.Itoa(n.Subnet4.Bits()), "dev", "eth0"); err != nil {
		t.Fatalf("adding %s: %v\n%s", other, err, out)
	}
	if ping(other) {
		t.Errorf("the joined container reached peer from %s, which is not its address", other)
	}
}
