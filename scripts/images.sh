#!/bin/sh
# images.sh DIR [ARCH]: build the test VM images into DIR, offline from
# Debian packages, and keep them there (a second run does nothing):
#
#   DIR/vmlinuz        Debian's kernel (bzImage, as the package ships it)
#   DIR/initrd.img     busybox + virtio modules + /init: brings eth0 up,
#                      takes a DHCP lease (udhcpc), serves "hello from
#                      <hostname>" on :80, prints FOLDUP-LEASE (with the
#                      guest's uptime) and FOLDUP-READY lines on the
#                      console; with foldup.peer=NAME and foldup.txt=NAME
#                      on the kernel command line it also
#                      looks NAME up and fetches its page (FOLDUP-DNS,
#                      FOLDUP-HTTP) and prints a TXT record (FOLDUP-TXT)
#   DIR/initrd-netem.img  the same with the kernel's netem, ifb, veth, u32,
#                      mirred and ingress modules and /netem-init (boot
#                      with rdinit=/netem-init): it loads them, runs
#                      /nettest (a test binary appended as a third
#                      archive) and powers off (amd64 only)
#   DIR/initrd-agent.img  the same with qemu-guest-agent (Debian's qemu-ga
#                      and the host's libraries it links), which /init
#                      starts on the port org.qemu.guest_agent.0 when the
#                      VM has one (amd64 only)
#
# ARCH is a Debian architecture: amd64 (the default) builds the above;
# another one builds the same guest from that architecture's packages into
# DIR/ARCH/vmlinuz and DIR/ARCH/initrd.img, for qemu's TCG. It adds ARCH to
# dpkg's foreign architectures (apt-get download only: nothing of it is
# installed). arm64: Debian's kernel is an uncompressed Image, which
#
#   qemu-system-aarch64 -machine virt -cpu cortex-a57 -accel tcg \
#     -kernel vmlinuz -initrd initrd.img -append console=ttyAMA0 \
#     -device virtio-net-pci,netdev=...
#
# boots as it is (-cpu max boots some 4 s slower under TCG: pointer
# authentication; max,pauth-impdef=on is about as fast as cortex-a57).
# riscv64 is not in Debian 12's archive: the script says so and fails.
#
# The cache key is the kernel version, busybox version, this script and
# debian.sh.
set -eu
usage() {
	echo "usage: images.sh DIR [amd64|arm64|riscv64]" >&2
	exit 2
}
case $# in 1 | 2) ;; *) usage ;; esac
arch=${2:-amd64}
case $arch in amd64 | arm64 | riscv64) ;; *) usage ;; esac
dir=$1
[ "$arch" = amd64 ] || dir=$dir/$arch

lib="$(dirname "$0")/debian.sh"
# shellcheck source=debian.sh
. "$lib"
export DEBIAN_FRONTEND=noninteractive
need() { command -v "$1" >/dev/null 2>&1; }
if ! need cpio || ! need busybox || ! [ -e /bin/busybox ] || ! dpkg -s busybox-static >/dev/null 2>&1; then
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends busybox-static cpio xz-utils >/dev/null
fi

# srcver VERSION: a Debian version without its binNMU suffix (+bN).
srcver() {
	echo "${1%+b[0-9]*}"
}

# applets VERSION: the applet list of busybox-static VERSION. A foreign
# busybox can't run here, but the list comes from the source package's
# config, the same on every architecture: ask the host's busybox of that
# source version (the installed one, else the archive's).
applets() {
	_bb=/bin/busybox
	if [ "$(srcver "$(dpkg-query -W -f='${Version}' busybox-static)")" != "$(srcver "$1")" ]; then
		deb_unpack busybox-static "$work/bbhost"
		_bb=$work/bbhost/bin/busybox
		if [ "$(srcver "$(dpkg-deb -f "$work"/bbhost.deb/*.deb Version)")" != "$(srcver "$1")" ]; then
			echo "images.sh: no $(dpkg --print-architecture) busybox-static $1 to list the applets of" >&2
			return 1
		fi
	fi
	"$_bb" --list
}

if [ "$arch" = amd64 ]; then
	bbver=$(dpkg-query -W -f='${Version}' busybox-static)
else
	foreign_arch "$arch" || exit 1
	bbver=$(apt-cache policy "busybox-static:$arch" | sed -n 's/^ *Candidate: //p')
fi
kpkg=$(kernel_pkg "$arch")
[ "$bbver" != "(none)" ] || bbver=
if [ -z "$kpkg" ] || [ -z "$bbver" ]; then
	echo "images.sh: the configured archive has no $arch kernel (linux-image-$arch) or no busybox-static:$arch" >&2
	exit 1
fi
kver=${kpkg#linux-image-}
kver=${kver%:*}
key=$(printf '%s\n%s\n' "$kver" "$bbver" | cat - "$0" "$lib" | sha256sum | cut -c1-16)
if [ -f "$dir/.key" ] && [ "$(cat "$dir/.key")" = "$key" ] && [ -f "$dir/vmlinuz" ] && [ -f "$dir/initrd.img" ] &&
	{ [ "$arch" != amd64 ] || { [ -f "$dir/initrd-agent.img" ] && [ -f "$dir/initrd-netem.img" ]; }; }; then
	exit 0
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
kernel_unpack "$kpkg" "$work/k"
cp "$work/k/boot/vmlinuz-$kver" "$dir/vmlinuz.tmp"

root="$work/root"
mkdir -p "$root/bin" "$root/sbin" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/www" "$root/lib/modules"
if [ "$arch" = amd64 ]; then
	cp /bin/busybox "$root/bin/busybox"
	list=$("$root/bin/busybox" --list)
else
	deb_unpack "busybox-static:$arch=$bbver" "$work/bb"
	cp "$work/bb/bin/busybox" "$root/bin/busybox"
	list=$(applets "$bbver")
fi
for a in $list; do
	[ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"
done
# virtio drivers, in load order; those the kernel has built in are left
# out (amd64 builds them all as modules; arm64 has virtio and virtio_ring
# built in).
copy_modules "$work/k" "$kver" "$root/lib/modules" virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev \
	virtio_pci virtio_mmio failover net_failover virtio_net virtio_blk virtio_console
echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
echo "foldup test guest" >"$root/www/index.html" # /init rewrites it: "hello from <hostname>"

cat >"$root/etc/udhcpc.sh" <<'SCRIPT'
#!/bin/sh
# udhcpc event script: configure eth0, print the lease on the console.
case "$1" in
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	[ -n "${router:-}" ] && ip route replace default via "${router%% *}" dev "$interface"
	: >/etc/resolv.conf
	[ -n "${domain:-}" ] && echo "search $domain" >>/etc/resolv.conf
	for d in ${dns:-}; do echo "nameserver $d" >>/etc/resolv.conf; done
	[ -n "${hostname:-}" ] && hostname "$hostname"
	echo "FOLDUP-LEASE event=$1 ip=$ip mask=${mask:-} router=${router:-} dns=${dns:-} hostname=${hostname:-} domain=${domain:-} lease=${lease:-} mtu=${mtu:-} uptime=$(cut -d' ' -f1 /proc/uptime)" >/dev/console
	;;
esac
SCRIPT
chmod +x "$root/etc/udhcpc.sh"

cat >"$root/init" <<'SCRIPT'
#!/bin/sh
# The test guest's init: modules, DHCP, httpd, a console shell.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
ip link set lo up
for m in $(cat /lib/modules/order); do
	[ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null
done
for i in $(seq 1000); do [ -e /sys/class/net/eth0 ] && break; sleep 0.01; done
# foldup.stable_secret=MAC=SECRET, one per interface on a stable-privacy
# network: its RFC 7217 secret, set before the link comes up, so that the
# address the kernel forms is the one foldup planned.
for kv in $(tr ' ' '\n' </proc/cmdline | sed -n 's/^foldup\.stable_secret=//p'); do
	for d in /sys/class/net/*; do
		[ "$(cat "$d/address")" = "${kv%%=*}" ] || continue
		echo "${kv#*=}" >"/proc/sys/net/ipv6/conf/${d##*/}/stable_secret"
		echo 2 >"/proc/sys/net/ipv6/conf/${d##*/}/addr_gen_mode"
	done
done
ip link set eth0 up
# qemu-guest-agent, where the initramfs has it and the VM has its port.
if [ -x /usr/sbin/qemu-ga ]; then
	for p in /sys/class/virtio-ports/*; do
		[ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] || continue
		mkdir -p /var/run
		/usr/sbin/qemu-ga -m virtio-serial -p "/dev/${p##*/}" -t /tmp </dev/null >/dev/console 2>&1 &
	done
fi
udhcpc -i eth0 -s /etc/udhcpc.sh -t 60 -T 1 -A 1 -b -q -x hostname:"$(hostname)" >/dev/null 2>&1
echo "hello from $(hostname)" >/www/index.html
httpd -p 80 -h /www
echo FOLDUP-READY >/dev/console
# foldup.peer=NAME on the command line: look NAME up, fetch its page.
# foldup.txt=NAME: print NAME's TXT record as this guest sees it.
peer=$(sed -n 's/.*foldup\.peer=\([^ ]*\).*/\1/p' /proc/cmdline)
txt=$(sed -n 's/.*foldup\.txt=\([^ ]*\).*/\1/p' /proc/cmdline)
(
	if [ -n "$peer" ]; then
		for i in $(seq 30); do
			a=$(nslookup "$peer" 2>/dev/null | sed -n '/^Name:/,$s/^Address[^:]*: *//p' | head -n1)
			[ -n "$a" ] && break
			sleep 1
		done
		echo "FOLDUP-DNS $peer=$a" >/dev/console
		for i in $(seq 30); do
			b=$(timeout 3 wget -q -O - "http://$peer/" 2>/dev/null) && break
			sleep 1
		done
		echo "FOLDUP-HTTP $peer: $b" >/dev/console
	fi
	[ -n "$txt" ] && echo "FOLDUP-TXT $(nslookup -type=txt "$txt" 2>/dev/null | sed -n 's/.*text = //p')" >/dev/console
) &
while true; do setsid -c sh </dev/console >/dev/console 2>&1; done
SCRIPT
chmod +x "$root/init"

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) >"$dir/initrd.img.tmp"
if [ "$arch" = amd64 ]; then
	# The agent's initramfs: a second archive after the first (the kernel
	# unpacks both), with qemu-ga and what it links, from the host (the
	# same Debian release and architecture).
	deb_unpack qemu-guest-agent "$work/qga"
	agent="$work/agent"
	mkdir -p "$agent/usr/sbin"
	cp "$work/qga/usr/sbin/qemu-ga" "$agent/usr/sbin/"
	if ldd "$agent/usr/sbin/qemu-ga" | grep -q 'not found'; then
		echo "images.sh: qemu-ga links libraries this host lacks:" >&2
		ldd "$agent/usr/sbin/qemu-ga" | grep 'not found' >&2
		exit 1
	fi
	for l in $(ldd "$agent/usr/sbin/qemu-ga" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
		mkdir -p "$agent$(dirname "$l")"
		cp -L "$l" "$agent$l"
	done
	(cd "$agent" && find . | cpio -o -H newc --quiet | gzip -9) | cat "$dir/initrd.img.tmp" - >"$dir/initrd-agent.img.tmp"
	mv "$dir/initrd-agent.img.tmp" "$dir/initrd-agent.img"
	# The netem guest: what tc's netem, ifb redirects and veths need,
	# for tests of foldup's qdiscs on a kernel that has them.
	nt="$work/netem"
	copy_modules "$work/k" "$kver" "$nt/lib/modules/netem" veth ifb sch_netem sch_ingress cls_u32 act_mirred
	cat >"$nt/netem-init" <<'SCRIPT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/netem/order); do
	[ -f /lib/modules/netem/$m.ko ] && insmod /lib/modules/netem/$m.ko
done
ip link set lo up
/nettest -test.run "$(sed -n 's/.*foldup\.run=\([^ ]*\).*/\1/p' /proc/cmdline)" -test.v >/dev/console 2>&1
echo "FOLDUP-NETTEST-EXIT $?" >/dev/console
poweroff -f
SCRIPT
	chmod +x "$nt/netem-init"
	(cd "$nt" && find . | cpio -o -H newc --quiet | gzip -9) | cat "$dir/initrd.img.tmp" - >"$dir/initrd-netem.img.tmp"
	mv "$dir/initrd-netem.img.tmp" "$dir/initrd-netem.img"
fi
mv "$dir/vmlinuz.tmp" "$dir/vmlinuz"
mv "$dir/initrd.img.tmp" "$dir/initrd.img"
echo "$key" >"$dir/.key"
echo "images.sh: kernel $kver ($arch) and initramfs in $dir"
