#!/usr/bin/env bash
# Writes tests/fixtures/upgrade/NAME/: a data directory written by the labd of an earlier COMMIT, and what that
# labd answered about it (experiments and sweeps), for tests/tests/upgrade.rs to check that the current labd opens
# it. The earlier labd ingests the format fixtures of its day and a file with a bad line, and runs a small sweep.
# Usage: scripts/make-upgrade-fixture.sh COMMIT NAME     (builds COMMIT in a worktree, into target/upgrade: a
# shared target/ would leave the old binaries in target/debug, where cargo does not notice them)
set -euo pipefail
commit=$1 name=$2
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  git -C "$root" worktree remove --force "$work/src" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
git -C "$root" worktree add -f -q "$work/src" "$commit"
(cd "$work/src" && CARGO_TARGET_DIR="$root/target/upgrade" cargo build -q --workspace --bins)
cp "$root/target/upgrade/debug/labd" "$root/target/upgrade/debug/labctl" "$work/"

mkdir -p "$work/inbox"
cp -r "$work/src/tests/fixtures/formats/." "$work/inbox/"
printf '%s\n' '{"run": "bad-lines", "config": {"lr": 0.1}}' '{"step": 1, "metrics": {"loss": 0.5}}' \
  'not json at all' '{"step": 2, "metrics": {"loss": 0.25}}' > "$work/inbox/bad-lines.jsonl"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export LABD_ADDR="http://127.0.0.1:$port"
"$work/labd" --data-dir "$work/data" --watch "$work/inbox" --listen "127.0.0.1:$port" --sweep-heartbeat 0.3 \
  > "$work/labd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do "$work/labctl" ls >/dev/null 2>&1 && break; sleep 0.2; done
printf '{"optim": {"lr": 0.01}, "epochs": 2, "steps_per_epoch": 3, "seed": 0}' > "$work/base.json"
"$work/labctl" sweep run --base "$work/base.json" --param optim.lr 0.1 0.01 --repeats 2 \
  --command "python3 $work/src/sweeps/examples/train.py {config}" --parallel 2 --id upgrade --tag upgrade --wait \
  >/dev/null
# Ingest settles: the same answer twice, a second apart.
prev=""
for _ in $(seq 60); do
  now=$("$work/labctl" ls --json)
  [ "$now" = "$prev" ] && break
  prev=$now
  sleep 1
done
out="$root/tests/fixtures/upgrade/$name"
rm -rf "$out" && mkdir -p "$out"
"$work/labctl" ls --json > "$out/experiments.json"
"$work/labctl" sweep status upgrade --json > "$out/sweep.json"
kill -TERM "$pid"
wait "$pid" || true
pid=""
cp "$work/data/labd.redb" "$out/labd.redb"
printf 'written by labd %s (%s) on %s\n' "$(git -C "$root" rev-parse --short "$commit")" \
  "$(git -C "$root" log -1 --format=%s "$commit" | cut -c1-80)" "$(date -u +%F)" > "$out/SOURCE"
ls -la "$out"
