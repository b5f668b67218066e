#!/bin/sh
# bench/up.sh: `foldup up -d` and `down` against docker-compose 1.29.2 (Debian's)
# on the same 20-service file and the same private Docker engine, alternating,
# RUNS runs each (default 5), and the engine's own floor: 20 parallel
# `docker run -d` on one network. Prints every time and the medians.
#
# Everything runs inside a fresh network namespace with a private dockerd
# (its own data root and socket); nothing is pulled (the image is a
# busybox-static rootfs imported offline). Needs root, dockerd, docker-compose,
# busybox-static. Usage: [FOLDUP_BIN=path] bench/up.sh [RUNS]
#
# Beside the times it counts CPU: the whole machine's busy time (user,
# nice, system, irq, softirq in /proc/stat) during each `up -d`, less the
# client's own (foldup, or docker-compose) and, for foldup, its
# supervisor's. What is left is the engine's (dockerd, containerd, the
# shims, runc and the hooks they run): no client can bring `up` below that
# CPU time divided by the number of CPUs.
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-5}
N=20
for c in dockerd docker-compose busybox ip; do
	command -v $c >/dev/null || { echo "bench/up.sh needs $c" >&2; exit 1; }
done
DOCKER=/usr/bin/docker
GO=$(scripts/go.sh)
# FOLDUP_BIN: the foldup to measure (another build, to compare); default
# this tree's, built here.
BIN=${FOLDUP_BIN:-}
if [ -z "$BIN" ]; then
	"$GO" build -o bin/foldup ./cmd/foldup
	BIN=$PWD/bin/foldup
fi

NS=fu-bench-$$
D=$(mktemp -d /tmp/fu-bu-XXXXXX)
ID=$(basename "$D")
cleanup() {
	set +e
	[ -S "$D/docker.sock" ] && DOCKER_HOST=unix://$D/docker.sock $DOCKER rm -f $(DOCKER_HOST=unix://$D/docker.sock $DOCKER ps -aq) >/dev/null 2>&1
	[ -f "$D/docker.pid" ] && kill "$(cat "$D/docker.pid")" 2>/dev/null
	for i in $(seq 50); do [ -f "$D/docker.pid" ] || break; sleep 0.2; done
	pkill -KILL -f "exec-root $D/exec" 2>/dev/null
	ip netns del $NS 2>/dev/null
	for d in /sys/fs/cgroup/*/"$ID"; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done
	rm -rf "$D"
}
trap cleanup EXIT INT TERM

ip netns add $NS
ip netns exec $NS ip link set lo up
echo '{}' > "$D/daemon.json"
CG=$(awk '$2 ~ "^/sys/fs/cgroup" {printf "mkdir -p %s && mount -t %s -o %s %s %s\n",$2,$3,$4,$1,$2}' /proc/self/mounts)
setsid ip netns exec $NS sh -c "set -e; $CG
exec dockerd --host unix://$D/docker.sock --data-root $D/data --exec-root $D/exec --pidfile $D/docker.pid \
  --config-file $D/daemon.json --containerd-namespace $ID --containerd-plugins-namespace $ID-p \
  --cgroup-parent /$ID --userland-proxy=false --bridge none --log-level warn" >"$D/dockerd.log" 2>&1 &
export DOCKER_HOST=unix://$D/docker.sock
for i in $(seq 150); do $DOCKER version >/dev/null 2>&1 && break; sleep 0.1; done

# The image: busybox-static and its applets.
mkdir -p "$D/rootfs/bin" "$D/rootfs/tmp"
cp /bin/busybox "$D/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$D/rootfs/bin/$a"; done
tar -C "$D/rootfs" -cf "$D/rootfs.tar" .
$DOCKER import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' "$D/rootfs.tar" bench/busybox:1 >/dev/null

# The project: 20 services that sleep (init: true, so they stop at once).
P="$D/proj"
mkdir -p "$P"
{
	echo "services:"
	for i in $(seq -w 1 $N); do
		printf '  s%s:\n    image: bench/busybox:1\n    init: true\n    command: ["sleep", "3600"]\n' "$i"
	done
} > "$P/docker-compose.yml"

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
# children: the CPU ticks of this script's waited-for children so far.
children() { awk '{print $16 + $17}' /proc/$$/stat; }
# engine B0 B1 C0 C1 [OWN]: seconds of CPU the machine spent between the
# two busy counts, less the client's ticks (C1-C0) and OWN other ticks.
engine() { echo "scale=2; ($2 - $1 - ($4 - $3) - ${5:-0}) / $HZ" | bc; }
foldup() { ip netns exec $NS env DOCKER_HOST=$DOCKER_HOST FOLDUP_STATE_ROOT=$D/state FOLDUP_RUN_ROOT=$D/run \
	"$BIN" -f "$P/docker-compose.yml" -p benchf --progress quiet "$@"; }
compose() { docker-compose -f "$P/docker-compose.yml" -p benchc "$@" >/dev/null 2>&1; }

: > "$D/times"
for r in $(seq $RUNS); do
	c0=$(children); b0=$(busy); t0=$(now); foldup up -d; t1=$(now); b1=$(busy); c1=$(children)
	sup=$(awk '{print $14 + $15}' "/proc/$(cat "$D/run/benchf/supervisor.pid")/stat")
	foldup down; t2=$(now)
	echo "foldup up $(elapsed $t0 $t1)" >> "$D/times"; echo "foldup down $(elapsed $t1 $t2)" >> "$D/times"
	echo "foldup own $(echo "scale=2; ($c1 - $c0 + $sup) / $HZ" | bc)" >> "$D/times"
	echo "foldup engine $(engine $b0 $b1 $c0 $c1 $sup)" >> "$D/times"
	c0=$(children); b0=$(busy); t0=$(now); compose up -d; t1=$(now); b1=$(busy); c1=$(children)
	compose down; t2=$(now)
	echo "compose up $(elapsed $t0 $t1)" >> "$D/times"; echo "compose down $(elapsed $t1 $t2)" >> "$D/times"
	echo "compose own $(echo "scale=2; ($c1 - $c0) / $HZ" | bc)" >> "$D/times"
	echo "compose engine $(engine $b0 $b1 $c0 $c1)" >> "$D/times"
	echo "run $r: $(tail -8 "$D/times" | tr '\n' ' ')"
done

# The engine's floor: 20 `docker run -d` at once on one user network, then
# 20 `docker rm -f` at once. FLOOR=0 skips it. (Wait for those clients by
# pid: a bare `wait` would also wait for the backgrounded dockerd.)
[ "${FLOOR:-1}" = 1 ] && $DOCKER network create floor >/dev/null
[ "${FLOOR:-1}" = 1 ] && for r in $(seq $RUNS); do
	c0=$(children); b0=$(busy); t0=$(now)
	pids=
	for i in $(seq $N); do timeout 120 $DOCKER run -d --init --network floor --name floor$i bench/busybox:1 sleep 3600 >/dev/null & pids="$pids $!"; done
	wait $pids; t1=$(now); b1=$(busy); c1=$(children)
	echo "floor own $(echo "scale=2; ($c1 - $c0) / $HZ" | bc)" >> "$D/times"
	echo "floor engine $(engine $b0 $b1 $c0 $c1)" >> "$D/times"
	pids=
	for i in $(seq $N); do timeout 120 $DOCKER rm -f floor$i >/dev/null & pids="$pids $!"; done
	wait $pids; t2=$(now)
	echo "floor up $(elapsed $t0 $t1)" >> "$D/times"; echo "floor down $(elapsed $t1 $t2)" >> "$D/times"
done
[ "${FLOOR:-1}" = 1 ] && $DOCKER network rm floor >/dev/null

median() { grep "^$1 $2 " "$D/times" | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
printf '%-8s %12s %12s\n' "" "up -d (s)" "down (s)"
for w in foldup compose $([ "${FLOOR:-1}" = 1 ] && echo floor); do printf '%-8s %12.2f %12.2f\n' $w "$(median $w up)" "$(median $w down)"; done
echo "ratio foldup/compose: up $(echo "scale=2; $(median foldup up) / $(median compose up)" | bc)," \
	"down $(echo "scale=2; $(median foldup down) / $(median compose down)" | bc)  (medians of $RUNS, $N services)"
echo "CPU during up -d (s; medians): client's own, and the engine's (the machine's less the client's):"
for w in foldup compose $([ "${FLOOR:-1}" = 1 ] && echo floor); do printf '%-8s own %6.2f  engine %6.2f\n' $w "$(median $w own)" "$(median $w engine)"; done
echo "the engine's CPU in foldup's up over $NCPU CPUs: $(echo "scale=2; $(median foldup engine) / $NCPU" | bc) s," \
	"against 0.4x compose's up: $(echo "scale=2; 0.4 * $(median compose up) / 1" | bc) s"
