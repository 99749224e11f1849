#!/usr/bin/env bash
# Runs a command with the machine's clock moved ahead (default 365 days:
# WARD_CLOCK_AHEAD_DAYS), then puts the clock back, advanced by the time the
# command took. It shows that the tests depend on no date: run
#   hack/clock-ahead.sh make unit
# It moves the clock of every process on the machine: use it only on a
# machine or VM of your own, as root with CAP_SYS_TIME.
set -euo pipefail
days=${WARD_CLOCK_AHEAD_DAYS:-365}
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
start=$(date +%s)
up0=$(cut -d' ' -f1 /proc/uptime)
restore() {
  local up1
  up1=$(cut -d' ' -f1 /proc/uptime)
  date -s "@$(awk -v s="$start" -v a="$up0" -v b="$up1" 'BEGIN { printf "%d", s + b - a }')" >/dev/null
  echo "clock-ahead: clock put back: $(date -u +%FT%TZ)" >&2
}
date -s "@$((start + days * 86400))" >/dev/null
trap restore EXIT
echo "clock-ahead: the clock reads $(date -u +%FT%TZ) ($days days ahead)" >&2
"$@"
