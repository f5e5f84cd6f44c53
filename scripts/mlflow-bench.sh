#!/usr/bin/env bash
# The MLflow client into labd vs into a real `mlflow server` (SQLite), on this machine: log_batch points/s and
# search_runs over 2000 runs, through the client and over plain HTTP (tests/mlflow/bench.py).
#   scripts/mlflow-bench.sh [--small] [--json FILE]
# Uses target/release/labd (built when missing; LABD_BIN names another) and the two Pythons of the MLflow
# tests (LABD_MLFLOW_PYTHON with mlflow-skinny, LABD_MLFLOW_SERVER_PYTHON with mlflow), made when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${XDG_CACHE_HOME:-$HOME/.cache}/labd"
. scripts/venv.sh
if [ -z "${LABD_MLFLOW_PYTHON:-}" ]; then
  venv "$cache/mlflow-venv" tests/mlflow/requirements.txt mlflow
  LABD_MLFLOW_PYTHON="$cache/mlflow-venv/bin/python"
fi
if [ -z "${LABD_MLFLOW_SERVER_PYTHON:-}" ]; then
  venv "$cache/mlflow-server-venv" tests/mlflow/server-requirements.txt mlflow.server
  LABD_MLFLOW_SERVER_PYTHON="$cache/mlflow-server-venv/bin/python"
fi
labd="${LABD_BIN:-target/release/labd}"
if [ ! -x "$labd" ]; then cargo build --release -p labd --bin labd; fi
exec "$LABD_MLFLOW_PYTHON" tests/mlflow/bench.py --labd "$labd" --server-python "$LABD_MLFLOW_SERVER_PYTHON" "$@"
