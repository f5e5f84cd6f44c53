#!/usr/bin/env bash
# The full crash loop: kill -9 labd at random moments CYCLES times (default 100) while a corpus of every format
# grows and a sweep runs; after each restart nothing committed is lost, no completed trial runs again, and the
# views equal a replay of the log. CI runs the same test with 8 cycles. Repeat a run with LABD_CRASH_SEED.
set -euo pipefail
cd "$(dirname "$0")/.."
export LABD_CRASH_CYCLES="${1:-100}"
features=()
if [ -n "${LIBTORCH:-}" ]; then features=(--features labd-cmr/torch); fi
cargo build --workspace --bins "${features[@]}"
exec cargo test --workspace "${features[@]}" --test crash crash_loop -- --nocapture
