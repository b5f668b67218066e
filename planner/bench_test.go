package planner

import (
	"fmt"
	"strings"
	"testing"
)

// bigProject returns a file with n members across nets networks: half
// containers, half VMs, each VM on two networks, chains of depends_on.
func bigProject(n, nets int) string {
	var b strings.Builder
	b.WriteString("name: big\nx-foldup: {address_pools: [{base: 10.0.0.0/8, size: 20}]}\nnetworks:\n")
	for i := range nets {
		fmt.Fprintf(&b, "  n%d: {enable_ipv6: true}\n", i)
	}
	b.WriteString("services:\n")
	for i := 0; i < n/2; i++ {
		fmt.Fprintf(&b, "  c%d: {image: x, networks: [n%d]", i, i%nets)
		if i > 0 && i%10 != 0 {
			fmt.Fprintf(&b, ", depends_on: [c%d]", i-1)
		}
		b.WriteString("}\n")
	}
	b.WriteString("vms:\n")
	for i := 0; i < n-n/2; i++ {
		fmt.Fprintf(&b, "  v%d: {kernel: vmlinuz, networks: [n%d, n%d], depends_on: [c%d]}\n", i, i%nets, (i+1)%nets, i%(n/2))
	}
	return b.String()
}

// BenchmarkPlan1000: plan of 1,000 members across 10 networks (target:
// under 100 ms an op).
func BenchmarkPlan1000(b *testing.B) {
	p := inline(b, bigProject(1000, 10))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Compute(p, Observed{}, Intent{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad1000 measures loading the same file, for comparison.
func BenchmarkLoad1000(b *testing.B) {
	y := bigProject(1000, 10)
	for b.Loop() {
		inline(b, y)
	}
}

func TestBigProjectPlans(t *testing.T) {
	plan, err := Compute(inline(t, bigProject(1000, 10)), Observed{}, Intent{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Members) != 1000 || len(plan.Networks) != 10 {
		t.Fatalf("%d members, %d networks", len(plan.Members), len(plan.Networks))
	}
}
