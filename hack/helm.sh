#!/usr/bin/env bash
# Builds helm (helm.sh/helm/v3 v3.22.0) from the Go module proxy into the
# cache folder, in its own helper module so that its Kubernetes libraries do
# not touch ward's, and prints its path. Skips the build when it is there.
set -euo pipefail
HELM_VERSION=v3.22.0
cache=${WARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ward}
bin="$cache/tools/helm-$HELM_VERSION"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
work="$cache/tools/helm-module"
mkdir -p "$work" "$(dirname "$bin")"
echo "helm: building $HELM_VERSION (cold: a few minutes)" >&2
printf 'module ward.dev/helm-tool\n\ngo 1.26.0\n' > "$work/go.mod"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
(cd "$work" && go get -tool "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2)
(cd "$work" && go build -trimpath -ldflags "-s -w" -o "$bin.tmp" helm.sh/helm/v3/cmd/helm)
mv "$bin.tmp" "$bin"
echo "$bin"
