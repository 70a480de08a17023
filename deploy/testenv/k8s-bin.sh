#!/usr/bin/env bash
# Build (once, cached) the etcd and kube-apiserver binaries that the kube tests run.
# Both come from source through the Go module proxy; nothing prebuilt is downloaded.
#   deploy/testenv/k8s-bin.sh        -> builds if missing, prints the bin directory
# The Go test harness (pool/kube/kubetest) starts and stops the servers itself.
# Adapted from shared/tools/k8s-testenv.sh; cache: $XDG_CACHE_HOME/gofastapi/k8s.
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-1.35.4}          # k8s.io/kubernetes v$K8S_VERSION, staging v0.${K8S_VERSION#1.}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
GO=${GO:-go}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/gofastapi/k8s
K8S_BIN=${K8S_BIN:-$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-$($GO env GOOS)-$($GO env GOARCH)}

if [ -x "$K8S_BIN/kube-apiserver" ] && [ -x "$K8S_BIN/etcd" ]; then echo "$K8S_BIN"; exit 0; fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false   # static, portable binaries (as upstream releases)
src=$(mktemp -d); trap 'rm -rf "$src"' EXIT
mkdir -p "$K8S_BIN"
echo "building kube-apiserver v$K8S_VERSION and etcd v$ETCD_VERSION from source (once; several minutes)" >&2
V=$K8S_VERSION SV=v0.${K8S_VERSION#1.}
# every ./staging replace of k8s.io/kubernetes -> its published version (the proxy lacks sample-*)
kmod=$(cd "$src" && $GO mod download -json "k8s.io/kubernetes@v$V" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
mods=$(awk '/=> \.\/staging/{print $1}' "$kmod" | grep -v '^k8s.io/sample-')
{ echo "module local/k8sbuild"; echo "go 1.25"; echo "require k8s.io/kubernetes v$V"
  echo "require ("; for m in $mods; do echo "  $m $SV"; done; echo ")"
  echo "replace ("; for m in $mods; do echo "  $m => $m $SV"; done; echo ")"; } > "$src/go.mod"
printf '//go:build tools\npackage tools\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' > "$src/tools.go"
X=k8s.io/component-base/version
( cd "$src" && $GO mod tidy >&2 && $GO build -trimpath -o "$K8S_BIN/kube-apiserver.tmp" \
    -ldflags "-s -w -X $X.gitVersion=v$V -X $X.gitMajor=1 -X $X.gitMinor=$(echo "$V" | cut -d. -f2) -X $X.gitTreeState=clean" \
    k8s.io/kubernetes/cmd/kube-apiserver >&2 )
mkdir -p "$src/etcd"
printf 'module local/etcdbuild\ngo 1.25\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$ETCD_VERSION" > "$src/etcd/go.mod"
printf '//go:build tools\npackage tools\nimport _ "go.etcd.io/etcd/server/v3"\n' > "$src/etcd/tools.go"
( cd "$src/etcd" && for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do $GO mod edit -require=go.etcd.io/etcd/$m@v$ETCD_VERSION; done \
    && $GO mod tidy >&2 && $GO build -trimpath -ldflags "-s -w" -o "$K8S_BIN/etcd.tmp" go.etcd.io/etcd/server/v3 >&2 )
# rename last, so an interrupted build is never taken for a finished one
mv "$K8S_BIN/kube-apiserver.tmp" "$K8S_BIN/kube-apiserver"
mv "$K8S_BIN/etcd.tmp" "$K8S_BIN/etcd"
echo "$K8S_BIN"
