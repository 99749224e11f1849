#!/usr/bin/env bash
# Builds kube-apiserver and kubectl (k8s.io/kubernetes v1.37.2) and etcd (v3.7.3) from the
# Go module proxy into a cache folder, for controller-runtime's envtest, and
# prints the folder (export it as KUBEBUILDER_ASSETS). Skips any binary that
# is already there, so a warm run takes a fraction of a second; a cold one
# about 9 minutes on 2 cores (measured). Nothing is written into the repository.
set -euo pipefail

K8S_VERSION=v1.37.2
LIB_VERSION=v0.37.2
ETCD_VERSION=v3.7.3
cache=${WARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ward}
assets="$cache/kube-assets/$K8S_VERSION"
mkdir -p "$assets"

if [ -x "$assets/kube-apiserver" ] && [ -x "$assets/etcd" ] && [ -x "$assets/kubectl" ]; then
  echo "$assets"
  exit 0
fi

log() { echo "kube-assets: $*" >&2; }
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=37"
done

if [ ! -x "$assets/kube-apiserver" ]; then
  work="$cache/kube-assets/apiserver-module"
  mkdir -p "$work"
  log "building kube-apiserver $K8S_VERSION (cold: several minutes)"
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -n "$gomod" ] || { log "could not download k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
  {
    echo "module ward.dev/kube-assets"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    grep -E '^\s*k8s.io/[^ ]+ => ./staging/' "$gomod" | awk '{print $1}' | grep -v '^k8s.io/sample-' |
      while read -r mod; do echo "replace $mod => $mod $LIB_VERSION"; done
  } > "$work/go.mod"
  (cd "$work" && go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" >&2)
  (cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$assets/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$assets/kube-apiserver.tmp" "$assets/kube-apiserver"
fi

if [ ! -x "$assets/kubectl" ]; then
  # For the README's install snippet, against the test API server; built in
  # kube-apiserver's module (same version, same dependencies).
  work="$cache/kube-assets/apiserver-module"
  log "building kubectl $K8S_VERSION"
  (cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$assets/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl)
  mv "$assets/kubectl.tmp" "$assets/kubectl"
fi

if [ ! -x "$assets/etcd" ]; then
  work="$cache/kube-assets/etcd-module"
  mkdir -p "$work"
  log "building etcd $ETCD_VERSION"
  printf 'module ward.dev/etcd-assets\n\ngo 1.26.0\n' > "$work/go.mod"
  (cd "$work" && go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2)
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$assets/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$assets/etcd.tmp" "$assets/etcd"
fi
echo "$assets"
