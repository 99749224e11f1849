#!/usr/bin/env bash
# Installs what a fresh machine lacks. Idempotent: does nothing when
# everything is present. `hack/setup.sh` (make test) installs what the tests
# need; `hack/setup.sh demo` (make demo) only what the demo needs (git).
# apt may be busy (another package manager at boot): it is waited for.
set -euo pipefail

need=()
command -v git >/dev/null || need+=(git)
if [ "${1:-}" != demo ]; then
  command -v docker-registry >/dev/null || need+=(docker-registry)
  [ -x /usr/sbin/sshd ] || command -v sshd >/dev/null || need+=(openssh-server)
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${need[*]} (apt)"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Wait up to 10 minutes for another package manager to let go of apt.
apt=($sudo apt-get -o DPkg::Lock::Timeout=600 -y -qq)
retry() {
  for i in $(seq 1 60); do
    "$@" && return 0
    echo "setup: apt is busy or failed; retrying in 10 s ($i/60)" >&2
    sleep 10
  done
  return 1
}
if ! "${apt[@]}" install --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
  retry "${apt[@]}" update >/dev/null
  retry "${apt[@]}" install --no-install-recommends "${need[@]}" >/dev/null
fi
