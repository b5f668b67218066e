#!/bin/sh
# bench/demo.sh [--cold]: how long the README's main command,
# scripts/demo.sh, takes, as root.
#
#   cold images   (--cold only) scripts/example-images.sh into an empty
#                 directory with empty Go caches, on the host's network
#                 (Debian packages and Go modules are downloaded: what a
#                 fresh clone's first demo.sh spends before foldup runs)
#   fresh engine  scripts/demo.sh with the images built: the database image
#                 imported into an engine that has never seen it, up -d
#                 --wait (initdb and the seed, the VM's boot), the page
#   project up    scripts/demo.sh again: nothing to make, the page
#   after down    down (the volume kept), then scripts/demo.sh: the
#                 containers and the VM made again, the cluster reused
#
# The demo runs inside a fresh network namespace with a private dockerd
# (its own data root and socket), as the demo test does: nothing leaves
# the namespace, and the host's engine, if any, is not touched. Images
# come from /var/cache/foldup-test/example (scripts/example-images.sh
# builds them there if they are missing). Needs dockerd, qemu, curl.
set -eu
cd "$(dirname "$0")/.."
root=$PWD
IMG=/var/cache/foldup-test/example
now() { date +%s.%N; }
elapsed() { printf '%.1f' "$(echo "$2 - $1" | bc)"; }

D=$(mktemp -d /tmp/fu-db-XXXXXX) # short: socket paths are limited to 108 bytes
chmod 711 "$D"
NS=fu-demob-$$
id=$(basename "$D")
keyjson=no
[ -e /etc/docker/key.json ] || keyjson=yes

if [ "${1:-}" = --cold ]; then
	mkdir -p "$D/img" "$D/go"
	chmod 755 "$D/img"
	t0=$(now)
	GOCACHE=$D/go/cache GOMODCACHE=$D/go/mod scripts/example-images.sh "$D/img" >/dev/null
	echo "cold images: $(elapsed "$t0" "$(now)") s (example-images.sh, empty image directory and Go caches)"
	chmod -R u+w "$D/go" # the module cache is read-only
	rm -rf "$D/img" "$D/go"
fi
scripts/example-images.sh "$IMG" >/dev/null

export DOCKER_HOST=unix://$D/docker.sock FOLDUP_IMAGES=$IMG FOLDUP_STATE_ROOT=$D/state FOLDUP_RUN_ROOT=$D/run
cleanup() {
	set +e
	ip netns exec "$NS" bin/foldup -p webapp down -v >/dev/null 2>&1
	if [ -f "$D/docker.pid" ]; then
		/usr/bin/docker rm -f $(/usr/bin/docker ps -aq) >/dev/null 2>&1
		kill "$(cat "$D/docker.pid")" 2>/dev/null
		for i in $(seq 100); do [ -e "$D/docker.pid" ] || break; sleep 0.1; done
	fi
	pkill -9 -f "$D/" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	for c in /sys/fs/cgroup/"$id" /sys/fs/cgroup/*/"$id"; do
		[ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	[ $keyjson = yes ] && rm -f /etc/docker/key.json
	rm -rf "$D"
}
trap cleanup EXIT INT TERM
ip netns add "$NS"
ip -n "$NS" link set lo up
echo '{}' >"$D/daemon.json"
# `ip netns exec` remounts /sys, hiding the cgroup hierarchies dockerd needs.
mounts=$(awk '$2 ~ /^\/sys\/fs\/cgroup/ {printf "mkdir -p %s && mount -t %s -o %s %s %s\n", $2, $3, $4, $1, $2}' /proc/self/mounts)
setsid ip netns exec "$NS" sh -ec "$mounts
exec dockerd --host $DOCKER_HOST --data-root $D/data --exec-root $D/exec --pidfile $D/docker.pid \
	--config-file $D/daemon.json --containerd-namespace $id --containerd-plugins-namespace $id-plugins \
	--cgroup-parent /$id --userland-proxy=false --bridge none --log-level warn" >"$D/dockerd.log" 2>&1 </dev/null &
for i in $(seq 150); do /usr/bin/docker info >/dev/null 2>&1 && break; sleep 0.2; done

demo() { # demo LABEL: run scripts/demo.sh in the namespace, check the page, print the time
	t0=$(now)
	ip netns exec "$NS" scripts/demo.sh >"$D/out" 2>&1 || { cat "$D/out" >&2; exit 1; }
	t1=$(now)
	grep -q '^(4 rows)$' "$D/out" || { cat "$D/out" >&2; echo "bench/demo.sh: no rows" >&2; exit 1; }
	echo "$1: $(elapsed "$t0" "$t1") s"
}
demo "fresh engine"
demo "project up"
ip netns exec "$NS" bin/foldup -f examples/webapp-with-db/foldup.yaml down >/dev/null 2>&1
demo "after down"
