#!/bin/sh
# cloudimage.sh DIR: build a small Debian 12 cloud-init test VM into
# DIR/debian, offline from Debian packages (mmdebstrap), and keep it there
# (a second run with the same inputs does nothing):
#
#   DIR/debian/disk.qcow2   root filesystem: ext4 on the whole disk (no
#                           partition table, label "root"); systemd,
#                           cloud-init (NoCloud only), openssh-server, sudo,
#                           ifupdown + isc-dhcp-client
#   DIR/debian/vmlinuz      Debian's cloud kernel (LZ4 bzImage)
#   DIR/debian/initrd.img   initramfs-tools, virtio-blk + virtio-pci only
#
# Boot it by direct kernel boot, the disk as virtio-blk:
#
#   qemu-system-x86_64 ... -kernel vmlinuz -initrd initrd.img \
#     -append 'root=/dev/vda rw console=ttyS0 quiet' \
#     -drive if=none,id=disk0,file=overlay.qcow2 -device virtio-blk-pci,drive=disk0 \
#     -drive if=none,id=seed,file=seed.iso,format=raw,readonly=on -device virtio-blk-pci,drive=seed
#
# The seed is a NoCloud one: a filesystem labelled cidata (iso9660 or vfat)
# holding meta-data and user-data. The kernel has no AHCI driver, so on q35
# attach the seed as virtio-blk (above) or as a scsi-cd on virtio-scsi, not
# as an ide-cd (not found there).
#
# cloud-init looks at NoCloud only (datasource_list [NoCloud, None]), so it
# never probes metadata servers; without a seed it still runs, with the None
# datasource. Its fallback network config (ifupdown, dhclient) takes a DHCP
# lease on the first NIC (named enp0s3 and so on; net.ifnames=0 gives eth0);
# a NIC without a DHCP server holds boot up for dhclient's 60 s.
# ssh_authorized_keys land in the default user's (debian) and root's
# authorized_keys (disable_root is off). root has no password: log in on the
# serial console (ttyS0) as root.
#
# The cache key is the Debian release, the package list, this script and
# debian.sh.
set -eu
dir=${1:?usage: cloudimage.sh DIR}
mkdir -p "$dir/debian"
dir=$(cd "$dir/debian" && pwd)

release=bookworm
pkgs="linux-image-cloud-amd64 initramfs-tools systemd systemd-sysv udev cloud-init openssh-server sudo ifupdown isc-dhcp-client iproute2"
size=2G

lib="$(dirname "$0")/debian.sh"
# shellcheck source=debian.sh
. "$lib"
key=$(printf '%s\n%s\n' "$release" "$pkgs" | cat - "$0" "$lib" | sha256sum | cut -c1-16)
if [ -f "$dir/.key" ] && [ "$(cat "$dir/.key")" = "$key" ] &&
	[ -f "$dir/disk.qcow2" ] && [ -f "$dir/vmlinuz" ] && [ -f "$dir/initrd.img" ]; then
	exit 0
fi
[ "$(id -u)" = 0 ] || {
	echo "cloudimage.sh: needs root (mmdebstrap --mode=root, file owners in mkfs.ext4 -d)" >&2
	exit 1
}

export DEBIAN_FRONTEND=noninteractive
need() { command -v "$1" >/dev/null 2>&1; }
if ! need mmdebstrap || ! need mkfs.ext4 || ! need qemu-img; then
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends mmdebstrap e2fsprogs qemu-utils >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf --one-file-system "$work"' EXIT
root="$work/root"

# The initramfs: only what mounts an ext4 root on virtio-blk (ext4 is built
# into the cloud kernel). Written before the kernel is installed, so the
# initramfs is generated once.
hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"
echo MODULES=list >"$1/etc/initramfs-tools/conf.d/foldup"
printf "virtio_pci\nvirtio_blk\n" >"$1/usr/share/initramfs-tools/modules.d/foldup"'
rootfs "$release" "$root" "$pkgs" "$hook"

# cloud-init: NoCloud only (no network probes for metadata), no locale
# regeneration, one quick host key type, keys also for root, no grub.
cat >"$root/etc/cloud/cloud.cfg.d/90_foldup.cfg" <<'EOF'
datasource_list: [NoCloud, None]
disable_root: false
locale: C.UTF-8
ssh_genkeytypes: [ed25519]
grub_dpkg: {enabled: false}
EOF
echo LANG=C.UTF-8 >"$root/etc/default/locale"
echo 'LABEL=root / ext4 rw,errors=remount-ro 0 0' >"$root/etc/fstab"
echo debian >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
rm -f "$root/etc/resolv.conf"
# Each instance makes its own machine-id; an empty file is not a first boot
# (no preset-all).
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# root logs in on the console without a password (sshd refuses empty ones).
sed -i 's/^root:[^:]*:/root::/' "$root/etc/shadow"
# Nothing periodic or needless at boot under TCG: timers, gettys on VTs
# (the serial getty stays), binfmt, modules for EFI and device-mapper.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
	man-db.timer getty-static.service getty@tty1.service systemd-binfmt.service \
	modprobe@dm_mod.service modprobe@efi_pstore.service; do
	ln -sf /dev/null "$root/etc/systemd/system/$u"
done
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/*.log "$root"/tmp/*

cp "$root"/boot/vmlinuz-* "$dir/vmlinuz.tmp"
cp "$root"/boot/initrd.img-* "$dir/initrd.img.tmp"
mkfs.ext4 -q -F -L root -d "$root" "$work/disk.raw" "$size"
# Compressed: about a third of the size; no measurable boot cost under TCG.
qemu-img convert -c -f raw -O qcow2 "$work/disk.raw" "$dir/disk.qcow2.tmp"
mv "$dir/vmlinuz.tmp" "$dir/vmlinuz"
mv "$dir/initrd.img.tmp" "$dir/initrd.img"
mv "$dir/disk.qcow2.tmp" "$dir/disk.qcow2"
echo "$key" >"$dir/.key"
echo "cloudimage.sh: $(basename "$root"/boot/vmlinuz-*), disk.qcow2 and initrd.img in $dir"
