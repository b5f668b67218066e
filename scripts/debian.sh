# debian.sh: what the image scripts (images.sh, cloudimage.sh,
# example-images.sh) share, sourced by them. POSIX sh. Each script's cache
# key includes this file.

# kernel_pkg [ARCH] prints the package of Debian's current kernel for ARCH
# (amd64 if not given; linux-image-ARCH's dependency), e.g.
# linux-image-6.1.0-28-amd64, or linux-image-6.1.0-28-arm64:arm64 for a
# foreign ARCH (see foreign_arch); nothing if the archive has none.
kernel_pkg() {
	_a=${1:-amd64}
	_p=linux-image-$_a
	[ "$_a" = amd64 ] || _p=$_p:$_a
	_k=$(apt-cache depends "$_p" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	if [ -z "$_k" ]; then
		apt-get update -qq
		_k=$(apt-cache depends "$_p" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	fi
	echo "$_k"
}

# foreign_arch ARCH: let apt download ARCH's packages (dpkg
# --add-architecture, apt-get update) unless it already does; fails, and
# takes ARCH out again, if the configured archive has none for ARCH.
foreign_arch() {
	[ "$1" = "$(dpkg --print-architecture)" ] && return 0
	dpkg --print-foreign-architectures | grep -qx "$1" && return 0
	dpkg --add-architecture "$1"
	apt-get update -qq
	apt-cache show "base-files:$1" >/dev/null 2>&1 && return 0
	dpkg --remove-architecture "$1"
	apt-get update -qq
	echo "foreign_arch: the configured archive has no $1 packages" >&2
	return 1
}

# deb_unpack PKG DIR: download the package PKG (name[:arch]; nothing is
# installed) and unpack it into DIR.
deb_unpack() {
	mkdir -p "$2.deb"
	(cd "$2.deb" && apt-get download -qq -o APT::Sandbox::User=root "$1" >/dev/null)
	dpkg-deb -x "$2.deb"/*.deb "$2"
}

# kernel_unpack PKG DIR: deb_unpack for the kernel package.
kernel_unpack() {
	deb_unpack "$@"
}

# copy_modules KDIR KVER DEST MODULE...: copy the named modules of the
# unpacked kernel in KDIR into DEST (decompressed), and their names, in
# the order given (dependencies first), into DEST/order.
copy_modules() {
	_kdir=$1 _kver=$2 _dest=$3
	shift 3
	mkdir -p "$_dest"
	for _m in "$@"; do
		_f=$(find "$_kdir/lib/modules/$_kver" -name "$_m.ko*" | head -n1)
		[ -n "$_f" ] || continue
		case "$_f" in
		*.xz) xz -dc "$_f" >"$_dest/$_m.ko" ;;
		*) cp "$_f" "$_dest/$_m.ko" ;;
		esac
	done
	echo "$*" >"$_dest/order"
}

# rootfs RELEASE ROOT PACKAGES HOOK: a minimal Debian root filesystem in
# ROOT (mmdebstrap minbase, as root): PACKAGES (space-separated) without
# their recommendations, no docs, man pages or translations, merged /usr
# the debootstrap way (so apt pulls in neither usrmerge nor perl), HOOK
# run as mmdebstrap's essential hook (its $1 is ROOT).
rootfs() {
	if ! command -v mmdebstrap >/dev/null 2>&1; then
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
	fi
	mmdebstrap --quiet --mode=root --variant=minbase \
		--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
		--aptopt='APT::Install-Recommends "false"' \
		--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
		--include="$(echo "$3" | tr ' ' ,)" \
		--essential-hook="$4" \
		"$1" "$2" \
		"deb http://deb.debian.org/debian $1 main" \
		"deb http://deb.debian.org/debian $1-updates main" \
		"deb http://deb.debian.org/debian-security $1-security main"
}
