"""The JupyterLab extension in the browser: how fresh the %%track badges are, and how fast a comparison draws.

1. Freshness: a notebook of 20 %%track cells, each printing ``time.time()`` as its last statement, is run
   (Run All) in real JupyterLab + Debian Chromium. For each cell: the time from that print (kernel clock)
   to its badge turning FINISHED (browser clock, same machine), through the server's live stage events.
   Anchor, side by side in the same page and run: polling the same server's REST read of the notebook
   (GET notebook?path=) every 2 s, as Kale's 2 s poll does (jupyterlab-git polls every 3 s): the time until a
   poll first shows the stage FINISHED.
2. Comparison: 200 runs of a notebook in the store; select all, Compare, until the parallel coordinates
   are drawn (click to the chart's SVG/canvas in the page). Median of 5.

Usage: python benchmarks/bench_lab_browser.py [--cells 20] [--runs 200] [--dark]
Goals: freshness p95 <= 1 s; 200 runs drawn <= 500 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import lab
from tests.notebooks import write_notebook

POLL_MS = 2000  # Kale's poll interval; jupyterlab-git polls every 3 s

# Records every badge change with the browser's clock, and runs the polling anchor.
OBSERVE = """
(args) => {
  window.__badges = [];
  new MutationObserver(records => {
    const now = Date.now();
    for (const r of records) {
      const e = r.target;
      if (e.classList && e.classList.contains('mlops-nb-cell-badge')) {
        window.__badges.push({stage: e.dataset.stage, status: e.dataset.status, t: now});
      }
    }
  }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-status']});
  window.__polled = {};
  const poll = async () => {
    const answer = await fetch(args.url, {headers: {Authorization: 'token ' + args.token}});
    const body = await answer.json();
    const now = Date.now();
    for (const s of (body.run ? body.run.stages : [])) {
      if (s.status === 'FINISHED' && !(s.stage in window.__polled) && s.start_time >= args.since) {
        window.__polled[s.stage] = now;
      }
    }
  };
  window.__poller = setInterval(poll, args.every);
}
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def freshness(page, server, cells: int) -> None:
    stages = [f"s{i:02d}" for i in range(cells)]
    write_notebook(
        server.root / "fresh.ipynb",
        "%load_ext mlops_nb\nimport time",
        *(f"%%track {s}\nv{s} = {i} * 2\nprint('END', repr(time.time()))" for i, s in enumerate(stages)),
    )
    lab.open_notebook(page, server, "fresh.ipynb")
    page.wait_for_function(f"() => document.querySelectorAll('.mlops-nb-cell-badge').length === {cells}")
    since = int(time.time() * 1000)
    url = f"{server.url}/mlops-nb/api/notebook?path=fresh.ipynb"
    page.evaluate(OBSERVE, {"url": url, "token": server.token, "every": POLL_MS, "since": since})
    lab.run_command(page, "Run", "Run All Cells")
    page.wait_for_function(
        f"() => document.querySelectorAll('.mlops-nb-cell-badge[data-status=FINISHED]').length === {cells}",
        timeout=300_000,
    )
    page.wait_for_function(f"() => Object.keys(window.__polled).length === {cells}", timeout=120_000)
    ends = page.eval_on_selector_all(
        ".jp-CodeCell .jp-OutputArea-output pre",
        "els => els.map(e => e.textContent).filter(t => t.startsWith('END '))",
    )
    kernel = [float(t.split()[1]) * 1000 for t in ends]
    badges = page.evaluate("window.__badges")
    polled = page.evaluate("window.__polled")
    live, anchor = [], []
    for stage, end in zip(stages, kernel, strict=True):
        shown = min(b["t"] for b in badges if b["stage"] == stage and b["status"] == "FINISHED")
        live.append((shown - end) / 1000)
        anchor.append((polled[stage] - end) / 1000)
    print(f"freshness over {cells} %%track cells (cell's last statement -> badge FINISHED in the browser)")
    print(
        f"  live events : p50 {statistics.median(live):.3f} s   p95 {percentile(live, 0.95):.3f} s   "
        f"max {max(live):.3f} s"
    )
    print(
        f"  anchor: REST poll every {POLL_MS / 1000:.0f} s (Kale's interval): p50 {statistics.median(anchor):.3f} s   "
        f"p95 {percentile(anchor, 0.95):.3f} s"
    )
    print(
        f"  ratio anchor/live: p50 {statistics.median(anchor) / statistics.median(live):.1f}x   "
        f"p95 {percentile(anchor, 0.95) / percentile(live, 0.95):.1f}x   (goal: live p95 <= 1 s)"
    )


def seed_runs(root: Path, n: int) -> None:
    """``n`` job runs of sweep.ipynb with two parameters and two metrics, as a sweep leaves them."""
    import random

    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    from mlops_nb.config import load_settings
    from mlops_nb.tracking import tags

    settings = load_settings(start=root)
    client = MlflowClient(settings.tracking_uri)
    experiment = client.create_experiment("sweep")
    rng = random.Random(0)
    now = int(time.time() * 1000)
    for i in range(n):
        c, depth = 10 ** rng.uniform(-3, 2), rng.randint(1, 12)
        run = client.create_run(
            experiment,
            start_time=now - (n - i) * 1000,
            tags={tags.KIND: "job", tags.NOTEBOOK: str(root / "sweep.ipynb")},
            run_name=f"job-{i:03d}",
        )
        client.log_batch(
            run.info.run_id,
            metrics=[
                Metric("accuracy", 0.95 - abs(rng.gauss(0, 0.05)) - 0.01 * abs(c - 0.1), now, 0),
                Metric("f1_macro", 0.94 - abs(rng.gauss(0, 0.05)), now, 0),
            ],
            params=[Param("C", f"{c:.4g}"), Param("depth", str(depth))],
            tags=[RunTag("mlflow.runName", f"job-{i:03d}")],
        )
        client.set_terminated(run.info.run_id, "FINISHED", end_time=now - (n - i) * 1000 + 500)


def comparison(page, server, n: int, repeats: int = 5) -> None:
    seed_runs(server.root, n)
    write_notebook(server.root / "sweep.ipynb", "%load_ext mlops_nb")
    lab.open_notebook(page, server, "sweep.ipynb")
    page.click("#mlops-nb-sidebar .mlops-nb-tab[data-view='runs']")
    rows = "#mlops-nb-sidebar table.mlops-nb-runs tbody tr"
    page.wait_for_selector(rows)
    while page.locator(rows).count() < n and page.locator("#mlops-nb-sidebar .mlops-nb-more").count():
        shown = page.locator(rows).count()
        page.click("#mlops-nb-sidebar .mlops-nb-more")
        page.wait_for_function(f"() => document.querySelectorAll('{rows}').length > {shown}")
    page.wait_for_function(
        f"() => document.querySelectorAll('#mlops-nb-sidebar table.mlops-nb-runs tbody tr').length === {n}",
        timeout=60_000,
    )
    timings = []
    for _ in range(repeats):
        page.eval_on_selector_all(
            "#mlops-nb-sidebar table.mlops-nb-runs tbody input[type=checkbox]",
            "els => els.forEach(e => { if (!e.checked) e.click(); })",
        )
        took = page.evaluate(
            """() => new Promise(resolve => {
                 const start = performance.now();
                 document.querySelector('#mlops-nb-sidebar .mlops-nb-compare').click();
                 const check = () => {
                   const drawn = document.querySelector(
                     "#mlops-nb-sidebar .mlops-nb-chart[data-drawn='true'] canvas, " +
                     "#mlops-nb-sidebar .mlops-nb-chart[data-drawn='true'] svg");
                   drawn ? resolve(performance.now() - start) : requestAnimationFrame(check);
                 };
                 check();
               })"""
        )
        timings.append(took / 1000)
    print(f"comparison of {n} runs, click -> parallel coordinates drawn (median of {repeats})")
    print(
        f"  median {statistics.median(timings) * 1000:.0f} ms   all {json.dumps([round(t * 1000) for t in timings])} ms"
    )
    print("  (goal: <= 500 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    if (why := lab.missing()) is not None:
        sys.exit(f"cannot run: {why}")
    with tempfile.TemporaryDirectory() as tmp:
        root, home = Path(tmp, "root"), Path(tmp, "home")
        root.mkdir()
        home.mkdir()
        with lab.running_lab(root, home) as server, lab.chromium() as page:
            freshness(page, server, args.cells)
            comparison(page, server, args.runs)
            errors = [e for e in page.console_errors if "/mlops-nb/api/compare?runs=" not in e]
            if errors:
                print("console errors:", *errors, sep="\n  ")


if __name__ == "__main__":
    main()
