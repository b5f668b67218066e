#!/bin/sh
# bench/vm.sh: time from launch to the guest's DHCP lease line
# ("FOLDUP-LEASE" on its serial console), for
#   foldup   `foldup up -d` of a one-VM project (foldup's bridge, firewall,
#            DNS/DHCP server; the kernel booted as its extracted PVH vmlinux)
#   bare     qemu by hand with the same kernel file foldup boots, the same
#            initramfs, on a bridge and tap made by hand, dnsmasq serving
#            the lease
#   bare-bz  the same with Debian's compressed kernel as it is
# RUNS runs each (default 10; which of foldup and bare goes first alternates
# from run to run), then 4 VMs at once with foldup
# (5 runs). A guest's boot under TCG varies by ±0.3 s from run to run, so
# the ratio reported is the median of each run's foldup/bare, beside the
# ratio of the medians.
# PIN=CPUS (taskset's list, e.g. PIN=0) runs both sides of each pair on
# those CPUs only: foldup's `up`, its supervisor and its qemu, and bare
# qemu. On this kind of machine a vCPU is at times much slower than at
# others, or than the other vCPU (a guest's boot then takes 3.1-4.2 s
# instead of 2.2-2.9 s, in spells of minutes); pinned, both sides of a
# pair at least meet the same CPU, and foldup's own processes share it
# with its qemu: the harder test for foldup.
# VERBOSE=1 boots every guest without "quiet", so that each says how its
# kernel calibrated the TSC, and counts the boots whose fast PIT
# calibration failed (the kernel then spends ~0.25 s calibrating against
# the HPET before its clock starts; under TCG that happens at random).
# The printed messages make every boot ~0.15 s slower.
# Everything runs in a fresh network namespace. Needs root, qemu, dnsmasq
# (dnsmasq-base), and the images of scripts/images.sh.
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-10}
command -v dnsmasq >/dev/null || { echo "bench/vm.sh needs dnsmasq (dnsmasq-base)" >&2; exit 1; }
KCMD="console=ttyS0 quiet panic=-1"
[ -n "${VERBOSE:-}" ] && KCMD="console=ttyS0 panic=-1"
. bench/vmlib.sh

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }
# waitline FILE: until the lease line is in FILE (at most 60 s)
waitline() { for i in $(seq 600); do grep -q FOLDUP-LEASE "$1" 2>/dev/null && return 0; sleep 0.02; done; echo "no lease in $1" >&2; return 1; }
# guest_uptime FILE: the guest's own uptime when it printed the lease line: the
# part of launch → lease spent inside the guest, from its kernel's start.
guest_uptime() { sed -n 's/.*FOLDUP-LEASE.* uptime=\([0-9.]*\).*/\1/p' "$1" | head -1; }

P=""
[ -n "${PIN:-}" ] && P="taskset -c $PIN"
# slowtsc WHO FILE: counts WHO's boot if its kernel's fast TSC calibration failed.
slowtsc() { if grep -q 'Fast TSC calibration failed' "$2"; then echo "$1" >> "$D/slowtsc"; fi; }

{
	echo "name: vmb4"; echo "vms:"
	for i in 1 2 3 4; do
		printf '  v%s:\n    kernel: %s\n    initrd: %s\n    cmdline: %s\n    memory: 256m\n    stop_grace_period: 0s\n' $i "$IMG/vmlinuz" "$IMG/initrd.img" "$KCMD"
	done
} > "$D/four.yaml"

# The bare setup: bridge, tap, dnsmasq with one static lease.
ip netns exec $NS sh -ec "ip link add br0 type bridge; ip addr add 10.90.0.1/24 dev br0; ip link set br0 up
ip tuntap add tap0 mode tap; ip link set tap0 master br0 up"
ip netns exec $NS dnsmasq --pid-file="$D/dnsmasq.pid" --interface=br0 --bind-interfaces --port=0 \
	--dhcp-range=10.90.0.10,10.90.0.200,1h --dhcp-host=52:54:00:90:00:02,10.90.0.2,vm1 --dhcp-authoritative
bare() { bare_qemu "$1" $P; } # KERNEL

: > "$D/times"; : > "$D/slowtsc"
# stop_bare: ends bare qemu and waits until it has exited. Daemonized, its
# parent is pid 1, which may reap it only seconds later: a zombie counts as
# gone, having freed its memory and closed the tap.
stop_bare() {
	p=$(cat "$D/q.pid"); kill "$p"
	for i in $(seq 250); do
		s=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) || break
		[ "$s" = Z ] && break
		sleep 0.02
	done
}
run_foldup() {
	t0=$(now); $P ip netns exec $NS env FOLDUP_STATE_ROOT=$D/state FOLDUP_RUN_ROOT=$D/run "$BIN" --progress quiet -f "$D/one.yaml" up -d
	waitline "$D/state/vmb/vm/vm1/console.log"; t1=$(now)
	echo "foldup-guest $(guest_uptime "$D/state/vmb/vm/vm1/console.log")" >> "$D/times"
	slowtsc foldup "$D/state/vmb/vm/vm1/console.log"
	foldup -f "$D/one.yaml" down -v
	echo "foldup $(elapsed $t0 $t1)" >> "$D/times"
	sleep 0.3
}
run_bare() {
	t0=$(now); bare "$PVH"; waitline "$D/q.log"; t1=$(now)
	echo "bare-guest $(guest_uptime "$D/q.log")" >> "$D/times"
	slowtsc bare "$D/q.log"
	stop_bare
	echo "bare $(elapsed $t0 $t1)" >> "$D/times"
	sleep 0.3
}
# Each run boots foldup and bare back to back, foldup first in odd runs and
# bare first in even ones, so that neither always follows the same boot;
# bare-bz comes last.
for r in $(seq $RUNS); do
	if [ $((r % 2)) = 1 ]; then run_foldup; run_bare; else run_bare; run_foldup; fi
	t0=$(now); bare "$IMG/vmlinuz"; waitline "$D/q.log"; t1=$(now)
	stop_bare; sleep 0.3
	echo "bare-bz $(elapsed $t0 $t1)" >> "$D/times"
	echo "run $r: $(tail -5 "$D/times" | tr '\n' ' ')"
done
for r in $(seq 5); do
	t0=$(now); foldup -f "$D/four.yaml" up -d
	for i in 1 2 3 4; do waitline "$D/state/vmb4/vm/v$i/console.log"; done; t1=$(now)
	rss=$(ps -o rss= -C qemu-system-x86_64 | awk '{s+=$1} END {printf "%d", s/1024}')
	foldup -f "$D/four.yaml" down -v
	echo "four $(elapsed $t0 $t1)" >> "$D/times"
	echo "four-rss $rss" >> "$D/times"
done

# paired A B: the median of A/B over the runs, each A with the B of its run.
paired() {
	awk -v a="$1" -v b="$2" '$1 == a {x[++n] = $2} $1 == b {y[++m] = $2} END {for (i = 1; i <= n && i <= m; i++) printf "%.4f\n", x[i] / y[i]}' "$D/times" |
		sort -n | awk '{a[NR]=$1} END {printf "%.3f", (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
}
median() { grep "^$1 " "$D/times" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
printf '%-9s %s\n' "" "launch → lease, median (s; $RUNS runs, four: 5)"
[ -n "$P" ] && echo "pairs run under: $P (the four VMs unpinned)"
for w in foldup bare bare-bz four; do printf '%-9s %8.2f\n' $w "$(median $w)"; done
echo "4 VMs' qemu RSS (MiB, median): $(median four-rss)"
echo "ratio foldup/bare (same kernel file): $(echo "scale=3; $(median foldup) / $(median bare)" | bc) of the medians, $(paired foldup bare) median of the runs' ratios"
echo "of which inside the guest (its uptime at the lease line), median: foldup $(median foldup-guest) s, bare $(median bare-guest) s; runs' ratio $(paired foldup-guest bare-guest)"
[ -n "${VERBOSE:-}" ] && echo "slow TSC calibrations: foldup $(grep -cx foldup "$D/slowtsc") of $RUNS, bare $(grep -cx bare "$D/slowtsc") of $RUNS"
echo "ratio foldup/bare-bz (Debian's kernel as is): $(echo "scale=2; $(median foldup) / $(median bare-bz)" | bc)"
