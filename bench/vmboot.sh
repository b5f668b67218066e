#!/bin/sh
# bench/vmboot.sh [RUNS]: where a VM's launch → lease goes, foldup against
# bare qemu (bench/vm.sh's two setups, alternating, RUNS each, default 12),
# with the guest's kernel messages on (no "quiet") so that each boot says
# how its TSC was calibrated. For each boot it prints
#   launch → lease (s), the guest's uptime at the lease, their difference
#   (launch → the guest kernel's clock starting: qemu's start-up, the
#   firmware, the kernel's earliest setup), and "tsc-slow" when the kernel's
#   fast PIT calibration failed (it then spends ~0.25 s calibrating
#   against the HPET before its clock starts; under TCG that happens when
#   the vCPU thread is held up at the wrong moment)
# and, at the end, the medians and the count of slow calibrations.
# Everything runs in a fresh network namespace. Needs root, qemu, dnsmasq,
# and the images of scripts/images.sh.
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-12}
IMG=/var/cache/foldup-test
scripts/images.sh $IMG >/dev/null
command -v dnsmasq >/dev/null || { echo "bench/vmboot.sh needs dnsmasq (dnsmasq-base)" >&2; exit 1; }
GO=$(scripts/go.sh)
"$GO" build -o bin/foldup ./cmd/foldup

NS=fu-vmboot-$$
D=$(mktemp -d /tmp/fu-vboot-XXXXXX)
chmod 711 "$D"
foldup() { ip netns exec $NS env FOLDUP_STATE_ROOT=$D/state FOLDUP_RUN_ROOT=$D/run bin/foldup --progress quiet "$@"; }
cleanup() {
	set +e
	foldup -p vmb down -v >/dev/null 2>&1
	[ -f "$D/q.pid" ] && kill "$(cat "$D/q.pid")" 2>/dev/null
	[ -f "$D/dnsmasq.pid" ] && kill "$(cat "$D/dnsmasq.pid")" 2>/dev/null
	ip netns del $NS 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT INT TERM
ip netns add $NS
ip netns exec $NS ip link set lo up
ip netns exec $NS sh -ec "ip link add br0 type bridge; ip addr add 10.90.0.1/24 dev br0; ip link set br0 up
ip tuntap add tap0 mode tap; ip link set tap0 master br0 up"
ip netns exec $NS dnsmasq --pid-file="$D/dnsmasq.pid" --interface=br0 --bind-interfaces --port=0 \
	--dhcp-range=10.90.0.10,10.90.0.200,1h --dhcp-host=52:54:00:90:00:02,10.90.0.2,vm1 --dhcp-authoritative
cat > "$D/one.yaml" <<EOY
name: vmb
vms:
  vm1:
    kernel: $IMG/vmlinuz
    initrd: $IMG/initrd.img
    cmdline: console=ttyS0 panic=-1
    memory: 256m
    stop_grace_period: 0s
EOY
foldup -f "$D/one.yaml" up -d; foldup -f "$D/one.yaml" down
PVH=$(ls -t /var/cache/foldup/kernels/vmlinux-* | grep -v none | head -1)

now() { date +%s.%N; }
waitline() { for i in $(seq 1500); do grep -q FOLDUP-LEASE "$1" 2>/dev/null && return 0; sleep 0.02; done; echo "no lease in $1" >&2; return 1; }
record() { # WHO T0 T1 CONSOLE
	up=$(sed -n 's/.*FOLDUP-LEASE.* uptime=\([0-9.]*\).*/\1/p' "$4" | head -1)
	tsc=ok
	grep -q 'Fast TSC calibration failed' "$4" && tsc=tsc-slow
	echo "$1 $(echo "$3 - $2" | bc) $up $(echo "$3 - $2 - $up" | bc) $tsc" | tee -a "$D/times"
}
: > "$D/times"
for r in $(seq "$RUNS"); do
	t0=$(now); foldup -f "$D/one.yaml" up -d; waitline "$D/state/vmb/vm/vm1/console.log"; t1=$(now)
	record foldup "$t0" "$t1" "$D/state/vmb/vm/vm1/console.log"
	foldup -f "$D/one.yaml" down -v
	rm -f "$D/q.log"
	t0=$(now)
	ip netns exec $NS qemu-system-x86_64 -name vm1 -machine q35 -accel tcg,thread=multi -cpu max -smp 1 -m 256 \
		-nodefaults -no-user-config -display none -vga none -kernel "$PVH" -initrd "$IMG/initrd.img" \
		-append "console=ttyS0 panic=-1" -chardev file,id=c,path="$D/q.log" -serial chardev:c \
		-netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:90:00:02 \
		-pidfile "$D/q.pid" -daemonize
	waitline "$D/q.log"; t1=$(now)
	record bare "$t0" "$t1" "$D/q.log"
	kill "$(cat "$D/q.pid")"; sleep 0.3
done
median() { awk -v w="$1" -v c="$2" '$1 == w {print $c}' "$D/times" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "who     launch→lease  guest uptime  launch→guest clock  slow TSC calibrations (medians, s; $RUNS runs)"
for w in foldup bare; do
	printf '%-7s %12.2f %13.2f %19.2f  %d of %d\n' $w "$(median $w 2)" "$(median $w 3)" "$(median $w 4)" \
		"$(grep -c "^$w .*tsc-slow" "$D/times" || true)" "$RUNS"
done
