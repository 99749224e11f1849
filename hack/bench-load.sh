#!/usr/bin/env bash
# make bench-load: `ward serve` with a generated bundle of N ImagePolicies
# (one glob each, static pass; default 10,000), followed from a folder
# source, driven over HTTPS like an API server by the load tool in
# ../shared/bench (SHARED=...). Prints the figures of issue 11 for ward:
# server CPU per review and reviews/s (closed loop, 16 clients), p99 in an
# open loop at 1,000/s and 2,000/s, process start -> ready, a pushed bundle
# -> enforced, and resident memory after the load; then the floor: the same
# open loops against hack/nullwebhook (a server that answers at once), and
# `ward version` (package init alone). Nothing is asserted: the figures go
# to docs/benchmarks.md with the machine they ran on.
# PROFILE=DIR also saves CPU profiles of the start (compile) and of the
# closed loop, a heap profile after the load (go tool pprof FILE), and an
# execution trace of the open loop at 1,000/s (go tool trace FILE).
# SWAPS=100 then publishes and pushes that many new versions of the bundle,
# one after another, under an open loop of 2,000 reviews/s, and counts the
# requests lost or past the 10 s timeout (each version allows the fixture).
#   hack/bench-load.sh bin/ward
set -euo pipefail
ward=$(realpath "${1:-bin/ward}")
SHARED=${SHARED:-../shared}
N=${N:-10000}
DURATION=${DURATION:-10s}
SWAPS=${SWAPS:-0}
bench=$(realpath "$SHARED/bench")
fixture="$bench/admissionreview-pod.json"
[ -f "$fixture" ] || { echo "bench-load: no $fixture (set SHARED to the shared folder)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ward-bench.XXXXXX")
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && { wait "$pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
log() { echo "bench-load: $*" >&2; }
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@ward.invalid GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@ward.invalid

log "building the load tools"
go -C "$bench/loadgen" build -o "$work/bin/" . ./cmd/genpatterns ./cmd/waitfor
go build -o "$work/bin/" ./hack/nullwebhook
loadgen="$work/bin/loadgen" genpatterns="$work/bin/genpatterns" waitfor="$work/bin/waitfor"

log "a policy repository with $N policies, published to prod"
repo="$work/repo"
"$ward" init "$repo" --envs prod >/dev/null
rm -f "$repo/policies/"*.yaml "$repo/tests/"*.yaml
"$genpatterns" -n "$N" -ward-policies "$repo/policies/allow.yaml"
git -C "$repo" init -q && git -C "$repo" add -A && git -C "$repo" commit -qm "$N policies"
"$ward" publish --env prod --no-push "$repo" >/dev/null

port=$((20000 + RANDOM % 20000)) hport=$((40000 + RANDOM % 20000))
url="https://127.0.0.1:$port/validate"
head -c 32 /dev/urandom | base64 > "$work/hook.secret"
cat > "$work/serve.yaml" <<YAML
apiVersion: ward.dev/v1alpha1
kind: PolicySource
metadata: {name: prod}
spec:
  env: prod
  rootFile: $repo/tuf/metadata/1.root.json
  interval: 1h
  dir: {path: $repo/tuf}
YAML

log "starting ward serve"
t0=$(date +%s%N)
"$ward" serve --config "$work/serve.yaml" --state-dir "$work/state" --addr "127.0.0.1:$port" \
  --health-addr "127.0.0.1:$hport" --push-secret-file "$work/hook.secret" --log-level error \
  --cloud-registry-credentials none ${PROFILE:+--profiling} 2>"$work/serve.log" &
pid=$!
ready_ms=$("$waitfor" -url "$url" -body "$fixture" -insecure -expect '"allowed":true' -since "$t0" -timeout 120s)

run() { "$loadgen" -url "$url" -body "$fixture" -cacert "$work/state/tls/serving.crt" -expect '"allowed":true' -server-pid "$pid" -json "$@"; }
field() { jq -r ".$1 // 0" <<<"$2"; }
log "closed loop, 16 clients, $DURATION"
if [ -n "${PROFILE:-}" ]; then
  mkdir -p "$PROFILE"
  curl -s -o "$PROFILE/cpu-serve.pprof" "http://127.0.0.1:$hport/debug/pprof/profile?seconds=8" &
  prof=$!
fi
closed=$(run -c 16 -d "$DURATION")
[ -n "${PROFILE:-}" ] && wait "$prof"
log "open loop, 1000/s, $DURATION"
if [ -n "${PROFILE:-}" ]; then
  curl -s -o "$PROFILE/trace-open1000.out" "http://127.0.0.1:$hport/debug/pprof/trace?seconds=5" &
  prof=$!
fi
open1=$(run -c 64 -rate 1000 -d "$DURATION")
[ -n "${PROFILE:-}" ] && wait "$prof"
log "open loop, 2000/s, $DURATION"
open2=$(run -c 128 -rate 2000 -d "$DURATION")
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
rss_anon_kb=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status")
rss_file_kb=$(awk '/^RssFile/ {print $2}' "/proc/$pid/status")
[ -n "${PROFILE:-}" ] && curl -s -o "$PROFILE/heap.pprof" "http://127.0.0.1:$hport/debug/pprof/heap"

log "publishing a bundle that denies the fixture, pushing it"
"$genpatterns" -n "$N" -ward-policies "$repo/policies/allow.yaml" -omit "registry.example.com/team/**"
git -C "$repo" commit -qam "without registry.example.com/team"
"$ward" publish --env prod --no-push "$repo" >/dev/null
body='{"ref":"refs/heads/main"}'
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$(cat "$work/hook.secret")" | awk '{print $NF}')
if [ -n "${PROFILE:-}" ]; then
  curl -s -o "$PROFILE/cpu-swap.pprof" "http://127.0.0.1:$hport/debug/pprof/profile?seconds=4" &
  prof=$!
  sleep 0.2
fi
t1=$(date +%s%N)
curl -sf -X POST -H "X-Ward-Signature: sha256=$sig" -d "$body" "https://127.0.0.1:$port/hook/prod" --cacert "$work/state/tls/serving.crt" >/dev/null
swap_ms=$("$waitfor" -url "$url" -body "$fixture" -cacert "$work/state/tls/serving.crt" -expect '"allowed":false' -since "$t1" -timeout 120s)
[ -n "${PROFILE:-}" ] && wait "$prof"

failed() { echo $(( $(field errors "$1") + $(field non_2xx "$1") + $(field unexpected_body "$1") + $(field dropped "$1") )); }

# push publishes the repository's policies as the next version and tells
# ward serve, setting version and t (the instant of the push).
version=2
push() {
  git -C "$repo" commit -qam "$1"
  "$ward" publish --env prod --no-push "$repo" >/dev/null
  version=$((version + 1))
  t=$(date +%s%N)
  curl -sf -X POST -H "X-Ward-Signature: sha256=$sig" -d "$body" "https://127.0.0.1:$port/hook/prod" --cacert "$work/state/tls/serving.crt" >/dev/null
}
swaps_row=""
if [ "$SWAPS" -gt 0 ]; then
  log "$SWAPS swaps of the $N-policy bundle under an open loop of 2,000/s"
  "$genpatterns" -n "$N" -ward-policies "$repo/policies/allow.yaml"
  push "allow again"
  "$waitfor" -url "$url" -body "$fixture" -cacert "$work/state/tls/serving.crt" -expect "\"bundle-version\":\"$version\"" -since "$t" -timeout 120s >/dev/null
  # One swap's time, publishing included, sizes the load's window.
  s0=$(date +%s%N)
  extra() { printf -- '---\napiVersion: policy.ward.dev/v1\nkind: ImagePolicy\nmetadata: {name: swap-extra}\nspec:\n  images: [{glob: "swap.example.com/**"}]\n  authorities: [{static: {action: pass}}]\n' >> "$repo/policies/allow.yaml"; }
  extra
  push "swap 0"
  "$waitfor" -url "$url" -body "$fixture" -cacert "$work/state/tls/serving.crt" -expect "\"bundle-version\":\"$version\"" -since "$t" -timeout 120s >/dev/null
  per_swap_ms=$(( ($(date +%s%N) - s0) / 1000000 ))
  window=$(( SWAPS * per_swap_ms * 3 / 2000 + 10 ))
  load_start=$(date +%s)
  run -c 128 -rate 2000 -warmup 0s -timeout 10s -d "${window}s" > "$work/swaps.json" &
  load=$!
  sleep 1
  each_ms=()
  for i in $(seq 1 "$SWAPS"); do
    # Every other version carries one more policy: each is new content.
    "$genpatterns" -n "$N" -ward-policies "$repo/policies/allow.yaml"
    [ $((i % 2)) = 0 ] && extra
    push "swap $i"
    each_ms+=("$("$waitfor" -url "$url" -body "$fixture" -cacert "$work/state/tls/serving.crt" -expect "\"bundle-version\":\"$version\"" -since "$t" -timeout 120s)")
  done
  [ $(( $(date +%s) - load_start )) -lt "$window" ] || log "warning: the swaps outlasted the load's window of ${window}s"
  wait "$load"
  swaps=$(cat "$work/swaps.json")
  sorted=$(printf '%s\n' "${each_ms[@]}" | sort -n)
  med=$(sed -n "$(( (SWAPS + 1) / 2 ))p" <<<"$sorted") worst=$(tail -1 <<<"$sorted")
  swaps_row="| $SWAPS swaps of the bundle under an open loop of 2,000/s: reviews, p99, slowest | $(field requests "$swaps") reviews, p99 $(awk -v v="$(field p99_us "$swaps")" 'BEGIN {printf "%.1f", v/1000}') ms, slowest $(awk -v v="$(field max_us "$swaps")" 'BEGIN {printf "%.0f", v/1000}') ms; push → enforced median $med ms, slowest $worst ms | $(failed "$swaps") |"
fi
log "the floor: the same loops against a server that answers at once"
kill "$pid" 2>/dev/null && { wait "$pid" 2>/dev/null || true; }
pid=""
nport=$((20000 + RANDOM % 20000))
"$work/bin/nullwebhook" -addr "127.0.0.1:$nport" -cert "$work/state/tls/serving.crt" -key "$work/state/tls/serving.key" 2>"$work/null.log" &
pid=$!
"$waitfor" -url "https://127.0.0.1:$nport/validate" -body "$fixture" -insecure -expect '"allowed":true' -since "$(date +%s%N)" -timeout 30s >/dev/null
nrun() { "$loadgen" -url "https://127.0.0.1:$nport/validate" -body "$fixture" -cacert "$work/state/tls/serving.crt" -expect '"allowed":true' -json "$@"; }
nrun -c 16 -d 2s >/dev/null
null1=$(nrun -c 64 -rate 1000 -d "$DURATION")
null2=$(nrun -c 128 -rate 2000 -d "$DURATION")
# ward's package init alone: a command that does nothing else.
i0=$(date +%s%N)
"$ward" version >/dev/null
init_ms=$(( ($(date +%s%N) - i0) / 1000000 ))
init_rss=""
if /usr/bin/time -f %M true >/dev/null 2>&1; then # GNU time
  init_rss=", $(( $(/usr/bin/time -f %M "$ward" version 2>&1 >/dev/null | tail -1) / 1024 )) MiB resident"
fi
ms() { awk -v v="$(field "$1" "$2")" 'BEGIN {printf "%.1f", v/1000}'; }
cpu=$(nproc)
model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
cat <<EOF

ward bench-load: $N policies, $(basename "$fixture") ($(wc -c <"$fixture") B), HTTP/1.1 keep-alive, load tool on the same cores
machine: $cpu CPUs, $model; $(date -u +%Y-%m-%d)

| figure | ward | failed requests |
|---|---:|---:|
| server CPU per review, 16 clients | $(printf '%.0f' "$(field server_cpu_us_per_req "$closed")") µs | |
| reviews/s, 16 clients | $(printf '%.0f' "$(field rps "$closed")") | $(failed "$closed") |
| p99, open loop 1,000/s | $(awk -v v="$(field p99_us "$open1")" 'BEGIN {printf "%.1f", v/1000}') ms | $(failed "$open1") |
| p99, open loop 2,000/s | $(awk -v v="$(field p99_us "$open2")" 'BEGIN {printf "%.1f", v/1000}') ms | $(failed "$open2") |
| process start → ready, $N policies | $ready_ms ms | |
| publish pushed → new bundle enforced | $swap_ms ms | |
| resident memory after load | $((rss_kb / 1024)) MiB (heap and stacks $((rss_anon_kb / 1024)), binary $((rss_file_kb / 1024))) | |
${swaps_row}

The floor on this machine (not ward): the same load tool against
hack/nullwebhook, which answers at once, p99 $(ms p99_us "$null1") ms at 1,000/s
and $(ms p99_us "$null2") ms at 2,000/s (p50 $(ms p50_us "$null1") and $(ms p50_us "$null2") ms; ward's p50: $(ms p50_us "$open1") and $(ms p50_us "$open2") ms;
failed requests $(failed "$null1") and $(failed "$null2"));
\`ward version\`, package init and nothing else: ${init_ms} ms${init_rss}.
EOF
