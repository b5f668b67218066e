#!/bin/sh
# bench/vmexec.sh: how long after its command each side execs qemu, the part
# of bench/vm.sh's launch → lease that is foldup's own work before the VM
# exists (loading and checking the file, planning, the journal, bridge and
# tap). Alternating RUNS times (default 8):
#   foldup   `foldup up -d` of bench/vm.sh's one-VM project
#   bare     `qemu-system-x86_64 ... -daemonize` on a tap made beforehand
# both started through `ip netns exec`, as in bench/vm.sh. The times come
# from the kernel's sched_process_exec tracepoint (perf, from linux-perf):
# from `ip`'s exec to qemu's. Everything runs in a fresh network namespace.
# Needs root, qemu, perf and the images of scripts/images.sh.
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-8}
IMG=/var/cache/foldup-test
scripts/images.sh $IMG >/dev/null
command -v perf >/dev/null || { echo "bench/vmexec.sh needs perf (linux-perf)" >&2; exit 1; }
GO=$(scripts/go.sh)
"$GO" build -o bin/foldup ./cmd/foldup

NS=fu-vmx-$$
D=$(mktemp -d /tmp/fu-vx-XXXXXX)
chmod 711 "$D"
cleanup() {
	set +e
	ip netns exec $NS env FOLDUP_STATE_ROOT=$D/state FOLDUP_RUN_ROOT=$D/run bin/foldup -p vmb down -v >/dev/null 2>&1
	[ -f "$D/q.pid" ] && kill "$(cat "$D/q.pid")" 2>/dev/null
	ip netns del $NS 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT INT TERM
ip netns add $NS
ip netns exec $NS ip link set lo up
ip netns exec $NS sh -ec "ip tuntap add tap0 mode tap; ip link set tap0 up"
foldup() { ip netns exec $NS env FOLDUP_STATE_ROOT=$D/state FOLDUP_RUN_ROOT=$D/run bin/foldup --progress quiet "$@"; }
cat > "$D/one.yaml" <<EOY
name: vmb
vms:
  vm1:
    kernel: $IMG/vmlinuz
    initrd: $IMG/initrd.img
    cmdline: console=ttyS0 quiet panic=-1
    memory: 256m
    stop_grace_period: 0s
EOY
foldup -f "$D/one.yaml" up -d; foldup -f "$D/one.yaml" down
PVH=$(ls -t /var/cache/foldup/kernels/vmlinux-* | grep -v none | head -1)

# traced CMD...: ms from the first exec of ip to the first exec of qemu.
traced() {
	perf record -q -e sched:sched_process_exec -a -o "$D/p.data" -- "$@" 2>/dev/null
	perf script -i "$D/p.data" -F comm,time 2>/dev/null |
		awk '$1 == "ip" && !t0 {t0 = $2 + 0} /^ *qemu-system/ && !q {q = $2 + 0} END {printf "%.1f", (q - t0) * 1000}'
}
: > "$D/times"
for r in $(seq $RUNS); do
	echo "foldup $(traced ip netns exec $NS env FOLDUP_STATE_ROOT=$D/state FOLDUP_RUN_ROOT=$D/run bin/foldup --progress quiet -f "$D/one.yaml" up -d)" >> "$D/times"
	sleep 2
	foldup -f "$D/one.yaml" down -v
	echo "bare $(traced ip netns exec $NS qemu-system-x86_64 -name vm1 -machine q35 -accel tcg,thread=multi -cpu max -smp 1 -m 256 \
		-nodefaults -no-user-config -display none -vga none -kernel "$PVH" -initrd "$IMG/initrd.img" \
		-append "console=ttyS0 quiet panic=-1" -chardev file,id=c,path="$D/q.log" -serial chardev:c \
		-netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:90:00:02 \
		-pidfile "$D/q.pid" -daemonize)" >> "$D/times"
	sleep 2
	kill "$(cat "$D/q.pid")"; rm -f "$D/q.pid"; sleep 0.3
	echo "run $r: $(tail -2 "$D/times" | tr '\n' ' ')"
done
median() { grep "^$1 " "$D/times" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "command → qemu's exec, median of $RUNS (ms): foldup $(median foldup), bare $(median bare)"
