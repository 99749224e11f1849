#!/usr/bin/env bash
# Builds kustomize (sigs.k8s.io/kustomize/kustomize/v5 v5.8.0) from the Go
# module proxy into the cache folder, in its own helper module, and prints
# its path. Skips the build when it is there.
set -euo pipefail
KUSTOMIZE_VERSION=v5.8.0
cache=${WARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ward}
bin="$cache/tools/kustomize-$KUSTOMIZE_VERSION"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
work="$cache/tools/kustomize-module"
mkdir -p "$work" "$(dirname "$bin")"
echo "kustomize: building $KUSTOMIZE_VERSION" >&2
printf 'module ward.dev/kustomize-tool\n\ngo 1.26.0\n' > "$work/go.mod"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
(cd "$work" && go get -tool "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2)
(cd "$work" && go build -trimpath -ldflags "-s -w" -o "$bin.tmp" sigs.k8s.io/kustomize/kustomize/v5)
mv "$bin.tmp" "$bin"
echo "$bin"
