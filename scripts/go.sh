#!/bin/sh
# go.sh: print the path of a Go toolchain that can build foldup, installing
# one when the machine has none. Debian 12's own golang-go (1.19) is too old
# to build foldup or even to fetch a newer toolchain, so a fresh machine
# gets golang-1.23 from bookworm-backports; from there the go command fetches
# the exact toolchain go.mod names through the Go module proxy.
set -eu
for g in "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go /usr/lib/go-1.2[3-9]/bin/go; do
	[ -n "$g" ] && [ -x "$g" ] || continue
	v=$("$g" env GOVERSION 2>/dev/null || true) # go1.21 and later answer
	case "$v" in go1.2[1-9]*|go1.[3-9]*) echo "$g"; exit 0 ;; esac
done
echo "go.sh: installing golang-1.23 from bookworm-backports" >&2
export DEBIAN_FRONTEND=noninteractive
if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
	echo "deb http://deb.debian.org/debian bookworm-backports main" >/etc/apt/sources.list.d/foldup-backports.list
fi
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends -t bookworm-backports golang-1.23-go ca-certificates git >&2
echo /usr/lib/go-1.23/bin/go
