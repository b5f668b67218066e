#!/bin/sh
# demo.sh: foldup's main job, on a fresh Debian 12 machine, as root. It
#
#   1. installs what is missing: the Docker engine, qemu, curl (and Go,
#      through scripts/go.sh), and starts the engine if none answers;
#   2. builds bin/foldup and the example's images, offline from Debian
#      packages and the Go module proxy, cached under $FOLDUP_IMAGES
#      (default .cache/images; a second run rebuilds nothing);
#   3. imports the database image into the engine, runs
#      `foldup up -d --wait` on examples/webapp-with-db (a PostgreSQL
#      container and a Go web app in a VM) and prints the page the VM
#      serves on the host's port 8080, then says how to look around and
#      how to take it down.
#
# Run again, it does nothing but print the page: the project is up.
#
# With DOCKER_HOST set, it uses that engine and never starts one (the demo
# test runs it so, against a private engine in a network namespace).
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
FOLDUP_IMAGES=${FOLDUP_IMAGES:-$PWD/.cache/images}
export FOLDUP_IMAGES
file=examples/webapp-with-db/foldup.yaml

say() { echo "== $*" >&2; }

[ "$(id -u)" = 0 ] || {
	echo "demo.sh: run it as root (it makes a bridge, a firewall table and a VM)" >&2
	exit 1
}

missing=""
for c in dockerd:docker.io qemu-system-x86_64:qemu-system-x86 curl:curl; do
	command -v "${c%%:*}" >/dev/null 2>&1 || missing="$missing ${c#*:}"
done
if [ -n "$missing" ]; then
	say "installing$missing"
	apt-get update -qq
	# shellcheck disable=SC2086 # one word a package
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# The Docker client: Debian's docker.io ships one as /usr/bin/docker.
DOCKER=${DOCKER:-$(command -v docker || echo /usr/bin/docker)}
export DOCKER

if ! "$DOCKER" info >/dev/null 2>&1; then
	if [ -n "${DOCKER_HOST:-}" ]; then
		echo "demo.sh: no Docker engine answers at DOCKER_HOST=$DOCKER_HOST" >&2
		exit 1
	fi
	say "starting the Docker engine"
	if [ -d /run/systemd/system ]; then
		systemctl start docker
	else # no systemd (a container, a chroot): dockerd in the background
		mkdir -p /var/log
		setsid dockerd >/var/log/foldup-demo-dockerd.log 2>&1 </dev/null &
	fi
	i=0
	until "$DOCKER" info >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 150 ]; then
			echo "demo.sh: the Docker engine did not start in 30 s" >&2
			exit 1
		fi
		sleep 0.2
	done
fi

say "building foldup"
GO=$(scripts/go.sh)
"$GO" build -o bin/foldup ./cmd/foldup
say "building the example's images into $FOLDUP_IMAGES (cached)"
scripts/example-images.sh "$FOLDUP_IMAGES"
scripts/example-images.sh --import "$FOLDUP_IMAGES"

say "foldup -f $file up -d --wait"
bin/foldup -f "$file" up -d --wait

say "curl http://localhost:8080/"
# up --wait returned once the VM's health check (the app's /healthz, 200
# once the database answers) passed: the page is there.
curl -fsS --max-time 30 http://localhost:8080/

cat >&2 <<EOF

The example is up: a PostgreSQL container and a web app in a VM, on one
isolated network. Look around:

  bin/foldup -f $file ps            # both, healthy, with their addresses
  bin/foldup -f $file logs web      # the VM's serial console
  bin/foldup -f $file console web   # a shell in the VM (Enter; Ctrl-] leaves)

Take it down (-v also removes the database's volume):

  bin/foldup -f $file down -v
EOF
