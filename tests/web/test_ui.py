"""The web view in a real headless Chromium (Debian's `chromium`, driven with Playwright for Python) against a
real labd: the experiments table shows the runs, a filter narrows them, a run page draws its curves (checked on
the canvas's pixels, not the DOM), the compare page overlays two runs, a live point appears, an ingest error is
visible. Screenshots go to --out. Run by tests/tests/web.rs, which starts labd on a corpus.

Usage: test_ui.py --addr URL --live-log FILE --bad-log FILE --out DIR
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


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what, flush=True)


def wait_ready(page, name, timeout=15000):
    page.wait_for_selector(f'body[data-ready="{name}"]', timeout=timeout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--live-log", required=True)
    ap.add_argument("--bad-log", required=True)
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

        for path, name in [("/sweeps", "sweeps"), ("/benchmarks", "benchmarks")]:
            page.goto(a.addr + path)
            wait_ready(page, name)
            page.screenshot(path=os.path.join(a.out, name + ".png"), full_page=True)
        check(not errors, f"no script errors ({errors})")
        browser.close()
    print("all web checks passed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report and fail
        print("FAILED:", e, file=sys.stderr)
        sys.exit(1)
