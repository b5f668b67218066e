#!/bin/sh
# udhcpc's event script: configure eth0 from the lease, write
# /etc/resolv.conf, print the lease on the console. udhcpc runs it with
# its own output closed once it is in the background, so it writes to
# /dev/console itself.
case "$1" in
deconfig)
	ip -4 addr flush dev "$interface" # IPv4 only: keep IPv6 (link-local, SLAAC)
	ip link set "$interface" up
	;;
bound | renew)
	[ -n "${mtu:-}" ] && ip link set dev "$interface" mtu "$mtu"
	[ "$1" = bound ] && ip -4 addr flush dev "$interface"
	ip addr replace "$ip/${mask:-24}" dev "$interface"
	# Isolated networks have no router; others may.
	[ -n "${router:-}" ] && ip route replace default via "${router%% *}" dev "$interface"
	search=${search:-${domain:-}}
	{
		[ -n "$search" ] && echo "search $search"
		for d in ${dns:-}; do echo "nameserver $d"; done
	} >/etc/resolv.conf.new
	mv /etc/resolv.conf.new /etc/resolv.conf
	[ -n "${hostname:-}" ] && hostname "$hostname"
	echo "FOLDUP-LEASE event=$1 ip=$ip/${mask:-} router=${router:-none} dns=${dns:-} search=$search hostname=${hostname:-} lease=${lease:-}s" >/dev/console
	;;
leasefail | nak)
	echo "FOLDUP-LEASE event=$1 ${message:-}" >/dev/console
	;;
esac
