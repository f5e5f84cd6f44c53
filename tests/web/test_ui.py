"""The web view in a real headless Chromium (Debian's `chromium`, driven with Playwright for Python) against a
real labd: the experiments table shows the runs, a filter narrows them, a run page draws its curves (checked on
the canvas's pixels, not the DOM), the compare page overlays two runs, a live point appears, an ingest error is
visible, an alert's badge appears in the header and its page lists it. Screenshots go to --out. Run by tests/tests/web.rs, which starts labd on a corpus.

Usage: test_ui.py --addr URL --live-log FILE --bad-log FILE --inbox DIR --train sweeps/examples/train.py --out DIR
"""

import argparse
import json
import os
import sys
import time

from playwright.sync_api import sync_playwright

BLUE = (0x25, 0x63, 0xEB)
RED = (0xDC, 0x26, 0x26)

# Counts the pixels of each color (within a tolerance) on every canvas inside `sel`.
COUNT_PIXELS = """([sel, colors]) => {
  const counts = colors.map(() => 0);
  for (const c of document.querySelectorAll(sel + ' canvas')) {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] < 200) continue;
      colors.forEach(([r, g, b], k) => {
        if (Math.abs(d[i] - r) < 40 && Math.abs(d[i + 1] - g) < 40 && Math.abs(d[i + 2] - b) < 40) counts[k]++;
      });
    }
  }
  return counts;
}"""


def check(cond, what, detail=""):
    if not cond:
        raise AssertionError(what + (": " + detail if detail else ""))
    print("ok:", what, flush=True)


def poll(page, expr, timeout, what):
    """Waits until the async expression `expr` evaluates truthy in the page."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if page.evaluate(expr):
            return
        time.sleep(0.3)
    raise AssertionError("timed out waiting for " + what)


def wait_ready(page, name, timeout=15000):
    page.wait_for_selector(f'body[data-ready="{name}"]', timeout=timeout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--live-log", required=True)
    ap.add_argument("--bad-log", required=True)
    ap.add_argument("--inbox", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        # The experiments table.
        page.goto(a.addr + "/runs")
        wait_ready(page, "runs")
        rows = page.locator("#runs-table tbody tr")
        check(rows.count() == 31, f"the table shows the 31 runs ({rows.count()})")
        check("31 runs" in page.inner_text("#runs-total"), "the total says 31 runs")
        header = page.inner_text("#runs-table thead")
        check("optim.lr" in header, "the varying hyperparameter is a column")
        page.screenshot(path=os.path.join(a.out, "runs.png"), full_page=True)

        # A filter narrows them (and is a URL).
        page.fill("#filter", "optim.lr == 0.01")
        page.press("#filter", "Enter")
        page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length === 10")
        check("where=" in page.url, "the filter is in the URL")
        texts = page.locator("#runs-table tbody tr").all_inner_texts()
        check(all("lr0.01" in t for t in texts), "every row left has lr 0.01")
        # Sorting by a column.
        page.click("#runs-table th:has-text('name')")
        page.wait_for_function("document.querySelector('#runs-table th.sorted') !== null")
        names = [t.split("\t")[1].strip() for t in page.locator("#runs-table tbody tr").all_inner_texts()]
        check(names == sorted(names), "sorted by name")
        page.screenshot(path=os.path.join(a.out, "runs-filtered.png"), full_page=True)

        # A run page draws its curves.
        page.click("#runs-table tbody tr >> nth=0 >> a")
        wait_ready(page, "run")
        run_url = page.url
        cards = page.locator("#charts .card")
        check(cards.count() >= 2, f"one chart per metric ({cards.count()})")
        blue = page.evaluate(COUNT_PIXELS, ["#charts .card:first-child", [BLUE]])[0]
        check(blue > 100, f"the curve is drawn on the canvas ({blue} pixels of its color)")
        check("optim" in page.inner_text("main"), "the config tree is shown")
        page.screenshot(path=os.path.join(a.out, "run.png"), full_page=True)

        # Zooming fetches the visible range at full resolution.
        box = page.locator("#charts .card:first-child .u-over").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2, steps=5)
        page.mouse.up()
        page.wait_for_selector("#charts .card:first-child[data-zoomed]")
        zoomed = int(page.get_attribute("#charts .card:first-child", "data-zoomed"))
        check(zoomed > 0, f"the zoomed range was fetched ({zoomed} points)")

        # Compare overlays two runs: both colors on one chart; the differing config key is marked.
        ids = page.evaluate(
            "fetch('/api/v1/table?sort=name&where=' + encodeURIComponent('optim.lr == 0.1'))"
            ".then(r => r.json()).then(t => t.rows.slice(0, 2).map(r => r.id))"
        )
        page.goto(a.addr + "/compare?ids=" + ",".join(ids))
        wait_ready(page, "compare")
        blue, red = page.evaluate(COUNT_PIXELS, ["#charts .card:first-child", [BLUE, RED]])
        check(blue > 50 and red > 50, f"two runs overlaid ({blue} and {red} pixels)")
        diff = page.locator("#config-diff tr.diff").all_inner_texts()
        check(any("seed" in d for d in diff), f"differences are marked ({diff})")
        page.screenshot(path=os.path.join(a.out, "compare.png"), full_page=True)

        # A live point appears without reloading.
        page.goto(a.addr + "/runs")
        wait_ready(page, "runs")
        live_id = page.evaluate(
            "fetch('/api/v1/table?where=' + encodeURIComponent('name == \"live\"')).then(r => r.json()).then(t => t.rows[0].id)"
        )
        page.goto(a.addr + "/runs/" + live_id)
        wait_ready(page, "run")
        before = int(page.get_attribute("#charts .card:first-child", "data-points"))
        with open(a.live_log, "a") as f:
            f.write(json.dumps({"kind": "metrics", "step": 1000, "values": {"loss": 0.05, "acc": 0.99}}) + "\n")
        page.wait_for_function(
            f"Number(document.querySelector('#charts .card:first-child').dataset.points) > {before}", timeout=10000
        )
        check(True, "a new point appeared on the open run page")
        page.screenshot(path=os.path.join(a.out, "live-point.png"), full_page=True)

        # The live page shows events and ingest errors as they come.
        page.goto(a.addr + "/live")
        wait_ready(page, "live")
        with open(a.bad_log, "a") as f:
            f.write("this is not json\n")
        page.wait_for_function("document.querySelector('#live-errors').innerText.includes('not a JSON object')", timeout=10000)
        check(True, "an ingest error is visible on the live page")
        page.screenshot(path=os.path.join(a.out, "live.png"), full_page=True)

        # Groups: a mean curve with a band, and the table with intervals.
        page.goto(a.addr + "/groups?metric=loss")
        wait_ready(page, "groups")
        groups = page.locator("#group-table tbody tr").count()
        check(groups == 4, f"four groups by learning rate, the live run its own ({groups})")
        drawn = page.evaluate(COUNT_PIXELS, ["#group-chart", [BLUE]])[0]
        check(drawn > 50, "the groups' mean curves are drawn")
        page.screenshot(path=os.path.join(a.out, "groups.png"), full_page=True)

        # A sweep: its progress, trials, the metric against its parameter and the best configuration.
        spec = {"sweep_id": "web", "base_config": {"optim": {"lr": 0.1}, "epochs": 2, "steps_per_epoch": 3, "seed": 0},
                "sweep": {"optim.lr": [0.1, 0.01]}, "repeats": 2, "parallel": 2,
                "command": f"python3 {a.train} {{config}}", "resources": {"cpus": 1, "ram": "64M"},
                # Two objectives that pull apart (lower loss means higher accuracy): both rates are on the front.
                "objectives": [{"metric": "train/loss"}, {"metric": "val/acc", "direction": "minimize"}]}
        status = page.evaluate(
            "spec => fetch('/api/v1/sweeps', {method: 'POST', headers: {'content-type': 'application/json'},"
            " body: JSON.stringify({spec})}).then(r => r.status)", spec)
        check(status == 200, f"sweep submitted ({status})")
        page.goto(a.addr + "/sweeps")
        wait_ready(page, "sweeps")
        poll(page, "fetch('/api/v1/sweeps/web?brief=true').then(r => r.json()).then(s => s.state === 'finished')",
             60, "the sweep to finish")
        page.goto(a.addr + "/sweeps/web")
        wait_ready(page, "sweep", timeout=30000)
        text = page.inner_text("main")
        check("4/4 done" in text and "Best:" in text and "[object " not in text and "null" not in text, "the sweep's progress and best configuration are shown", text[:600])
        drawn = page.evaluate(COUNT_PIXELS, ["main .grid", [BLUE]])[0]
        check(drawn > 20, f"the metric is drawn against the parameter ({drawn} pixels)")
        on_front = page.locator("#pareto-plot circle.front").count()
        check(on_front == 2, f"the Pareto front of the two objectives is plotted ({on_front} points on it)")
        check("2 of 2 configurations are on the front" in text, "the front's table says how many are on it")
        page.screenshot(path=os.path.join(a.out, "sweep.png"), full_page=True)

        # A benchmark dropped in as benchmark lines: overhead and memory against sequence length.
        lines = [{"kind": "bench", "bench": "web-bench", "name": "web", "planned": 6}]
        for n in (64, 128, 256):
            base, cmr = n * 1e-5, n * 1.2e-5
            lines.append({"kind": "bench_result", "bench": "web-bench", "analysis": "overhead",
                          "params": {"sequence_length": n, "batch_size": 1},
                          "values": {"baseline_time": base, "full_cmr_time": cmr, "overhead_percentage": 20.0,
                                     "memory_utilization": 0.5}})
            lines.append({"kind": "bench_result", "bench": "web-bench", "analysis": "memory",
                          "params": {"sequence_length": n, "batch_size": 1},
                          "values": {"peak_memory_baseline": n * 1e5, "peak_memory_cmr": n * 1.1e5, "buffer_bytes": 1e5}})
        lines.append({"kind": "bench_end", "bench": "web-bench", "status": "completed"})
        with open(os.path.join(a.inbox, "bench.jsonl"), "w") as f:
            f.write("".join(json.dumps(x) + "\n" for x in lines))
        poll(page, "fetch('/api/v1/benchmarks/web-bench').then(r => r.json()).then(b => b.status === 'completed')",
             10, "the dropped benchmark")
        page.goto(a.addr + "/benchmarks")
        wait_ready(page, "benchmarks")
        check("web-bench" in page.inner_text("main"), "the benchmark is listed")
        page.goto(a.addr + "/benchmarks/web-bench")
        wait_ready(page, "benchmark")
        blue, red = page.evaluate(COUNT_PIXELS, ["main .grid .card:first-child", [BLUE, RED]])
        check(blue > 20 and red > 20, f"baseline and CMR time are drawn against sequence length ({blue}, {red})")
        page.screenshot(path=os.path.join(a.out, "benchmark.png"), full_page=True)
        # Alerts: a NaN rule, a NaN point on the live run; the header's badge shows it without a reload and the
        # alerts page lists it.
        status = page.evaluate(
            """fetch('/api/v1/alerts/rules', {method: 'POST', headers: {'Content-Type': 'application/json'},
               body: JSON.stringify({name: 'web-nan', kind: 'nan', metric: 'loss'})}).then(r => r.status)"""
        )
        check(status == 201, f"an alert rule is set over the API ({status})")
        check(page.is_hidden("#alerts-badge"), "no alert badge before anything fired")
        with open(a.live_log, "a") as f:
            f.write('{"kind": "metrics", "step": 1001, "values": {"loss": NaN}}\n')
        page.wait_for_selector("#alerts-badge:not([hidden])", timeout=10000)
        check("1 alert" in page.inner_text("#alerts-badge"), "the header's badge counts the open alert")
        page.click("#alerts-badge")
        wait_ready(page, "alerts")
        text = page.inner_text("#alerts-firings")
        check("web-nan" in text and "NaN at step 1001" in text, "the alerts page lists the firing", text[:300])
        page.screenshot(path=os.path.join(a.out, "alerts.png"), full_page=True)
        body_texts = page.evaluate("document.body.innerText")
        check("[object " not in body_texts, "no element rendered as text")
        check(not errors, f"no script errors ({errors})")
        browser.close()
    print("all web checks passed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report and fail
        print("FAILED:", e, file=sys.stderr)
        sys.exit(1)
