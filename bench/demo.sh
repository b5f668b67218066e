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
IMG=/var/cache/foldup-test/example
now() { date +%s.%N; }
elapsed() { printf '%.1f' "$(echo "$2 - $1" | bc)"; }

# shellcheck source=../scripts/engine.sh
. scripts/engine.sh
D=$(mktemp -d /tmp/fu-db-XXXXXX) # short: socket paths are limited to 108 bytes
chmod 711 "$D"
NS=fu-demob-$$
export DOCKER=/usr/bin/docker # the engine's own client (docker.io)
export FOLDUP_STATE_ROOT=$D/state FOLDUP_RUN_ROOT=$D/run
cleanup() {
	set +e
	ip netns exec "$NS" bin/foldup -p webapp down -v >/dev/null 2>&1
	engine_stop "$D"
	ip netns del "$NS" 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT INT TERM

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

export FOLDUP_IMAGES=$IMG
ip netns add "$NS"
ip -n "$NS" link set lo up
engine_start "$NS" "$D"

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
