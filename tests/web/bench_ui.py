"""Times the web view in headless Chromium against a real labd: the first render of the experiments page with
10,000 runs, and of one chart overlaying 100 curves of 1,000 points each (the compare page with 100 runs).
Each figure is the median of several fresh page loads, measured from navigation start to the page's
`ready:<view>` mark (data fetched, table or chart drawn).

Usage: bench_ui.py --labd target/release/labd [--runs 10000] [--curves 100] [--points 1000] [--loads 5]
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

from playwright.sync_api import sync_playwright


def corpus(inbox, runs, curves, points):
    os.makedirs(inbox, exist_ok=True)
    lrs = [0.1, 0.03, 0.01, 0.003, 0.001]
    for i in range(runs):
        lr, seed = lrs[i % len(lrs)], i // len(lrs)
        steps = points if i < curves else 10
        with open(os.path.join(inbox, f"run{i:05d}.jsonl"), "w") as f:
            f.write(json.dumps({"kind": "run", "name": f"run{i:05d}", "tags": ["bench"],
                                "config": {"optim": {"lr": lr, "name": "adam"}, "seed": seed,
                                           "model": {"width": [64, 128, 256][i % 3]}}}) + "\n")
            for s in range(steps):
                f.write(json.dumps({"kind": "metrics", "step": s,
                                    "values": {"loss": 2.0 / (1 + s * lr), "acc": 1 - 1.0 / (2 + s * lr)}}) + "\n")
            f.write('{"kind":"status","status":"completed"}\n')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(addr, path):
    with urllib.request.urlopen(addr + path, timeout=30) as r:
        return json.load(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--labd", required=True)
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--curves", type=int, default=100)
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--loads", type=int, default=5)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="labd-web-bench-")
    inbox, data = os.path.join(tmp, "inbox"), os.path.join(tmp, "data")
    t = time.time()
    corpus(inbox, a.runs, a.curves, a.points)
    subprocess.run([a.labd, "--data-dir", data, "--watch", inbox, "--once"], check=True,
                   stderr=subprocess.DEVNULL)
    print(f"corpus: {a.runs} runs, {a.curves} with {a.points} points, written and ingested in "
          f"{time.time() - t:.1f}s", file=sys.stderr)
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    daemon = subprocess.Popen([a.labd, "--data-dir", data, "--watch", inbox, "--listen", f"127.0.0.1:{port}"],
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                if get(addr, "/api/v1/health")["experiments"] == a.runs:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        # Wait for the curve store (it warms up after a start from the checkpoint).
        for _ in range(300):
            try:
                get(addr, "/api/v1/analytics/curves?metric=loss&ids=run00000&points=10")
                break
            except OSError:
                time.sleep(0.1)
        ids = [f"run{i:05d}" for i in range(a.curves)]
        ids = [r["id"] for r in get(addr, "/api/v1/table?sort=name&limit=1000")["rows"][: a.curves]]
        chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
        results = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            for name, url, view in [
                (f"experiments page, {a.runs} runs", addr + "/runs", "runs"),
                (f"{a.curves} curves of {a.points} points (compare page)", addr + "/compare?ids=" + ",".join(ids), "compare"),
            ]:
                times = []
                for _ in range(a.loads):
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    page.goto(url)
                    page.wait_for_selector(f'body[data-ready="{view}"]', timeout=60000)
                    times.append(page.evaluate(f"performance.getEntriesByName('ready:{view}')[0].startTime"))
                    page.close()
                results[name] = {"median_ms": round(statistics.median(times), 1),
                                 "min_ms": round(min(times), 1), "max_ms": round(max(times), 1)}
            browser.close()
        print(json.dumps(results, indent=2))
    finally:
        daemon.terminate()
        daemon.wait()


if __name__ == "__main__":
    main()
