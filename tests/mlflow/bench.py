"""The MLflow client against labd and against a real `mlflow server`, side by side, on this machine.

Measures, for each server (started here on a free loopback port, on a fresh temporary store):
- log_batch: points a second through MlflowClient.log_batch (1000 metrics a call, the client's maximum), over
  `runs` runs, timed from the first call to the last answer;
- search_runs: the time to read all of `search_runs` runs of one experiment through MlflowClient.search_runs
  (paging 1000 at a time) with a filter and an order, median of five;
- the same two over plain HTTP (request bodies made beforehand, answers not parsed into MLflow's entities),
  which is what the server itself costs: the client's own work per call is most of the time above.

Usage (the client's Python, mlflow-skinny):
  python bench.py --labd target/release/labd --server-python <python with mlflow> [--small] [--json out.json]
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

parser = argparse.ArgumentParser()
parser.add_argument("--labd", required=True)
parser.add_argument("--server-python", required=True)
parser.add_argument("--small", action="store_true", help="a quick run (CI): fewer points and runs")
parser.add_argument("--json")
args = parser.parse_args()

RUNS, BATCHES, SEARCH_RUNS = (2, 2, 50) if args.small else (20, 10, 2000)
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
import requests  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param  # noqa: E402


def say(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url, proc, what):
    started = time.time()
    while time.time() - started < 120:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not answer at {url}")


def start_labd(tmp):
    port = free_port()
    proc = subprocess.Popen(
        [args.labd, "--data-dir", os.path.join(tmp, "labd"), "--watch", os.path.join(tmp, "inbox"),
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "labd.log"), "w"))
    uri = f"http://127.0.0.1:{port}"
    wait(uri + "/api/v1/health", proc, "labd")
    return proc, uri


def start_mlflow(tmp):
    port = free_port()
    proc = subprocess.Popen(
        [args.server_python, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
         "--artifacts-destination", os.path.join(tmp, "artifacts")],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "mlflow.log"), "w"))
    uri = f"http://127.0.0.1:{port}"
    wait(uri + "/health", proc, "mlflow server")
    return proc, uri


def log_batch(client, name):
    exp = client.create_experiment("bench-log-batch")
    runs = [client.create_run(exp).info.run_id for _ in range(RUNS)]
    points = 0
    started = time.perf_counter()
    for i, run in enumerate(runs):
        for b in range(BATCHES):
            base = b * 250
            metrics = [
                Metric(key, 1.0 / (base + s + 1) + k * 0.001, 1_700_000_000_000 + base + s, base + s)
                for s in range(250) for k, key in enumerate(("loss", "acc", "lr", "grad_norm"))
            ]
            client.log_batch(run, metrics=metrics)
            points += len(metrics)
        say(f"[{name}] log_batch: run {i + 1}/{RUNS}, {points} points")
    secs = time.perf_counter() - started
    return {"points": points, "seconds": secs, "points_per_second": points / secs}


def search(client, name):
    exp = client.create_experiment("bench-search")
    for i in range(SEARCH_RUNS):
        run = client.create_run(exp, run_name=f"r{i}").info.run_id
        client.log_batch(run, metrics=[Metric("loss", (i % 97) / 97, 1_700_000_000_000, 0)],
                         params=[Param("lr", str(10 ** -(i % 4))), Param("seed", str(i))])
        if (i + 1) % 500 == 0:
            say(f"[{name}] search: {i + 1}/{SEARCH_RUNS} runs created")
    times, found = [], 0
    for _ in range(5):
        started = time.perf_counter()
        found, token = 0, None
        while True:
            page = client.search_runs([exp], "metrics.loss < 2 and params.lr != 'x'", max_results=1000,
                                      order_by=["metrics.loss DESC"], page_token=token)
            found += len(page)
            token = page.token
            if not token:
                break
        times.append(time.perf_counter() - started)
    assert found == SEARCH_RUNS, (found, SEARCH_RUNS)
    raw = []
    http = requests.Session()
    for _ in range(5):
        started = time.perf_counter()
        token, n = None, 0
        while True:
            body = {"experiment_ids": [exp], "filter": "metrics.loss < 2 and params.lr != 'x'",
                    "max_results": 1000, "order_by": ["metrics.loss DESC"]}
            if token:
                body["page_token"] = token
            page = http.post(client.tracking_uri + "/api/2.0/mlflow/runs/search", json=body).json()
            n += len(page.get("runs", []))
            token = page.get("next_page_token")
            if not token:
                break
        raw.append(time.perf_counter() - started)
    assert n == SEARCH_RUNS, (n, SEARCH_RUNS)
    return {"runs": found, "seconds_median": statistics.median(times), "seconds_all": times,
            "http_seconds_median": statistics.median(raw)}


def raw_log_batch(client, name):
    exp = client.create_experiment("bench-raw-log-batch")
    run = client.create_run(exp).info.run_id
    bodies = []
    for b in range(RUNS * BATCHES):
        base = b * 250
        bodies.append(json.dumps({"run_id": run, "metrics": [
            {"key": key, "value": 1.0 / (base + s + 1) + k * 0.001, "timestamp": 1_700_000_000_000 + base + s,
             "step": base + s}
            for s in range(250) for k, key in enumerate(("loss", "acc", "lr", "grad_norm"))]}))
    http = requests.Session()
    started = time.perf_counter()
    for body in bodies:
        r = http.post(client.tracking_uri + "/api/2.0/mlflow/runs/log-batch", data=body,
                      headers={"Content-Type": "application/json"})
        r.raise_for_status()
    secs = time.perf_counter() - started
    say(f"[{name}] log-batch over plain HTTP: {len(bodies) * 1000} points in {secs:.2f} s")
    return {"points": len(bodies) * 1000, "seconds": secs, "points_per_second": len(bodies) * 1000 / secs}


results = {}
with tempfile.TemporaryDirectory() as tmp:
    for name, start in (("labd", start_labd), ("mlflow", start_mlflow)):
        folder = os.path.join(tmp, name)
        os.makedirs(folder)
        proc, uri = start(folder)
        try:
            mlflow.set_tracking_uri(uri)
            client = MlflowClient(uri)
            results[name] = {"log_batch": log_batch(client, name), "search_runs": search(client, name),
                             "http_log_batch": raw_log_batch(client, name)}
        finally:
            proc.terminate()
            proc.wait()

lb = {k: v["log_batch"] for k, v in results.items()}
sr = {k: v["search_runs"] for k, v in results.items()}
print(f"MLflow client {mlflow.__version__}, {'small' if args.small else 'full'} run")
print(f"{'':34}{'labd':>14}{'mlflow server':>16}{'labd faster':>13}")
print(f"{'log_batch points/s':34}{lb['labd']['points_per_second']:>14,.0f}"
      f"{lb['mlflow']['points_per_second']:>16,.0f}"
      f"{lb['labd']['points_per_second'] / lb['mlflow']['points_per_second']:>12.1f}x")
print(f"{f'search_runs, {SEARCH_RUNS} runs (s, median)':34}{sr['labd']['seconds_median']:>14.3f}"
      f"{sr['mlflow']['seconds_median']:>16.3f}"
      f"{sr['mlflow']['seconds_median'] / sr['labd']['seconds_median']:>12.1f}x")
hb = {k: v["http_log_batch"] for k, v in results.items()}
print(f"{'  over plain HTTP: log-batch pts/s':34}{hb['labd']['points_per_second']:>14,.0f}"
      f"{hb['mlflow']['points_per_second']:>16,.0f}"
      f"{hb['labd']['points_per_second'] / hb['mlflow']['points_per_second']:>12.1f}x")
print(f"{'  over plain HTTP: search_runs (s)':34}{sr['labd']['http_seconds_median']:>14.3f}"
      f"{sr['mlflow']['http_seconds_median']:>16.3f}"
      f"{sr['mlflow']['http_seconds_median'] / sr['labd']['http_seconds_median']:>12.1f}x")
if args.json:
    with open(args.json, "w") as fh:
        json.dump(results, fh, indent=1)
