#!/bin/sh
# bench/before-after.sh REV [ROUNDS]: foldup as it was at REV against
# this tree's, on bench/up.sh (20 containers, against docker-compose)
# and bench/vm.sh (boot to lease, against bare qemu), alternating the two
# builds ROUNDS times (default 2) in one session, so that both meet the
# same machine. Each script compares its foldup with its own peer in the
# same run; what to read is whether those ratios moved between the
# builds. UP_RUNS and VM_RUNS are the runs each script makes a round
# (default 3 and 6). Needs what up.sh and vm.sh need. Prints the lines
# the scripts end with, prefixed by the build.
set -eu
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bench/before-after.sh REV [ROUNDS]" >&2; exit 2; }
REV=$1
ROUNDS=${2:-2}
GO=$(scripts/go.sh)
W=$(mktemp -d /tmp/fu-ba-XXXXXX)
trap 'rm -rf "$W"' EXIT INT TERM
mkdir "$W/src"
git archive "$REV" | tar -x -C "$W/src"
(cd "$W/src" && "$GO" build -o "$W/before" ./cmd/foldup)
"$GO" build -o "$W/after" ./cmd/foldup
echo "before: $(git rev-parse --short "$REV"); after: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' and the uncommitted changes')"
for i in $(seq "$ROUNDS"); do
	for b in before after; do
		FOLDUP_BIN="$W/$b" FLOOR=0 sh bench/up.sh "${UP_RUNS:-3}" 2>&1 | grep -E '^(foldup|compose|ratio)' | sed "s/^/round $i $b up: /"
		FOLDUP_BIN="$W/$b" sh bench/vm.sh "${VM_RUNS:-6}" 2>&1 | grep -E '^(foldup |bare |ratio foldup/bare \()' | sed "s/^/round $i $b vm: /"
	done
done
