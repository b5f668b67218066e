#!/bin/sh
# network.sh: TCP throughput between two members of a foldup network whose
# tables carry 500 members' rules, against a bare bridge with no rules, in
# the same run (iperf3, inside fresh network namespaces; nothing leaves
# them). Each run is BenchmarkThroughput in network/: 12 rounds of a bare
# bridge, an empty bridge hook and foldup's tables, 2 s each in rotating
# order, with br_netfilter off and on, iperf3's ends unpinned and both on
# one CPU; it prints throughput, retransmissions and the ratios to bare
# (~5 min a run). COUNT runs (default 3). Needs root.
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
for c in iperf3:iperf3 nft:nftables ip:iproute2; do
	command -v "${c%%:*}" >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -qq --no-install-recommends "${c#*:}"; }
done
GO=$(scripts/go.sh)
FOLDUP_REQUIRE_SYSTEM=1 exec "$GO" test -run '^$' -bench Throughput -benchtime 1x -count "${COUNT:-3}" ./network
