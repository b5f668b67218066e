#!/bin/sh
# scripts/test-images.sh: builds, offline from Debian packages, the guest
# the VM tests and bench/vm.sh boot, into a cache directory (default
# /var/cache/foldup-test, or $FOLDUP_TEST_IMAGES), once:
#
#   vmlinuz            Debian's kernel (linux-image-amd64, downloaded with
#                      apt-get download and unpacked: nothing is installed)
#   initramfs.cpio.gz  busybox-static, the virtio modules, and an /init that
#                      takes a DHCP lease (printing "FOLDUP-LEASE ip=..."
#                      on the console), serves "hello from <hostname>" on
#                      port 80 and prints "FOLDUP-READY". Kernel command
#                      line "foldup.peer=NAME" makes it also look NAME up,
#                      fetch http://NAME/ and print FOLDUP-DNS/FOLDUP-HTTP.
#
# Needs root (apt-get), busybox-static, cpio, gzip.
set -eu
OUT=${FOLDUP_TEST_IMAGES:-/var/cache/foldup-test}
[ -f "$OUT/initramfs.cpio.gz" ] && [ -f "$OUT/vmlinuz" ] && [ "${1:-}" != -f ] && { echo "$OUT"; exit 0; }
for c in cpio gzip; do command -v $c >/dev/null || apt-get install -y -q $c >/dev/null; done
[ -x /bin/busybox ] || apt-get install -y -q busybox-static >/dev/null

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
apt-get download -q linux-image-amd64 >/dev/null 2>&1
KPKG=$(dpkg-deb -f linux-image-amd64_*.deb Depends | sed 's/ .*//; s/,.*//')
apt-get download -q "$KPKG" >/dev/null 2>&1
dpkg-deb -x "$KPKG"_*.deb k
KVER=$(ls k/lib/modules)
mkdir -p "$OUT"

R=$W/root
mkdir -p $R/bin $R/dev $R/proc $R/sys $R/etc $R/www $R/modules $R/tmp $R/run
cp /bin/busybox $R/bin/
ln -s busybox $R/bin/sh
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net virtio_blk; do
	f=$(find k/lib/modules -name "$m.ko*" | head -1)
	case "$f" in
	*.xz) xz -dc "$f" > $R/modules/$m.ko ;;
	*) cp "$f" $R/modules/$m.ko ;;
	esac
	echo $m >> $R/modules/order
done
cat > $R/etc/udhcpc.sh <<'EOS'
#!/bin/sh
case "$1" in
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/$mask" dev "$interface"
	[ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
	: > /etc/resolv.conf
	[ -n "$domain" ] && echo "search $domain" >> /etc/resolv.conf
	for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
	[ -n "$hostname" ] && hostname "$hostname"
	echo "FOLDUP-LEASE ip=$ip mask=$mask router=$router dns=$dns hostname=$hostname domain=$domain mtu=$mtu lease=$lease" > /dev/console
	;;
esac
EOS
cat > $R/init <<'EOS'
#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "FOLDUP-INIT" > /dev/console
for m in $(cat /modules/order); do insmod /modules/$m.ko 2>/dev/null; done
ip link set lo up
for i in $(seq 100); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
ip link set eth0 up
udhcpc -i eth0 -s /etc/udhcpc.sh -t 60 -T 1 -A 1 -b -q -x hostname:$(cat /proc/sys/kernel/hostname) >/dev/null 2>&1
echo "hello from $(hostname)" > /www/index.html
httpd -p 80 -h /www
echo "FOLDUP-READY" > /dev/console
peer=$(sed -n 's/.*foldup\.peer=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$peer" ]; then
	for i in $(seq 30); do
		a=$(nslookup "$peer" 2>/dev/null | sed -n '/^Name:/,$s/^Address[^:]*: *//p' | head -1)
		[ -n "$a" ] && break
		sleep 1
	done
	echo "FOLDUP-DNS $peer=$a" > /dev/console
	for i in $(seq 30); do
		b=$(timeout 3 wget -q -O - "http://$peer/" 2>/dev/null) && break
		sleep 1
	done
	echo "FOLDUP-HTTP $peer: $b" > /dev/console
fi
while true; do
	txt=$(sed -n 's/.*foldup\.txt=\([^ ]*\).*/\1/p' /proc/cmdline)
	[ -n "$txt" ] && echo "FOLDUP-TXT $(nslookup -type=txt "$txt" 2>/dev/null | sed -n 's/.*text = //p')" > /dev/console
	sleep 3600
done
EOS
chmod +x $R/init $R/etc/udhcpc.sh
(cd $R && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT/initramfs.cpio.gz.tmp"
cp k/boot/vmlinuz-$KVER "$OUT/vmlinuz.tmp"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
mv "$OUT/initramfs.cpio.gz.tmp" "$OUT/initramfs.cpio.gz"
echo "$KVER" > "$OUT/version"
echo "$OUT"
