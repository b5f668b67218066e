#!/bin/sh
# example-images.sh DIR [web] [postgres]: build the images of
# examples/webapp-with-db into DIR, offline from Debian packages and the Go
# module proxy, and keep them there (a second run with the same inputs does
# nothing). As root. Without a part named, both are built.
#
#   DIR/web/vmlinuz      Debian's kernel (bzImage, as the package ships it)
#   DIR/web/initrd.img   busybox + virtio, ACPI button and evdev modules +
#                        the web app (examples/webapp-with-db/web, built
#                        static) + the files in examples/webapp-with-db/vm:
#                        busybox init runs etc/rc.sh (DHCP lease with
#                        udhcpc, resolv.conf, IPv6 by SLAAC; FOLDUP-LEASE,
#                        FOLDUP-IPV6 lines on the console), then keeps
#                        bin/webapp-run (the app, its log on the console)
#                        and a console shell going
#   DIR/postgres.tar     a root filesystem for docker import: Debian 12
#                        minbase + postgresql-15, entrypoint
#                        examples/webapp-with-db/db/docker-entrypoint.sh
#
# example-images.sh --import DIR: import DIR/postgres.tar into the engine
# that docker (or $DOCKER) talks to ($DOCKER_HOST) as
# foldup-example/postgres:15, unless an image of the same build is there
# (its label com.foldup.example.key). It runs:
#
#   docker import \
#     --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
#     --change 'CMD ["postgres"]' \
#     --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
#     --change 'ENV PGDATA=/var/lib/postgresql/data' --change 'ENV LANG=C.UTF-8' \
#     --change 'USER postgres' --change 'EXPOSE 5432' \
#     --change 'LABEL com.foldup.example.key=KEY' \
#     DIR/postgres.tar foldup-example/postgres:15
#
# The cache keys: for web, the kernel, busybox and Go versions, the app's
# sources, examples/webapp-with-db/vm and this script; for postgres, the
# release, the package list, the entrypoint and this script; both also
# debian.sh.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
self="$here/$(basename "$0")"
example=$(cd "$here/../examples/webapp-with-db" && pwd)
# shellcheck source=debian.sh
. "$here/debian.sh"
image=foldup-example/postgres:15

usage() {
	echo "usage: example-images.sh DIR [web] [postgres] | example-images.sh --import DIR" >&2
	exit 2
}

# hashfiles DIR: one hash of the files under DIR (names and contents;
# tests and editor leftovers aside).
hashfiles() {
	(cd "$1" && find . -type f ! -name '*_test.go' ! -name '*~' ! -name '.*' | LC_ALL=C sort |
		xargs sha256sum | sha256sum | cut -c1-16)
}

build_web() {
	out="$dir/web"
	mkdir -p "$out"
	export DEBIAN_FRONTEND=noninteractive
	if ! command -v cpio >/dev/null 2>&1 || ! [ -e /bin/busybox ] || ! dpkg -s busybox-static >/dev/null 2>&1; then
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends busybox-static cpio xz-utils >/dev/null
	fi
	# The kernel: the one images.sh uses (linux-image-amd64's current).
	kpkg=$(kernel_pkg)
	kver=${kpkg#linux-image-}
	go=$("$here/go.sh")
	gover=$(cd "$example/web" && "$go" env GOVERSION) # the toolchain go.mod selects
	key=$(printf '%s\n' web "$kver" "$(dpkg-query -W -f='${Version}' busybox-static)" "$gover" \
		"$(hashfiles "$example/web")" "$(hashfiles "$example/vm")" | cat - "$self" "$here/debian.sh" | sha256sum | cut -c1-16)
	if [ -f "$out/.key" ] && [ "$(cat "$out/.key")" = "$key" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ]; then
		return
	fi

	root="$work/web"
	mkdir -p "$root/bin" "$root/dev" "$root/etc" "$root/lib/modules" "$root/proc" "$root/run" "$root/sys" "$root/tmp"
	# The app: static, no cgo (the initramfs has no libc).
	(cd "$example/web" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOWORK=off GOFLAGS='-mod=readonly -buildvcs=false' \
		"$go" build -trimpath -ldflags='-s -w' -o "$root/bin/webapp" .)

	kernel_unpack "$kpkg" "$work/k"
	cp "$work/k/boot/vmlinuz-$kver" "$out/vmlinuz.tmp"
	# Modules, in load order, dependencies first (Debian builds these as
	# modules; modinfo's depends= lists what each needs).
	copy_modules "$work/k" "$kver" "$root/lib/modules" virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev \
		virtio_pci virtio_mmio failover net_failover virtio_net button evdev

	cp /bin/busybox "$root/bin/busybox"
	for a in $("$root/bin/busybox" --list); do
		[ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
	done
	# busybox init as PID 1; the kernel opens /dev/console for it before
	# anything mounts devtmpfs.
	ln -s bin/busybox "$root/init"
	mknod -m 600 "$root/dev/console" c 5 1
	mknod -m 666 "$root/dev/null" c 1 3
	cp -R "$example/vm/." "$root/"
	echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
	echo "root:x:0:" >"$root/etc/group"
	echo "127.0.0.1 localhost" >"$root/etc/hosts"
	echo "hosts: files dns" >"$root/etc/nsswitch.conf"

	(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -9) >"$out/initrd.img.tmp"
	mv "$out/vmlinuz.tmp" "$out/vmlinuz"
	mv "$out/initrd.img.tmp" "$out/initrd.img"
	echo "$key" >"$out/.key"
	echo "example-images.sh: kernel $kver and initramfs with the web app ($gover) in $out"
}

release=bookworm
pkgs="postgresql-15"

postgres_key() {
	printf '%s\n' postgres "$release" "$pkgs" | cat - "$example/db/docker-entrypoint.sh" "$self" "$here/debian.sh" | sha256sum | cut -c1-16
}

build_postgres() {
	key=$(postgres_key)
	if [ -f "$dir/.postgres.key" ] && [ "$(cat "$dir/.postgres.key")" = "$key" ] && [ -f "$dir/postgres.tar" ]; then
		return
	fi
	export DEBIAN_FRONTEND=noninteractive
	root="$work/postgres"
	# No cluster at install time (the entrypoint makes one on first
	# start).
	hook='mkdir -p "$1/etc/postgresql-common/createcluster.d"
echo "create_main_cluster = false" >"$1/etc/postgresql-common/createcluster.d/foldup.conf"'
	rootfs "$release" "$root" "$pkgs" "$hook"

	# JIT: postgresql-15 depends on LLVM (about 110 MB) for it; without
	# llvmjit.so the server quietly runs without JIT, which a seeded
	# example never needs.
	#
	# Also gone: perl (only postgresql-common's wrappers, /usr/bin/psql and
	# the like, use it: the image's PATH puts the real programs first) and
	# locales (initdb uses C.UTF-8, which is in libc). dpkg's database
	# knows they are missing: this image is for running, not for apt-get.
	chroot "$root" dpkg --purge --force-depends libllvm14 perl perl-modules-5.36 libperl5.36 locales >/dev/null 2>&1
	chroot "$root" dpkg --purge libz3-4 >/dev/null
	rm -rf "$root"/usr/lib/postgresql/15/lib/llvmjit* "$root"/usr/lib/postgresql/15/lib/bitcode
	# The snakeoil key ssl-cert made would be the same in every container.
	rm -f "$root"/etc/ssl/private/ssl-cert-snakeoil.key "$root"/etc/ssl/certs/ssl-cert-snakeoil.pem
	rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
		"$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/etc/postgresql/15
	# /usr/bin/psql, pg_isready and the like are links to that perl
	# wrapper: point them at the programs themselves.
	for f in "$root"/usr/bin/*; do
		b=$(basename "$f")
		if [ "$(readlink "$f")" = ../share/postgresql-common/pg_wrapper ] && [ -e "$root/usr/lib/postgresql/15/bin/$b" ]; then
			ln -sf "../lib/postgresql/15/bin/$b" "$f"
		fi
	done
	chroot "$root" install -d -o postgres -g postgres -m 2775 /run/postgresql
	chroot "$root" install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
	install -d "$root/docker-entrypoint-initdb.d"
	install -m 0755 "$example/db/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
	rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
	: >"$root/etc/machine-id"

	tar -C "$root" --numeric-owner --sort=name --exclude='./dev/*' -cf "$dir/postgres.tar.tmp" .
	mv "$dir/postgres.tar.tmp" "$dir/postgres.tar"
	echo "$key" >"$dir/.postgres.key"
	echo "example-images.sh: postgres.tar ($(du -m "$dir/postgres.tar" | cut -f1) MB) in $dir; import it with: $self --import $dir"
}

import_postgres() {
	docker=${DOCKER:-docker}
	key=$(cat "$dir/.postgres.key")
	have=$($docker image inspect --format '{{index .Config.Labels "com.foldup.example.key"}}' "$image" 2>/dev/null || true)
	if [ "$have" = "$key" ]; then
		return
	fi
	$docker import \
		--change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
		--change 'CMD ["postgres"]' \
		--change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV PGDATA=/var/lib/postgresql/data' --change 'ENV LANG=C.UTF-8' \
		--change 'USER postgres' --change 'EXPOSE 5432' \
		--change "LABEL com.foldup.example.key=$key" \
		"$dir/postgres.tar" "$image" >/dev/null
	echo "example-images.sh: imported $image"
}

case "${1:-}" in
--import)
	[ $# = 2 ] || usage
	dir=$(cd "$2" && pwd)
	[ -f "$dir/postgres.tar" ] && [ -f "$dir/.postgres.key" ] || {
		echo "example-images.sh: no postgres.tar in $dir: run example-images.sh $2 first" >&2
		exit 1
	}
	import_postgres
	exit 0
	;;
'' | -*) usage ;;
esac
dir=$1
shift
[ "$(id -u)" = 0 ] || {
	echo "example-images.sh: needs root (mmdebstrap --mode=root, device nodes in the initramfs)" >&2
	exit 1
}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
work=$(mktemp -d)
trap 'rm -rf --one-file-system "$work"' EXIT
parts=${*:-web postgres}
for p in $parts; do
	case "$p" in
	web) build_web ;;
	postgres) build_postgres ;;
	*) usage ;;
	esac
done
