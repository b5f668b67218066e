#!/bin/sh
# rc.sh: the web VM's start-up, run once by init before anything else.
# Prints FOLDUP-... lines on the console as it goes.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /run /tmp /var/log
ip link set lo up

# Debian builds virtio, the ACPI button and evdev as modules; IPv6 is
# built in (CONFIG_IPV6=y), so it needs no module.
for m in $(cat /lib/modules/order); do
	insmod "/lib/modules/$m.ko" 2>/dev/null
done
# The power button (qemu's system_powerdown) becomes a clean poweroff.
acpid -c /etc/acpi -l /run/acpid.log

for i in $(seq 100); do
	[ -e /sys/class/net/eth0 ] && break
	sleep 0.1
done
# IPv6: the kernel takes an address from the router advertisement (SLAAC).
# Optimistic DAD lets the app use it at once, instead of connecting from
# the link-local address while duplicate address detection runs.
sysctl -qw net.ipv6.conf.eth0.accept_ra=1 net.ipv6.conf.eth0.autoconf=1 \
	net.ipv6.conf.eth0.optimistic_dad=1 net.ipv6.conf.eth0.use_optimistic=1
ip link set eth0 up

# IPv4: udhcpc writes the address, /etc/resolv.conf (search domain and
# name server) and the hostname (udhcpc.sh), then stays in the background
# to renew the lease. Wait here for the first lease up to 5 s; without one
# it goes on trying in the background while the app starts.
udhcpc -i eth0 -s /etc/udhcpc.sh -O search -O mtu -T 1 -A 1 -t 5 -b -p /run/udhcpc.pid >/dev/null 2>&1

(
	for i in $(seq 30); do
		a=$(ip -6 -o addr show dev eth0 scope global | awk '{print $4}' | tr '\n' ' ')
		if [ -n "$a" ]; then
			echo "FOLDUP-IPV6 eth0 ${a}uptime=$(cut -d' ' -f1 /proc/uptime)s"
			exit
		fi
		sleep 1
	done
	echo "FOLDUP-IPV6 eth0 no global address after 30 s (no router advertisement?)"
) &
echo "FOLDUP-UP uptime=$(cut -d' ' -f1 /proc/uptime)s"
