#!/bin/sh
# dnsd.sh: foldup's DNS and DHCPv4 server (foldup dnsd) against dnsmasq, in
# the same run, alternating the two servers ROUNDS times (default 3) and
# printing each round's figures, the medians and foldup's ratio.
#
#   bench/dnsd.sh dns    dnsperf on loopback, 200 names, 15 s a run, and
#                        the ceiling: dnsperf against bench/dnsnoop
#   bench/dnsd.sh dhcp   perfdhcp DORA across a veth: max rate without drops
#   bench/dnsd.sh rss    VmRSS with 1,000 members and 10,000 records
#   bench/dnsd.sh all    the three
#
# The server runs on CPU SRV_CPU (0), the load generator on GEN_CPU (1).
# Everything runs inside network namespaces made here (fu-b-PID-*); nothing
# leaves them, and dnsmasq has no upstream servers (--no-resolv --no-hosts).
# FOLDUP=path uses that binary instead of building ./cmd/foldup. Needs root.
#
# dns: both servers answer the same names from the same plan (dnsmasq from
# an --addn-hosts file, --local for the domain). Each round runs dnsperf
# against each server saturated (-c 4 -q 100, 15 s), then at a fixed
# LAT_QPS (40,000/s, below both maxima, 10 s) to compare latency at equal
# load. At saturation dnsperf, alone on the other CPU, must be the cheaper
# side, so it runs without -v there: dnsperf 2.10 has no latency histogram,
# the percentiles come from -v's line per answer with its latency, and
# writing those lines costs it up to a third of its rate. The saturating
# runs give dnsperf's own average and maximum; the percentiles come from
# the fixed-rate runs. The ratio is given as the ratio of the medians and
# as the median of the rounds' own ratios (each server's run in a round
# is back to back with the other's). Each round also runs dnsperf, the
# same way, against bench/dnsnoop, which answers nothing (it sends each
# query back as an empty response): no server can be faster, so its rate
# is the most dnsperf drives on its CPU, the ceiling of any ratio.
#
# rss: VmRSS after startup, and after 55,000 queries over every name, with
# its anonymous part (RssAnon): the rest is the binary's and libraries'
# pages mapped from the page cache, which grows with foldup's binary (it
# links the Docker client, compose-go and qemu's driver too) and is shared
# with every other foldup process.
#
# dhcp: perfdhcp always acts as a relay (giaddr = its address, hops 1,
# port 67), which foldup does not serve. An nftables rule in the client
# namespace clears giaddr and hops on the way out, and perfdhcp binds port
# 68 (-L 68), so both servers see a directly attached client; replies (foldup
# broadcasts them, dnsmasq unicasts them to the offered address and the
# client's MAC) are handed to perfdhcp's socket by a netdev ingress rule.
# perfdhcp runs single-threaded (-g single: on one CPU its two threads lose
# answers) with 1,000 random MACs (-M). Both servers keep a lease file on the
# same disk (the work directory, under /tmp); DNSMASQ_LEASES=ro runs dnsmasq
# with --leasefile-ro instead (foldup keeps its file).
set -eu
cd "$(dirname "$0")/.."
export LC_ALL=C
ROUNDS=${ROUNDS:-3}
SRV_CPU=${SRV_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
DNS_SECONDS=${DNS_SECONDS:-15}   # each saturating dnsperf run
DNS_CLIENTS=${DNS_CLIENTS:-4}    # dnsperf -c
DNS_OUTSTANDING=${DNS_OUTSTANDING:-100} # dnsperf -q
LAT_QPS=${LAT_QPS:-40000}        # the fixed-rate latency runs (-Q), below both servers' maxima
LAT_SECONDS=${LAT_SECONDS:-10}
DHCP_SECONDS=${DHCP_SECONDS:-4}  # each perfdhcp step
DHCP_CLIENTS=${DHCP_CLIENTS:-1000} # distinct MACs (perfdhcp -M)
DHCP_LO=${DHCP_LO:-200}          # the search for the max rate without drops: DHCP_HI
DHCP_HI=${DHCP_HI:-24000}        # first, then DHCP_STEPS steps of log-bisection between
DHCP_STEPS=${DHCP_STEPS:-7}      # them (7: ±4 %). perfdhcp on one CPU sends ~18,000/s at most.
DNSMASQ_LEASES=${DNSMASQ_LEASES:-file}

what=${1:-all}
case "$what" in dns|dhcp|rss|all) ;; *) echo "usage: $0 [dns|dhcp|rss|all]" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "dnsd.sh: needs root (network namespaces)" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
for c in dnsperf:dnsperf perfdhcp:kea-admin dnsmasq:dnsmasq-base ip:iproute2 nft:nftables jq:jq dig:dnsutils taskset:util-linux; do
	command -v "${c%%:*}" >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -qq --no-install-recommends "${c#*:}"; }
done

W=$(mktemp -d /tmp/foldup-dnsd-bench.XXXXXX)
chmod 755 "$W" # dnsmasq reads its files after dropping to nobody
PIDS=""
NETNS=""
cleanup() {
	set +e
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	for n in $NETNS; do ip netns del "$n" 2>/dev/null; done
	ip link del "fub$$s" 2>/dev/null
	[ -n "${KEEP_WORKDIR:-}" ] && echo "work dir kept: $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start CMD...: run CMD in the background and remember it for cleanup.
start() {
	"$@" &
	PID=$!
	PIDS="$PIDS $PID"
}
# stop PID: end it and forget it.
stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ')
}
netns() {
	ip netns add "$1"
	NETNS="$NETNS $1"
	ip -n "$1" link set lo up
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}
# wait_udp NS PORT: until something listens on udp PORT in NS (at most 10 s).
wait_udp() {
	i=0
	until [ -n "$(ip netns exec "$1" ss -Hlun "sport = :$2")" ]; do
		i=$((i + 1))
		[ $i -le 200 ] || { echo "dnsd.sh: nothing listens on udp port $2 in $1" >&2; exit 1; }
		sleep 0.05
	done
}
# ticks PID: CPU time (user+system) the process has used, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'; }
# paired "A1 A2 ..." "B1 B2 ...": the median of A_i/B_i.
paired() { median $(awk -v a="$1" -v b="$2" 'BEGIN {n = split(a, x, " "); split(b, y, " "); for (i = 1; i <= n; i++) printf "%.3f ", x[i] / y[i]}'); }

if [ -n "${FOLDUP:-}" ]; then
	F=$FOLDUP
else
	GO=$(scripts/go.sh)
	F=$W/foldup
	"$GO" build -o "$F" ./cmd/foldup
fi
echo "foldup: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git status --porcelain -- dnsd cmd go.mod 2>/dev/null | grep -q . && echo ' (+ uncommitted changes in dnsd/ cmd/ go.mod)'); $(dnsmasq --version | head -1); dnsperf $(dnsperf -h 2>&1 | sed -n 's/^Version //p'); perfdhcp $(perfdhcp -v 2>&1 | sed -n 's/^VERSION: //p')"
echo "server on CPU $SRV_CPU, load generator on CPU $GEN_CPU (of $(nproc)); $ROUNDS rounds, alternating which server goes first"

# project DIR SERVICES RECORDS: a foldup.yaml with SERVICES containers with
# automatic addresses on one /16 and RECORDS project-wide records (every
# other one TXT when RECORDS > 100, else all A), and its plan.
project() {
	mkdir -p "$1"
	awk -v s="$2" -v r="$3" 'BEGIN {
		print "name: bench"
		print "networks:\n  lan:\n    ipam: {config: [{subnet: 10.80.0.0/16}]}"
		print "services:"
		for (i = 1; i <= s; i++) printf "  svc%d: {image: \"x:1\", networks: {lan: {ipv4_address: \"\"}}}\n", i
		if (r > 0) print "dns:"
		for (i = 1; i <= r; i++)
			if (r > 100 && i % 2 == 0) printf "  - {name: rec%d, txt: \"record %d\"}\n", i, i
			else printf "  - {name: rec%d, a: 10.81.%d.%d}\n", i, int(i / 256), i % 256
	}' >"$1/foldup.yaml"
	(cd "$1" && "$F" plan --format json >plan.json)
}
# dnsmasq_files DIR: hosts (A) and txt.conf (TXT) with the plan's names, and
# queries (every name once, with its type) for dnsperf.
dnsmasq_files() {
	jq -r '.domain as $d | (.members[] | .name as $n | .nics[] | select(.ipv4) | .ipv4 + " " + $n + "." + $d),
		((.records // [])[] | select(.a) | .a + " " + .name + "." + $d)' "$1/plan.json" >"$1/hosts"
	jq -r '.domain as $d | (.records // [])[] | select(.txt) | "txt-record=" + .name + "." + $d + ",\"" + (.txt | join("\",\"")) + "\""' \
		"$1/plan.json" >"$1/txt.conf"
	jq -r '.domain as $d | (.members[] | .name + "." + $d + " A"),
		((.records // [])[] | .name + "." + $d + " " + (if .txt then "TXT" else "A" end))' "$1/plan.json" >"$1/queries"
}
# dns_start SERVER DIR NS PORT: serve DIR's plan on 127.0.0.1:PORT in NS.
dns_start() {
	case $1 in
	foldup)
		start ip netns exec "$3" taskset -c "$SRV_CPU" "$F" dnsd --plan "$2/plan.json" \
			--listen "127.0.0.1:$4" --no-dhcp 2>>"$W/foldup.log" ;;
	dnsmasq)
		start ip netns exec "$3" taskset -c "$SRV_CPU" dnsmasq -k -C "$2/txt.conf" --no-resolv --no-hosts --no-poll \
			--bind-interfaces --listen-address=127.0.0.1 --port="$4" --addn-hosts="$2/hosts" \
			--local="/$(jq -r .domain "$2/plan.json")/" --local-ttl=10 --log-facility=- 2>>"$W/dnsmasq.log" ;;
	esac
	wait_udp "$3" "$4"
}
# same_answers NS PORT1 PORT2 NAME...: both servers give the same answers.
same_answers() {
	_ns=$1 _p1=$2 _p2=$3
	shift 3
	for _n in "$@"; do
		_a=$(ip netns exec "$_ns" dig +short +norec +time=2 +tries=2 -p "$_p1" @127.0.0.1 $_n)
		_b=$(ip netns exec "$_ns" dig +short +norec +time=2 +tries=2 -p "$_p2" @127.0.0.1 $_n)
		if [ -z "$_a" ] || [ "$_a" != "$_b" ]; then
			echo "dnsd.sh: $_n: foldup answers '$_a', dnsmasq '$_b'" >&2
			exit 1
		fi
	done
}

# ---- dns ------------------------------------------------------------------

# dnsperf_run NS PORT PID OUT lat|nolat ARGS...: one dnsperf run; prints "qps
# lost completed avg_ms p50_ms p99_ms p999_ms max_ms server_cpu% rcodes".
# With lat dnsperf writes (-v) a line per answer with its latency into
# OUT.v, for the percentiles; with nolat it does not, and they are "-".
dnsperf_run() {
	ns=$1 port=$2 pid=$3 out=$4 verbose=$5
	shift 5
	t0=$(ticks "$pid")
	s0=$(date +%s.%N)
	if [ "$verbose" = lat ]; then
		ip netns exec "$ns" taskset -c "$GEN_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$Q" -v "$@" >"$out.v" 2>"$out.err"
	else
		ip netns exec "$ns" taskset -c "$GEN_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$Q" "$@" >"$out.v" 2>"$out.err"
	fi
	s1=$(date +%s.%N)
	t1=$(ticks "$pid")
	sed -n '/^Statistics:/,$p' "$out.v" >"$out"
	pct="- - -"
	if [ "$verbose" = lat ]; then
		awk '$1 == ">" && $NF ~ /^[0-9.]+$/ {print $NF}' "$out.v" | sort -n -S 200M >"$out.lat"
		n=$(wc -l <"$out.lat")
		pct=$(awk -v n="$n" 'BEGIN {i50 = int(n * .5 + .999); i99 = int(n * .99 + .999); i999 = int(n * .999 + .999)}
			NR == i50 {p50 = $1} NR == i99 {p99 = $1} NR == i999 {p999 = $1}
			END {printf "%.3f %.3f %.3f", p50 * 1000, p99 * 1000, p999 * 1000}' "$out.lat")
		rm -f "$out.lat"
	fi
	rm -f "$out.v"
	awk -v pct="$pct" -v cpu="$(awk -v a="$t0" -v b="$t1" -v s0="$s0" -v s1="$s1" -v hz="$HZ" 'BEGIN {printf "%.0f", (b - a) / hz / (s1 - s0) * 100}')" '
		/Queries per second:/ {qps = $4}
		/Queries lost:/ {lost = $3}
		/Queries completed:/ {done = $3}
		/Average Latency/ {avg = $4 * 1000; max = $8; sub(/\)/, "", max); max *= 1000}
		/Response codes:/ {sub(/^ *Response codes: */, ""); gsub(/ /, ""); rc = $0}
		END {printf "%.0f %d %d %.3f %s %.3f %s %s\n", qps, lost, done, avg, pct, max, cpu, rc}' "$out"
}

# pair DIR MEMBERS RECORDS NS: a project of MEMBERS containers and RECORDS
# records in DIR, served by foldup on port 5300 (FPID) and dnsmasq on 5301
# (DPID) in NS.
pair() {
	project "$1" "$2" "$3"
	dnsmasq_files "$1"
	dns_start foldup "$1" "$4" 5300
	FPID=$PID
	dns_start dnsmasq "$1" "$4" 5301
	DPID=$PID
}

bench_dns() {
	echo
	echo "== dns: dnsperf -c $DNS_CLIENTS -q $DNS_OUTSTANDING for $DNS_SECONDS s, 200 names (100 members, 100 A records), UDP on loopback"
	D=$W/dns
	Q=$D/queries
	NS=fu-b-$$-d
	netns "$NS"
	pair "$D" 100 100 "$NS"
	same_answers "$NS" 5300 5301 svc1.bench.foldup.internal svc100.bench.foldup.internal rec1.bench.foldup.internal rec100.bench.foldup.internal
	# The ceiling: bench/dnsnoop sends each query back as its own empty
	# answer, the least work any server can do, so its rate is the most
	# dnsperf can drive on its CPU in this run.
	"$(scripts/go.sh)" build -o "$W/dnsnoop" ./bench/dnsnoop
	start ip netns exec "$NS" taskset -c "$SRV_CPU" "$W/dnsnoop" -listen 127.0.0.1:5302
	CPID=$PID
	wait_udp "$NS" 5302
	fq="" dq="" cq="" favg="" davg="" flost="" dlost="" fl99="" dl99=""
	printf '%-8s %-7s %8s %6s %9s %7s %7s %7s %8s %7s %5s  %s\n' round server qps lost completed "avg ms" "p50 ms" "p99 ms" "p99.9" "max ms" "cpu%" rcodes
	r=1
	while [ $r -le "$ROUNDS" ]; do
		case $((r % 3)) in
		1) order="foldup dnsmasq ceiling" ;;
		2) order="dnsmasq ceiling foldup" ;;
		0) order="ceiling foldup dnsmasq" ;;
		esac
		for s in $order; do
			case $s in
			foldup) port=5300 pid=$FPID ;;
			dnsmasq) port=5301 pid=$DPID ;;
			ceiling) port=5302 pid=$CPID ;;
			esac
			set -- $(dnsperf_run "$NS" $port $pid "$W/dnsperf-$s-$r" nolat -l "$DNS_SECONDS" -c "$DNS_CLIENTS" -q "$DNS_OUTSTANDING")
			printf '%-8s %-7s %8s %6s %9s %7s %7s %7s %8s %7s %5s  %s\n' "$r" $s "$@"
			case $s in
			foldup) fq="$fq $1" flost="$flost $2" favg="$favg $4" ;;
			dnsmasq) dq="$dq $1" dlost="$dlost $2" davg="$davg $4" ;;
			ceiling) cq="$cq $1"; continue ;;
			esac
			set -- $(dnsperf_run "$NS" $port $pid "$W/dnsperf-lat-$s-$r" lat -l "$LAT_SECONDS" -c "$DNS_CLIENTS" -q "$DNS_OUTSTANDING" -Q "$LAT_QPS")
			printf '%-8s %-7s %8s %6s %9s %7s %7s %7s %8s %7s %5s  %s\n' "$r@$LAT_QPS" $s "$@"
			if [ $s = foldup ]; then fl99="$fl99 $6"; else dl99="$dl99 $6"; fi
		done
		r=$((r + 1))
	done
	stop $FPID
	stop $DPID
	stop $CPID
	fqm=$(median $fq) dqm=$(median $dq) cqm=$(median $cq)
	echo "median at saturation: foldup $fqm qps (average $(median $favg) ms, lost $(echo $flost | tr ' ' '+'))," \
		"dnsmasq $dqm qps (average $(median $davg) ms, lost $(echo $dlost | tr ' ' '+')); foldup/dnsmasq $(ratio "$fqm" "$dqm")x"
	echo "median of the rounds' foldup/dnsmasq: $(paired "$fq" "$dq")x"
	echo "ceiling (dnsnoop, no work): $cqm qps; ceiling/dnsmasq $(ratio "$cqm" "$dqm")x (rounds' median $(paired "$cq" "$dq")x), foldup/ceiling $(ratio "$fqm" "$cqm")x"
	echo "median p99 at $LAT_QPS qps: foldup $(median $fl99) ms, dnsmasq $(median $dl99) ms"
}

# ---- dhcp -----------------------------------------------------------------

# udp NS FIELD: a counter of /proc/net/snmp's Udp line in NS.
udp() {
	ip netns exec "$1" awk -v f="$2" '$1 == "Udp:" {if (!h) {for (i = 2; i <= NF; i++) n[i] = $i; h = 1} else for (i = 2; i <= NF; i++) if (n[i] == f) print $i}' /proc/net/snmp
}
# perfdhcp_run RATE: fresh server and lease file, one perfdhcp run; prints
# "rate do_sent do_recv do_drops ra_sent ra_recv ra_drops acks/s do_ms ra_ms
# srv_rcvbuf cli_rcvbuf srv_cpu% cpu_us/exchange": the drops perfdhcp
# counts (no answer, or a NAK), the requests the server's socket had no
# room for, the answers perfdhcp's had no room for, and the server's CPU.
perfdhcp_run() {
	rm -f "$W"/*.leases
	dhcp_start "$S"
	_pid=$PID
	_s0=$(udp "$NS_S" RcvbufErrors) _c0=$(udp "$NS_C" RcvbufErrors)
	_t0=$(ticks "$_pid")
	_w0=$(date +%s.%N)
	ip netns exec "$NS_C" taskset -c "$GEN_CPU" timeout $((DHCP_SECONDS + 20)) perfdhcp -4 -g single -l "fub$$c" -L 68 \
		-M "$W/macs" -r "$1" -p "$DHCP_SECONDS" -W 500000 >"$W/perfdhcp.out" 2>&1 || true
	_w1=$(date +%s.%N)
	_t1=$(ticks "$_pid")
	_s1=$(udp "$NS_S" RcvbufErrors) _c1=$(udp "$NS_C" RcvbufErrors)
	stop "$_pid"
	awk -v rate="$1" -v p="$DHCP_SECONDS" -v srv=$((_s1 - _s0)) -v cli=$((_c1 - _c0)) -v t=$((_t1 - _t0)) -v hz="$HZ" -v w0="$_w0" -v w1="$_w1" '
		/^sent packets:/ {s[++i] = $3}
		/^received packets:/ {rc[++j] = $3}
		/^drops:/ {d[++k] = $2}
		/^avg delay:/ {a[++m] = $3}
		END {printf "%d %d %d %d %d %d %d %.0f %s %s %d %d %.0f %.1f\n", rate, s[1], rc[1], d[1], s[2], rc[2], d[2], rc[2] / p,
			a[1], a[2], srv, cli, t / hz / (w1 - w0) * 100, (rc[2] > 0) ? t / hz * 1e6 / rc[2] : 0}' "$W/perfdhcp.out"
}
dhcp_start() {
	case $1 in
	foldup)
		start ip netns exec "$NS_S" taskset -c "$SRV_CPU" "$F" dnsd -v --plan "$W/dhcp/plan.json" --pool "lan=$POOL_FIRST-$POOL_LAST" \
			--lease-file "$W/foldup.leases" 2>>"$W/foldup-dhcp.log" ;;
	dnsmasq)
		if [ "$DNSMASQ_LEASES" = ro ]; then lf=--leasefile-ro; else lf=--dhcp-leasefile=$W/dnsmasq.leases; fi
		start ip netns exec "$NS_S" taskset -c "$SRV_CPU" dnsmasq -k -C /dev/null --no-resolv --no-hosts --port=0 \
			--interface="$BR" --bind-interfaces --dhcp-range="$POOL_FIRST,$POOL_LAST,255.255.0.0,10m" \
			--dhcp-lease-max=100000 --no-ping --quiet-dhcp --dhcp-authoritative $lf \
			--domain=bench.foldup.internal --log-facility=- 2>>"$W/dnsmasq-dhcp.log" ;;
	esac
	wait_udp "$NS_S" 67
}
# dhcp_ok FIELDS...: the server caused no drops (perfdhcp's drops less the
# answers perfdhcp's own socket dropped: at most 0.1 % of the DISCOVERs) and
# perfdhcp sent 97 % of the rate asked for.
dhcp_ok() {
	awk -v s="$2" -v d=$(($4 + $7 - ${12})) -v want=$(($1 * DHCP_SECONDS)) 'BEGIN {exit !(d <= s * .001 && s >= want * .97)}'
}
DHCP_FMT='%-6s %-8s %6s %8s %8s %6s %8s %8s %6s %7s %7s %7s %7s %7s %5s %7s %s\n'

bench_dhcp() {
	echo
	echo "== dhcp: perfdhcp DORA from $DHCP_CLIENTS random MACs, ${DHCP_SECONDS} s a step, fresh server and lease file each step;" \
		"dnsmasq lease file: $DNSMASQ_LEASES; foldup: --lease-file"
	D=$W/dhcp
	mkdir -p "$D"
	awk 'BEGIN {
		print "name: bench\nnetworks:\n  lan:\n    ipam: {config: [{subnet: 10.80.0.0/16}]}\nservices:"
		for (i = 1; i <= 20; i++) printf "  svc%d: {image: \"x:1\", networks: {lan: {ipv4_address: 10.80.1.%d}}}\n", i, 10 + i
	}' >"$D/foldup.yaml"
	(cd "$D" && "$F" plan --format json >plan.json)
	# Random (locally administered) MACs, the same every run: perfdhcp's
	# own (-R) are consecutive, which dnsmasq's hash turns into colliding
	# offers (it does not reserve what it offers) and so NAKs.
	awk -v n="$DHCP_CLIENTS" 'BEGIN {srand(1); for (i = 0; i < n; i++) printf "%02x:%02x:%02x:%02x:%02x:%02x\n",
		2 + 4 * int(rand() * 64), int(rand() * 256), int(rand() * 256), int(rand() * 256), int(rand() * 256), int(rand() * 256)}' >"$W/macs"
	BR=$(jq -r '.networks[0].bridge' "$D/plan.json")
	GW=$(jq -r '.networks[0].gateway4' "$D/plan.json")
	POOL_FIRST=10.80.16.0 POOL_LAST=10.80.31.255 # 4,096 addresses, none a member's
	NS_S=fu-b-$$-s NS_C=fu-b-$$-c
	netns "$NS_S"
	netns "$NS_C"
	ip link add "fub$$s" type veth peer name "fub$$c"
	ip link set "fub$$s" netns "$NS_S"
	ip link set "fub$$c" netns "$NS_C"
	ip -n "$NS_S" link add "$BR" type bridge
	ip -n "$NS_S" link set "fub$$s" master "$BR"
	ip -n "$NS_S" addr add "$GW/16" dev "$BR"
	ip -n "$NS_S" link set "$BR" up
	ip -n "$NS_S" link set "fub$$s" up
	ip -n "$NS_C" addr add 10.80.0.2/16 dev "fub$$c"
	ip -n "$NS_C" link set "fub$$c" up
	# perfdhcp is a relay; make it a client (see the top of this file).
	ip netns exec "$NS_C" nft -f - <<-EOF
		table ip fubench {
			chain out {
				type filter hook output priority 0; policy accept;
				udp dport 67 @th,88,8 set 0 @th,256,32 set 0
			}
		}
		table netdev fubench {
			chain in {
				type filter hook ingress device fub$$c priority 0; policy accept;
				udp sport 67 udp dport 68 meta pkttype set host ip daddr set 10.80.0.2
			}
		}
	EOF
	sleep 1 # the bridge port forwards
	fbest="" dbest="" fcpu="" dcpu=""
	printf "$DHCP_FMT" round server rate do-sent do-recv drops ra-sent ra-recv drops acks/s "do ms" "ra ms" srv-buf cli-buf cpu% "us/xchg"
	r=1
	while [ $r -le "$ROUNDS" ]; do
		order="foldup dnsmasq"
		[ $((r % 2)) = 0 ] && order="dnsmasq foldup"
		for S in $order; do
			# the highest rate first, then a log-bisection between DHCP_LO and it
			lo=$DHCP_LO hi=$DHCP_HI best=0 cpu=0 i=-1 mid=$DHCP_HI
			while [ $i -lt "$DHCP_STEPS" ]; do
				set -- $(perfdhcp_run "$mid")
				if dhcp_ok "$@"; then v=ok lo=$mid best=$mid cpu=${14}; else v=drops hi=$mid; fi
				printf "$DHCP_FMT" "$r" $S "$@" $v
				[ $best = "$DHCP_HI" ] && break
				i=$((i + 1))
				mid=$(awk -v a="$lo" -v b="$hi" 'BEGIN {printf "%d", sqrt(a * b)}')
			done
			if [ $S = foldup ]; then fbest="$fbest $best" fcpu="$fcpu $cpu"; else dbest="$dbest $best" dcpu="$dcpu $cpu"; fi
			echo "round $r $S: max rate without drops $best exchanges/s ($cpu us of server CPU an exchange)"
		done
		r=$((r + 1))
	done
	fb=$(median $fbest) db=$(median $dbest)
	echo "median max rate without drops: foldup $fb/s, dnsmasq $db/s; foldup/dnsmasq $(ratio "$fb" "$db")x" \
		"(server CPU an exchange there: foldup $(median $fcpu) us, dnsmasq $(median $dcpu) us)"
	n=$(grep -c 'level=' "$W/foldup-dhcp.log" || true)
	[ "$n" = 0 ] || { echo "foldup logged $n lines:"; grep 'level=' "$W/foldup-dhcp.log" | sed 's/time=[^ ]* //' | sort | uniq -c | sort -rn | head -5; }
}

# ---- rss ------------------------------------------------------------------

rss() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

bench_rss() {
	echo
	echo "== rss: 1,000 members and 10,000 records (5,000 A, 5,000 TXT), DNS only, on loopback"
	D=$W/rss
	Q=$D/queries
	NS=fu-b-$$-r
	netns "$NS"
	pair "$D" 1000 10000 "$NS"
	same_answers "$NS" 5300 5301 svc1.bench.foldup.internal svc1000.bench.foldup.internal "rec10000.bench.foldup.internal TXT" rec9999.bench.foldup.internal
	stop $FPID
	stop $DPID
	# what the servers take with next to nothing to serve
	pair "$W/rss0" 1 0 "$NS"
	sleep 2
	echo "baseline, 1 member and no records: foldup $(rss $FPID VmRSS) kB ($(rss $FPID RssAnon) kB anonymous)," \
		"dnsmasq $(rss $DPID VmRSS) kB ($(rss $DPID RssAnon) kB anonymous)"
	stop $FPID
	stop $DPID
	printf '%-6s %-8s %10s %10s %10s %10s %8s\n' round server "start kB" "after kB" "anon kB" "peak kB" "qps"
	fs="" fa="" fn="" ds="" da="" dn=""
	r=1
	while [ $r -le "$ROUNDS" ]; do
		order="foldup dnsmasq"
		[ $((r % 2)) = 0 ] && order="dnsmasq foldup"
		for s in $order; do
			if [ $s = foldup ]; then port=5300; else port=5301; fi
			dns_start $s "$D" "$NS" $port
			pid=$PID
			sleep 2
			a=$(rss $pid VmRSS)
			# every name 5 times (55,000 queries) at 20,000 a second
			set -- $(dnsperf_run "$NS" $port $pid "$W/dnsperf-rss" nolat -n 5 -l 10 -c "$DNS_CLIENTS" -q "$DNS_OUTSTANDING" -Q 20000)
			sleep 1
			b=$(rss $pid VmRSS)
			n=$(rss $pid RssAnon)
			h=$(rss $pid VmHWM)
			stop $pid
			printf '%-6s %-8s %10s %10s %10s %10s %8s %s\n' "$r" $s "$a" "$b" "$n" "$h" "$1" "${10}"
			if [ $s = foldup ]; then fs="$fs $a" fa="$fa $b" fn="$fn $n"; else ds="$ds $a" da="$da $b" dn="$dn $n"; fi
		done
		r=$((r + 1))
	done
	echo "median VmRSS after startup: foldup $(median $fs) kB, dnsmasq $(median $ds) kB;" \
		"after the queries: foldup $(median $fa) kB, dnsmasq $(median $da) kB;" \
		"of which anonymous: foldup $(median $fn) kB, dnsmasq $(median $dn) kB"
}

case "$what" in
dns) bench_dns ;;
dhcp) bench_dhcp ;;
rss) bench_rss ;;
all) bench_dns; bench_dhcp; bench_rss ;;
esac
