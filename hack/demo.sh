#!/usr/bin/env bash
# The authoring flow of ward, end to end, on this machine: a policy
# repository with a TUF repository and fresh keys, publish, edit and
# publish again, promote, reproducible builds, verification as the
# controller does it, rollback as a new version, and a replay of old
# metadata refused. Exits 0 only if every step behaved as expected.
#
# This is the demo until the controller exists; `ward demo` (admission
# webhook, registry, Git sync) replaces it.
set -uo pipefail
WARD=$(realpath "${1:-bin/ward}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@ward.invalid GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@ward.invalid

step=0
ok() { printf '   \033[32mok\033[0m %s\n' "$*"; }
fail() { printf '   \033[31mFAILED\033[0m %s\n' "$*"; exit 1; }
say() { step=$((step + 1)); printf '\n%d. %s\n' "$step" "$*"; }
run() { printf '   $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/     /'; return "${PIPESTATUS[0]}"; }

echo "ward authoring demo in $work (the webhook in a cluster and the sync loop come with the controller)"

say "ward init: a policy repository, a TUF repository and fresh keys"
run "$WARD" init policies || fail "init"
cd policies && git init -q && git add -A && git commit -qm "initial policies" || fail "git commit"
ok "made ward.yaml, policies/, tuf/ and keys/ (git-ignored)"

say "publish the committed policies to dev"
run "$WARD" publish --env dev || fail "publish v1"
v1=$("$WARD" verify --env dev -o json 2>/dev/null | sed -n 's/.*"digest": "\(.*\)".*/\1/p')
[ -n "$v1" ] || fail "dev v1 does not verify"
ok "dev v1 is $v1"

say "a policy change, committed and published: dev v2"
sed -i 's/mode: enforce /mode: warn    /' policies/example-image-policy.yaml
git commit -qam "warn only while we roll out"
run "$WARD" publish --env dev || fail "publish v2"
"$WARD" verify --env dev -o json 2>/dev/null | grep -q '"version": 2' || fail "dev does not serve v2"
ok "dev serves v2"

say "promote dev to staging: the same bytes, nothing rebuilt"
run "$WARD" promote --from dev --to staging || fail "promote"
d=$("$WARD" verify --env dev -o json 2>/dev/null | sed -n 's/.*"digest": "\(.*\)".*/\1/p')
s=$("$WARD" verify --env staging -o json 2>/dev/null | sed -n 's/.*"digest": "\(.*\)".*/\1/p')
[ "$d" = "$s" ] || fail "staging serves $s, dev $d"
ok "staging serves $s, the digest dev serves"

say "the bundle is reproducible: two builds, and a fresh clone, give one digest"
a=$("$WARD" bundle build -o /tmp/ward-demo-a.tgz 2>/dev/null)
b=$("$WARD" bundle build -o /tmp/ward-demo-b.tgz 2>/dev/null)
git clone -q . ../clone
c=$(cd ../clone && "$WARD" bundle build -o /tmp/ward-demo-c.tgz 2>/dev/null)
rm -f /tmp/ward-demo-{a,b,c}.tgz
echo "     $a"; echo "     $b"; echo "     $c (fresh clone)"
[ "$a" = "$b" ] && [ "$a" = "$c" ] && [ "$a" = "$d" ] || fail "builds differ"
ok "same sha256 each time, and the one dev and staging serve"

say "a client pins root v1 and verifies staging, as the controller will"
mkdir -p ../client && cp tuf/metadata/1.root.json ../client/pinned-root.json
run "$WARD" verify --env staging --root ../client/pinned-root.json --state-dir ../client/state || fail "verify"
ok "verified through the pinned root; trusted metadata kept in ../client/state"

say "the webhook's decision, offline: ward check against what staging enforces"
cat > ../deploy.yaml <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: stray, namespace: apps}
spec:
  selector: {matchLabels: {app: stray}}
  template:
    metadata: {labels: {app: stray}}
    spec:
      containers:
      - name: app
        image: docker.io/library/busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000
YAML
run "$WARD" check -f ../deploy.yaml --repo . --env staging --root ../client/pinned-root.json
rc=$?
[ "$rc" = 1 ] || fail "check exited $rc, want 1 (denied)"
ok "denied: no ImagePolicy covers docker.io/library/busybox, and bundles deny unmatched images"
run "$WARD" test || fail "ward test"
ok "the policy test cases in tests/ pass"

say "roll dev back: the bundle of v1 re-signed as v3"
cp tuf/metadata/timestamp.json ../old-timestamp.json
run "$WARD" rollback --env dev --to-version 1 || fail "rollback"
run "$WARD" verify --env dev --root ../client/pinned-root.json --state-dir ../client/state || fail "verify v3"
ok "dev serves v3 with v1's policies: going back means going forward"

say "an attacker replays the old timestamp: refused, the client keeps v3"
cp tuf/metadata/timestamp.json ../good-timestamp.json
cp ../old-timestamp.json tuf/metadata/timestamp.json
run "$WARD" verify --env dev --root ../client/pinned-root.json --state-dir ../client/state
rc=$?
[ "$rc" = 0 ] && fail "the replayed metadata was accepted"
[ "$rc" = 1 ] || fail "verify exited $rc, want 1 (verification failed)"
cp ../good-timestamp.json tuf/metadata/timestamp.json
"$WARD" verify --env dev --root ../client/pinned-root.json --state-dir ../client/state -o json 2>/dev/null | grep -q '"version": 3' || fail "v3 no longer verifies"
ok "rollback attack refused; v3 still verifies"

say "timestamp refresh: the online key keeps clients from freezing"
run "$WARD" timestamp refresh || fail "timestamp refresh"
ok "timestamp re-signed"

printf '\n\033[32mAll %d steps behaved as expected.\033[0m\n' "$step"
