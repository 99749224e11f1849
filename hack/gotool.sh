#!/usr/bin/env bash
# Builds a Go command from the module proxy into the cache folder, in its
# own helper module (so that its dependencies do not touch ward's), and
# prints its path. Skips the build when it is there.
#   hack/gotool.sh NAME PACKAGE VERSION
#   hack/gotool.sh helm helm.sh/helm/v3/cmd/helm v3.22.0
set -euo pipefail
name=$1 pkg=$2 version=$3
cache=${WARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ward}
bin="$cache/tools/$name-$version"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
work="$cache/tools/$name-module"
mkdir -p "$work" "$(dirname "$bin")"
echo "$name: building $version" >&2
printf 'module ward.dev/%s-tool\n\ngo 1.26.0\n' "$name" > "$work/go.mod"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
(cd "$work" && go get -tool "$pkg@$version" >&2)
(cd "$work" && go build -trimpath -ldflags "-s -w" -o "$bin.tmp" "$pkg")
mv "$bin.tmp" "$bin"
echo "$bin"
