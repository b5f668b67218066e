#!/bin/sh
# idle.sh [SECONDS]: what foldup's supervisor costs while nothing happens.
# Brings up the one-VM project of bench/vmlib.sh (a fresh namespace, the
# test kernel and initramfs under TCG), waits for the guest's lease, then
# reads the supervisor's CPU time (/proc/PID/stat utime+stime, all its
# threads) and its context switches (voluntary and not, every thread's
# /proc/PID/task/TID/status) at the start and the end of SECONDS (default
# 600) and prints the CPU share and the wakeups a second. Needs root.
set -eu
cd "$(dirname "$0")/.."
KCMD="console=ttyS0 quiet panic=-1"
. bench/vmlib.sh
secs=${1:-600}
foldup -f "$D/one.yaml" up -d
for i in $(seq 300); do
	grep -q FOLDUP-LEASE "$D/state/vmb/vm/vm1/console.log" 2>/dev/null && break
	sleep 0.2
done
pid=$(cat "$D/run/vmb/supervisor.pid")
hz=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
switches() { cat /proc/"$pid"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
sleep 5 # the boot's own work done
c0=$(cpu) s0=$(switches) t0=$(date +%s.%N)
sleep "$secs"
c1=$(cpu) s1=$(switches) t1=$(date +%s.%N)
awk -v c0="$c0" -v c1="$c1" -v s0="$s0" -v s1="$s1" -v t0="$t0" -v t1="$t1" -v hz="$hz" 'BEGIN {
	el = t1 - t0
	printf "idle supervisor over %.0f s: %.2f s of CPU (%.3f %%), %.1f context switches a second\n", el, (c1 - c0) / hz, 100 * (c1 - c0) / hz / el, (s1 - s0) / el
}'
