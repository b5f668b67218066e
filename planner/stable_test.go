package planner

import (
	"encoding/hex"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/foldup/foldup/internal/systest"
)

// TestStablePrivacyKernel checks stablePrivacy against the running kernel:
// an interface with a stable_secret forms its link-local address with the
// same RFC 7217 function it uses for SLAAC, so in a throwaway network
// namespace (unshare -n: gone when the shell exits) the two must agree.
//
// The kernel hashes the device's permanent address (perm_addr). A veth
// given its MAC by `ip link add ... address` has none (all zero), while a
// guest's virtio NIC has the MAC qemu gave it as its permanent address; so
// this test checks the function with a zero hardware address, and the VM
// tests check it with a real one.
func TestStablePrivacyKernel(t *testing.T) {
	systest.Root(t)
	systest.Command(t, "unshare")
	systest.Command(t, "ip")
	secret := StableSecret("proj", "member", "net")
	secretText := netip.AddrFrom16(secret).StringExpanded()
	script := strings.Join([]string{
		"set -e",
		"ip link add fusp0 address 52:54:00:12:34:56 type veth peer name fusp1",
		"sysctl -qw net.ipv6.conf.fusp0.stable_secret=" + secretText,
		"sysctl -qw net.ipv6.conf.fusp0.addr_gen_mode=2",
		"ip link set fusp1 up",
		"ip link set fusp0 up",
		"for i in $(seq 50); do ip -6 -o addr show dev fusp0 scope link | grep -q inet6 && break; sleep 0.1; done",
		"ip -6 -o addr show dev fusp0 scope link",
	}, "\n")
	out, err := exec.CommandContext(t.Context(), "unshare", "-n", "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	fields := strings.Fields(string(out))
	var kernel netip.Addr
	for i, f := range fields {
		if f == "inet6" && i+1 < len(fields) {
			kernel = netip.MustParsePrefix(fields[i+1]).Addr()
		}
	}
	want := stablePrivacy(netip.MustParsePrefix("fe80::/64"), secret, [6]byte{}, 0)
	if withMAC := stablePrivacy(netip.MustParsePrefix("fe80::/64"), secret, [6]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}, 0); withMAC == want {
		t.Fatal("the hardware address does not enter the hash")
	}
	if kernel != want {
		t.Fatalf("kernel formed %s, planner computes %s (secret %s)", kernel, want, hex.EncodeToString(secret[:]))
	}
}

func TestSHA1Block(t *testing.T) {
	// FIPS 180-2 appendix A.1: "abc", padded, is one block.
	var block [64]byte
	copy(block[:], "abc")
	block[3] = 0x80
	block[63] = 24
	h := sha1Block(block)
	if h != [5]uint32{0xa9993e36, 0x4706816a, 0xba3e2571, 0x7850c26c, 0x9cd0d89d} {
		t.Fatalf("sha1 block of \"abc\" = %08x", h)
	}
}
