#!/usr/bin/env bash
# labd's TPE (and quasi-random and random search) against Optuna's TPE on Branin, Hartmann-6 and a noisy 20-D
# sphere: the best value found after 50 and 200 trials, median and quartiles over 20 seeds.
#   scripts/search-bench.sh [--small]      (--small: 3 seeds, 60 trials; CI's form)
# Builds labd-search-bench (release; LABD_SEARCH_BENCH names another binary) and installs Optuna into
# ~/.cache/labd/optuna-venv (tests/search/requirements.txt) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
args=(--seeds 20 --trials 200)
if [ "${1:-}" = --small ]; then args=(--seeds 3 --trials 60); fi
venv="${LABD_OPTUNA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/labd/optuna-venv}"
. scripts/venv.sh
venv "$venv" tests/search/requirements.txt optuna
bench="${LABD_SEARCH_BENCH:-target/release/labd-search-bench}"
if [ -z "${LABD_SEARCH_BENCH:-}" ]; then cargo build --release -p labd --bin labd-search-bench; fi
out=$(mktemp -d)
"$bench" "${args[@]}" --json > "$out/labd.json"
"$venv/bin/python" tests/search/optuna_bench.py "${args[@]}" > "$out/optuna.json"
python3 - "$out/labd.json" "$out/optuna.json" <<'PY'
import json, sys
labd, optuna = (json.load(open(p)) for p in sys.argv[1:3])
print(f"{'function':>15} {'trials':>6}  {'labd tpe':>24}  {'optuna tpe':>24}  {'labd halton':>11}  {'labd random':>11}  {'optuna random':>13}")
for f in labd:
    for n in labd[f]["tpe"]:
        q = lambda src, s: src[f][s][n]
        iq = lambda x: f"{x['median']:.4f} [{x['q1']:.3f}, {x['q3']:.3f}]"
        print(f"{f:>15} {n:>6}  {iq(q(labd, 'tpe')):>24}  {iq(q(optuna, 'optuna_tpe')):>24}  "
              f"{q(labd, 'halton')['median']:>11.4f}  {q(labd, 'random')['median']:>11.4f}  {q(optuna, 'optuna_random')['median']:>13.4f}")
print("(median best value found [quartiles] over the seeds; all functions minimized: Branin's minimum 0.397887, "
      "Hartmann-6's -3.32237, the sphere's 0)")
PY
