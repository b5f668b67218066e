#!/bin/sh
# test.sh: install what the tests need and run all of them: unit, system
# (real kernel: namespaces, links; a private Docker engine; qemu VMs) and a
# short run of every fuzz target.
# Set FOLDUP_REQUIRE_SYSTEM=1 to fail, not skip, tests whose system parts
# are missing (CI does). FUZZTIME (default 50000x: inputs, not seconds) is
# each fuzz target's budget, as go test's -fuzztime takes it.
# The last line counts the tests: "N passed, N failed, N skipped".
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
missing=""
for c in ip:iproute2 unshare:util-linux sysctl:procps git:git ping:iputils-ping python3:python3 nft:nftables dig:dnsutils \
	busybox:busybox-static dhclient:isc-dhcp-client rdisc6:ndisc6 dockerd:docker.io \
	qemu-system-x86_64:qemu-system-x86 qemu-system-aarch64:qemu-system-arm qemu-img:qemu-utils xz:xz-utils cpio:cpio gzip:gzip curl:curl \
	dnsmasq:dnsmasq-base podman:podman dnsperf:dnsperf ssh:openssh-client dot:graphviz tcpdump:tcpdump; do
	command -v "${c%%:*}" >/dev/null 2>&1 || missing="$missing ${c#*:}"
done
# UEFI for aarch64 disk images: a firmware file, no command.
[ -e /usr/share/AAVMF/AAVMF_CODE.fd ] || missing="$missing qemu-efi-aarch64"
if [ -n "$missing" ]; then
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing
fi
# The VM tests' guests, built once: Debian's kernel and a busybox
# initramfs, for amd64 and (booted under TCG) arm64; a Debian 12 image
# with cloud-init (mmdebstrap).
scripts/images.sh /var/cache/foldup-test >/dev/null
scripts/images.sh /var/cache/foldup-test arm64 >/dev/null
scripts/cloudimage.sh /var/cache/foldup-test >/dev/null
# The kube tests' API server (etcd, kube-apiserver) and KubeVirt's checks,
# built once from the Go module proxy.
scripts/kubeapi.sh /var/cache/foldup-test/kube >/dev/null
# The example's images (the demo test brings the example up with them),
# checked first on their own, without foldup (a private engine, dnsmasq,
# qemu in a namespace of the script's).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
scripts/example-images.sh /var/cache/foldup-test/example >/dev/null
if ! examples/webapp-with-db/check-images.sh /var/cache/foldup-test/example >"$log" 2>&1; then
	cat "$log" >&2
	echo "test.sh: examples/webapp-with-db/check-images.sh failed" >&2
	exit 1
fi
grep '^check-images.sh: ' "$log"
GO=$(scripts/go.sh)
"$GO" vet ./...
bad=$("$(dirname "$GO")/gofmt" -l . 2>/dev/null || true)
if [ -n "$bad" ]; then
	echo "gofmt would change: $bad" >&2
	exit 1
fi
# Every fuzz target, as package:FuzzName.
# A budget in time races go's fuzzing coordinator against its own deadline
# (go.dev/issue/75804, fixed in Go 1.27): on a loaded machine a run can end
# in "context deadline exceeded" with no failing input. CI saw it twice in
# a row on one target. A budget in inputs has no deadline, so it is the
# default; with a time budget such a run is still tried once more. Any
# failure with an input is a finding and fails at once.
for t in $(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed 's|^\./\(.*\)/[^/]*:func |\1:|'); do
	for try in 1 2; do
		if "$GO" test -run '^$' -fuzz "^${t#*:}\$" -fuzztime "${FUZZTIME:-50000x}" "./${t%%:*}" >"$log" 2>&1; then
			cat "$log"
			break
		fi
		cat "$log"
		if [ "$try" = 2 ] || grep -q 'Failing input written' "$log" || ! grep -q 'context deadline exceeded' "$log"; then
			exit 1
		fi
		echo "test.sh: ${t#*:}: the fuzzing engine timed out with no failing input; once more" >&2
	done
done
# The example's web app is a module of its own (its database driver stays
# out of foldup's go.mod): its unit tests.
(cd examples/webapp-with-db/web && "$GO" vet ./... && "$GO" test -count=1 ./...)
"$GO" build -o bin/testsummary ./internal/testsummary
set +e
"$GO" test -count=1 -json ./... | bin/testsummary
