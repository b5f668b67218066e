#!/bin/sh
# check-images.sh DIR: check the example's images (built by
# scripts/example-images.sh DIR) without foldup, as root, inside a network
# namespace of their own: a private dockerd runs the database image on a
# bridge, dnsmasq stands in for foldup's DNS/DHCP server (the TXT record,
# db's name, DHCP, router advertisements), and qemu boots the web VM on a
# tap on the same bridge. It prints each step with its time, checks the
# page, the TXT record switch, IPv6 and a clean power-off, and removes
# everything it made, whatever happens. Needs dockerd, dnsmasq,
# qemu-system-x86_64, curl and busybox; a Docker client (docker, or $DOCKER).
#
# This is not how the example runs (that is foldup up, see README.md): it
# shows the images do their part on their own.
set -eu
dir=$(cd "${1:?usage: check-images.sh DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
docker=${DOCKER:-docker}
[ "$(id -u)" = 0 ] || { echo "check-images.sh: needs root" >&2; exit 1; }
for c in dockerd dnsmasq qemu-system-x86_64 curl busybox xz "$docker"; do
	command -v "$c" >/dev/null || { echo "check-images.sh: needs $c" >&2; exit 1; }
done

# shellcheck source=../../scripts/engine.sh
. "$here/../../scripts/engine.sh"

ns=fxc$$
tmp=$(mktemp -d /tmp/fxc.XXXXXX) # short: socket paths are limited to 108 bytes
mac=52:54:00:12:34:56
failed=0

ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
step() { echo "== $*"; }
ok() { echo "ok   $*"; }
bad() {
	echo "FAIL $*"
	failed=$((failed + 1))
}
in_ns() { ip netns exec "$ns" "$@"; }
qmp() { # qmp COMMAND: one QMP command over the monitor's TCP port inside the namespace
	printf '{"execute":"qmp_capabilities"}\n{"execute":"%s"}\n' "$1" |
		in_ns busybox timeout 5 busybox nc 127.0.0.1 4444 >/dev/null 2>&1 || true
}

cleanup() {
	set +e
	if [ -f "$tmp/qemu.pid" ]; then
		qmp quit
		sleep 0.5
		[ -f "$tmp/qemu.pid" ] && kill "$(cat "$tmp/qemu.pid")" 2>/dev/null
	fi
	[ -f "$tmp/dnsmasq.pid" ] && kill "$(cat "$tmp/dnsmasq.pid")" 2>/dev/null
	engine_stop "$tmp"
	ip netns del "$ns" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "namespace $ns: bridge br0 10.80.1.1/24 fd00:80:1::1/64, tap0"
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add br0 type bridge
ip -n "$ns" addr add 10.80.1.1/24 dev br0
ip -n "$ns" addr add fd00:80:1::1/64 dev br0 nodad
ip -n "$ns" link set br0 up
ip -n "$ns" tuntap add dev tap0 mode tap
ip -n "$ns" link set tap0 master br0
ip -n "$ns" link set tap0 up

step "dockerd"
t=$(date +%s%N)
engine_start "$ns" "$tmp" || exit 1
ok "dockerd answers after $(ms "$t") ms"

step "import and run the database"
t=$(date +%s%N)
DOCKER=$docker "$here/../../scripts/example-images.sh" --import "$dir"
ok "import $(ms "$t") ms, $("$docker" image inspect -f '{{.Size}}' foldup-example/postgres:15 | awk '{printf "%d MB", $1/1e6}')"
# Docker adopts the existing bridge (and leaves it alone on network rm).
"$docker" network create -d bridge -o com.docker.network.bridge.name=br0 \
	--subnet 10.80.1.0/24 --ip-range 10.80.1.128/25 --gateway 10.80.1.1 \
	--ipv6 --subnet fd00:80:1::/64 --gateway fd00:80:1::1 lan >/dev/null
t=$(date +%s%N)
"$docker" run -d --name db --network lan --ip 10.80.1.5 --ip6 fd00:80:1::5 --stop-signal SIGINT \
	-e POSTGRES_PASSWORD=example -e POSTGRES_DB=app \
	-v "$here/seed.sql:/docker-entrypoint-initdb.d/seed.sql:ro" \
	--health-cmd 'pg_isready -U postgres -d app' --health-interval 1s --health-start-period 60s \
	foldup-example/postgres:15 >/dev/null
health=
for i in $(seq 600); do
	health=$("$docker" inspect -f '{{.State.Health.Status}}' db)
	[ "$health" = healthy ] && break
	sleep 0.1
done
if [ "$health" = healthy ]; then ok "db healthy (pg_isready) after $(ms "$t") ms"; else bad "db: $health"; fi
n=$("$docker" exec db psql -d app -Atc 'select count(*) from users')
[ "$n" = 4 ] && ok "psql in db: users has 4 rows" || bad "psql in db: users: $n"
out=$("$docker" exec -e PGPASSWORD=web-example db psql -h 10.80.1.5 -U web -d app -Atc 'select * from api_keys' 2>&1 || true)
case "$out" in *"permission denied"*) ok "web over the network: api_keys is not its to read" ;; *) bad "web read api_keys: $out" ;; esac

dns() { # dns TXT: (re)start dnsmasq, the stand-in for foldup's server
	[ -f "$tmp/dnsmasq.pid" ] && kill "$(cat "$tmp/dnsmasq.pid")" && sleep 0.3
	in_ns dnsmasq --conf-file=/dev/null --pid-file="$tmp/dnsmasq.pid" --log-facility="$tmp/dnsmasq.log" \
		--interface=br0 --bind-interfaces --except-interface=lo --no-resolv --no-hosts \
		--dhcp-leasefile="$tmp/leases" --domain=webapp.foldup.internal \
		--dhcp-range=10.80.1.10,static,255.255.255.0,1h --dhcp-host="$mac,10.80.1.10,web" \
		--dhcp-option=option:router --dhcp-option=option:domain-search,webapp.foldup.internal \
		--enable-ra --dhcp-range=fd00:80:1::,ra-only,64 \
		--txt-record="table.webapp.foldup.internal,$1" \
		--host-record=db,db.webapp.foldup.internal,10.80.1.5,fd00:80:1::5
}
step "dnsmasq: DHCP, RAs, TXT table=users, db A/AAAA"
dns users

step "boot the web VM"
# foldup boots the PVH vmlinux inside Debian's bzImage (it skips seconds
# of decompression under TCG); do the same.
k=$dir/web/vmlinuz
off=$(LC_ALL=C grep -obUaP '\xFD\x37\x7A\x58\x5A\x00' "$k" | head -n1 | cut -d: -f1)
tail -c +$((off + 1)) "$k" | xz -dcq --single-stream >"$tmp/vmlinux" 2>/dev/null || true
# TCG unless ACCEL says otherwise (ACCEL=kvm): a /dev/kvm that opens may
# still run no ordinary guest (a nested PVM aborts qemu with -cpu max), and
# this script checks the images, not the host. foldup itself probes.
accel=${ACCEL:-tcg,thread=multi}
t=$(date +%s%N)
in_ns qemu-system-x86_64 -name web -machine q35 -accel "$accel" -cpu max -smp 1 -m 256 \
	-nodefaults -no-user-config -display none -vga none \
	-kernel "$tmp/vmlinux" -initrd "$dir/web/initrd.img" \
	-append "console=ttyS0 quiet webapp.PGUSER=web webapp.PGPASSWORD=web-example webapp.PGDATABASE=app" \
	-netdev tap,id=net0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=net0,mac=$mac \
	-serial "file:$tmp/console.log" -qmp tcp:127.0.0.1:4444,server=on,wait=off \
	-pidfile "$tmp/qemu.pid" -daemonize
get() { in_ns curl -s -o "$tmp/body" -w '%{http_code}' --connect-timeout 0.3 --max-time 5 "$@" || true; }
serving=
for i in $(seq 600); do
	if [ "$(get http://10.80.1.10/nope)" = 404 ]; then
		serving=$(ms "$t")
		break
	fi
	sleep 0.1
done
[ -n "$serving" ] && ok "web serves HTTP $serving ms after qemu started ($accel)" || bad "web does not serve"
for i in $(seq 300); do
	[ "$(get http://10.80.1.10/healthz)" = 200 ] && break
	sleep 0.1
done
[ "$(cat "$tmp/body")" = ok ] && ok "/healthz ok $(ms "$t") ms after qemu started" || bad "/healthz: $(cat "$tmp/body")"

step "the page"
code=$(get http://10.80.1.10/)
grep -q 'Ada Lovelace' "$tmp/body" && [ "$code" = 200 ] && ok "GET / shows users" || bad "GET /: $code $(cat "$tmp/body")"
sed 's/^/     /' "$tmp/body"
code=$(get -H 'Accept: text/html' http://10.80.1.10/)
grep -q '<td>Grace Hopper</td>' "$tmp/body" && ok "GET / as HTML" || bad "GET / as HTML: $code"
dns products
code=$(get http://10.80.1.10/)
grep -q 'Keyboard' "$tmp/body" && ok "TXT table=products: GET / shows products, no restart" || bad "after TXT products: $code $(cat "$tmp/body")"
dns api_keys
code=$(get http://10.80.1.10/)
[ "$code" = 503 ] && grep -q 'permission denied' "$tmp/body" && ok "TXT table=api_keys: 503, $(cat "$tmp/body")" || bad "after TXT api_keys: $code $(cat "$tmp/body")"
dns users

step "IPv6"
for i in $(seq 300); do
	v6=$(sed -n 's/^FOLDUP-IPV6 eth0 \([0-9a-f:]*\)\/64.*/\1/p' "$tmp/console.log" | head -n1)
	[ -n "$v6" ] && break
	sleep 0.1
done
if [ -n "$v6" ] && [ "$(get "http://[$v6]/healthz")" = 200 ]; then ok "web at $v6 (SLAAC) answers"; else bad "no IPv6 answer (${v6:-no address})"; fi

step "power button"
t=$(date +%s%N)
qmp system_powerdown
for i in $(seq 200); do
	[ -f "$tmp/qemu.pid" ] || break
	sleep 0.1
done
if [ -f "$tmp/qemu.pid" ]; then bad "qemu still running 20 s after the power button"; else ok "powered off $(ms "$t") ms after the power button"; fi

step "console"
sed 's/^/     /' "$tmp/console.log"
echo
[ "$failed" = 0 ] && echo "check-images.sh: all passed" || echo "check-images.sh: $failed failed"
[ "$failed" = 0 ]
