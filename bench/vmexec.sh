#!/bin/sh
# bench/vmexec.sh: how long after its command each side execs qemu, the part
# of bench/vm.sh's launch → lease that is foldup's own work before the VM
# exists (loading and checking the file, planning, the journal, bridge and
# tap). Alternating RUNS times (default 8):
#   foldup   `foldup up -d` of bench/vm.sh's one-VM project
#   bare     bench/vm.sh's bare qemu (`-daemonize`) on a tap made beforehand
# both started through `ip netns exec`, as in bench/vm.sh. The times come
# from the kernel's sched_process_exec tracepoint (perf, from linux-perf):
# from `ip`'s exec to qemu's. Everything runs in a fresh network namespace.
# Needs root, qemu, perf and the images of scripts/images.sh.
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-8}
command -v perf >/dev/null || { echo "bench/vmexec.sh needs perf (linux-perf)" >&2; exit 1; }
KCMD="console=ttyS0 quiet panic=-1"
. bench/vmlib.sh
ip netns exec $NS sh -ec "ip tuntap add tap0 mode tap; ip link set tap0 up"

trace="perf record -q -e sched:sched_process_exec -a -o $D/p.data --"
# execms: ms from the first exec of ip to the first exec of qemu in the trace.
execms() {
	perf script -i "$D/p.data" -F comm,time 2>/dev/null |
		awk '$1 == "ip" && !t0 {t0 = $2 + 0} /^ *qemu-system/ && !q {q = $2 + 0} END {printf "%.1f", (q - t0) * 1000}'
}
: > "$D/times"
for r in $(seq $RUNS); do
	$trace ip netns exec $NS env FOLDUP_STATE_ROOT=$D/state FOLDUP_RUN_ROOT=$D/run "$BIN" --progress quiet -f "$D/one.yaml" up -d 2>/dev/null
	echo "foldup $(execms)" >> "$D/times"
	sleep 2
	foldup -f "$D/one.yaml" down -v
	bare_qemu "$PVH" $trace 2>/dev/null
	echo "bare $(execms)" >> "$D/times"
	sleep 2
	kill "$(cat "$D/q.pid")"; rm -f "$D/q.pid"; sleep 0.3
	echo "run $r: $(tail -2 "$D/times" | tr '\n' ' ')"
done
median() { grep "^$1 " "$D/times" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "command → qemu's exec, median of $RUNS (ms): foldup $(median foldup), bare $(median bare)"
