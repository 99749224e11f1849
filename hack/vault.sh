#!/usr/bin/env bash
# HashiCorp Vault, for the KMS provider tests (a dev server with the transit
# engine), built from the Go module proxy into the cache; prints its path.
# Vault's go.mod replaces its api and sdk modules with folders that its
# module zip leaves out: those replace lines are dropped, so the published
# versions it requires are used. v1.21.0's match its code (v1.21.4's do
# not compile). Cold: 20–40 minutes on 2 cores (37 measured on busy ones).
set -euo pipefail
VERSION=v1.21.0
cache=${WARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ward}
bin="$cache/tools/vault-$VERSION"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
echo "vault: building $VERSION (cold: 20-40 minutes)" >&2
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
src=$(go mod download -json "github.com/hashicorp/vault@$VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
[ -n "$src" ] || { echo "vault: could not download github.com/hashicorp/vault@$VERSION" >&2; exit 1; }
work="$cache/tools/vault-src-$VERSION"
rm -rf "$work"
mkdir -p "$(dirname "$work")"
cp -r "$src" "$work"
chmod -R u+w "$work"
sed -i '/=> \.\/api\|=> \.\/sdk/d' "$work/go.mod"
(cd "$work" && go build -trimpath -ldflags "-s -w" -o "$bin.tmp" . >&2)
mv "$bin.tmp" "$bin"
rm -rf "$work"
echo "$bin"
