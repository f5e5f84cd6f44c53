#!/usr/bin/env bash
# Fuzzes every parser and the event decoders with cargo fuzz (libFuzzer), SECONDS each (default 60), starting
# from the format fixtures; prints each target's executions. CI runs it for a few seconds per target.
# Finds land in fuzz/artifacts/<target>/; reproduce one with `cargo fuzz run <target> <file>`.
# Installs cargo-fuzz when it is missing. cargo fuzz needs nightly flags: on a stable toolchain they are
# enabled with RUSTC_BOOTSTRAP=1 (the sanitizer is off, so nothing else of nightly is used).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
# A debug build by default (it builds in half the time, and CI runs only seconds); LABD_FUZZ_RELEASE=1
# builds optimized for long runs.
flags=(-s none --dev)
if [ "${LABD_FUZZ_RELEASE:-0}" = 1 ]; then flags=(-s none -O); fi
cargo fuzz build "${flags[@]}"

seeds() { # target -> seed folders from the fixtures
  local f=tests/fixtures/formats
  case "$1" in
    runlog|runlog_line) echo "$f/drgen examples" ;;
    drgen) echo "$f/drgen" ;;
    hf_trainer_state) echo "$f/huggingface" ;;
    tensorboard) echo "$f/tensorboard" ;;
    lightning_csv) echo "$f/lightning" ;;
    mlflow_metric|mlflow_run) echo "$f/mlflow/mlruns" ;;
    mlflow_sqlite) echo "$f/mlflow/sqlite" ;;
    expmgr) echo "$f/expmgr" ;;
    event_msgpack) echo "schemas/samples" ;;
    event_block) echo "schemas/samples eventlog/samples" ;;
    shipment) echo "eventlog/samples" ;;
  esac
}

total=0
for target in $(cargo fuzz list); do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  # Seed files, flattened, with the two leading bytes the source targets read as the split point.
  for dir in $(seeds "$target"); do
    [ -d "$dir" ] || continue
    find "$dir" -type f -size -1M | while read -r file; do
      name="$corpus/seed-$(printf '%s' "$file" | sha1sum | cut -c1-16)"
      [ -e "$name" ] || { printf '\x40\x00'; cat "$file"; } > "$name"
    done
  done
  out=$(cargo fuzz run "${flags[@]}" "$target" "$corpus" -- -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 2>&1) || {
    printf '%s\n' "$out" | tail -40
    echo "fuzz target $target FAILED; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  }
  runs=$(printf '%s\n' "$out" | grep -o 'Done [0-9]* runs' | grep -o '[0-9]*' || echo 0)
  total=$((total + runs))
  printf '%-18s %12s executions in %ss\n' "$target" "$runs" "$seconds"
done
printf '%-18s %12s executions\n' "all targets" "$total"
