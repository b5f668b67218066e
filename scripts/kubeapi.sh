#!/bin/sh
# kubeapi.sh DIR: build what the kube tests run into DIR, from the Go
# module proxy, and keep it there (a second run does nothing):
#
#   DIR/etcd                     etcd's server (tools/kubeapi/etcd)
#   DIR/kube-apiserver           Kubernetes' API server (tools/kubeapi/apiserver)
#   DIR/kubevirt-check           KubeVirt's VirtualMachine CRD and admission
#                                checks, run offline (tools/kubevirt)
#   DIR/virtualmachines.crd.yaml the CRD, as kubevirt-check crd prints it
#
# Their own modules are refused by go install (replace directives); the
# modules under tools/ require them and pin what their replaces said. On
# 2 cores the first build takes some 8 minutes, most of it the API server.
# The cache key is the Go version and the tools' go.mod, go.sum and
# sources.
set -eu
[ $# -eq 1 ] || { echo "usage: kubeapi.sh DIR" >&2; exit 2; }
dir=$1
top=$(cd "$(dirname "$0")/.." && pwd)
GO=$("$top/scripts/go.sh")
key=$( { "$GO" version; cd "$top/tools" && find . -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) | sort | xargs cat; } | sha256sum | cut -c1-16)
if [ -f "$dir/.key" ] && [ "$(cat "$dir/.key")" = "$key" ]; then
	exit 0
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rm -f "$dir/.key"
(cd "$top/tools/kubeapi/etcd" && "$GO" build -trimpath -o "$dir/etcd" .)
(cd "$top/tools/kubeapi/apiserver" && "$GO" build -trimpath -o "$dir/kube-apiserver" .)
(cd "$top/tools/kubevirt" && "$GO" build -trimpath -o "$dir/kubevirt-check" .)
"$dir/kubevirt-check" crd >"$dir/virtualmachines.crd.yaml.tmp"
mv "$dir/virtualmachines.crd.yaml.tmp" "$dir/virtualmachines.crd.yaml"
echo "$key" >"$dir/.key"
echo "kubeapi.sh: etcd, kube-apiserver and kubevirt-check in $dir"
