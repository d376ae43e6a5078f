"""What ``%%track`` costs and saves (issue 3's anchors: Calkit's ``%%stage`` ~0.2 s per cell, hit or not).

1. A trivial cell with ``%%track`` vs the same cell without, in one real IPython shell: the time the user
   waits, as a cache miss (the input changes every time) and as a cache hit. Medians; goal <= 5 ms added.
2. A pipeline of 10 stages whose work takes >= 10 s, run in a fresh kernel cold (empty cache) and again in
   a fresh kernel warm (all hits): time spent in its tracked cells, kernel start-up excluded. Goal >= 50x.
3. The fingerprint of a 1M x 20 DataFrame.

    python benchmarks/bench_track.py [--cells 300] [--skip-pipeline]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

CALKIT_SECONDS = 0.2


def trivial_cells(n: int) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "mlops_nb")

    def timed(code: str, before: str | None = None) -> float:
        if before:
            shell.run_cell(before)
        t = time.perf_counter()
        result = shell.run_cell(code, silent=True)
        elapsed = time.perf_counter() - t
        assert result.success, result.error_in_exec
        return elapsed

    with contextlib.redirect_stdout(io.StringIO()):  # the cache-hit notes
        for _ in range(20):  # warm-up: imports, the recorder, MLflow in the sender
            timed("%%track warm\ny = i + 1", before="i = 0")
        plain = [timed("y = i + 1", before=f"i = {k}") for k in range(n)]
        miss = [timed("%%track miss\ny = i + 1", before=f"i = {k + 10_000}") for k in range(n)]
        hit = [timed("%%track hit\ny = i + 1", before="i = 1") for _ in range(n)]
    import mlops_nb as mnb

    assert mnb.flush(120)
    p, m, h = (statistics.median(x) * 1e3 for x in (plain, miss, hit))
    print(f"trivial cell, {n} runs each, medians: plain {p:.2f} ms")
    for label, value in (("%%track, cache miss", m), ("%%track, cache hit ", h)):
        added = value - p
        print(
            f"  {label}  {value:.2f} ms  (+{added:.2f} ms; Calkit ~{CALKIT_SECONDS * 1e3:.0f} ms: "
            f"{CALKIT_SECONDS * 1e3 / max(added, 1e-3):.0f}x less)"
        )


PIPELINE_STAGE = """%%track step{i}
import numpy as np
rng = np.random.default_rng({i})
acc{i} = prev.copy()
for _ in range({rounds}):
    m = rng.standard_normal((300, 300))
    acc{i} = acc{i} + np.linalg.svd(m, compute_uv=False)[:10].sum()
prev = acc{i}
"""


def pipeline(rounds: int) -> None:
    import nbformat
    from nbclient import NotebookClient

    cells = [nbformat.v4.new_code_cell("%load_ext mlops_nb\nimport numpy as np\nprev = np.zeros(10)")]
    cells += [nbformat.v4.new_code_cell(PIPELINE_STAGE.format(i=i, rounds=rounds)) for i in range(10)]
    nb = nbformat.v4.new_notebook(cells=cells)

    def tracked_seconds() -> float:
        executed = NotebookClient(nb, kernel_name="python3", timeout=600, record_timing=True).execute()
        total = 0.0
        for cell in executed.cells[1:]:
            timing = cell.metadata["execution"]
            start = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
            total += (end - start).total_seconds()
        return total

    cold = tracked_seconds()
    warm = tracked_seconds()
    print(
        f"10-stage pipeline, tracked cells only: cold {cold:.2f} s, warm (all cache hits, fresh kernel) "
        f"{warm:.3f} s: {cold / warm:.0f}x faster"
    )


def fingerprint_frame() -> None:
    import numpy as np
    import pandas as pd

    from mlops_nb.stages.fingerprint import fingerprint

    frame = pd.DataFrame(np.random.default_rng(0).random((1_000_000, 20)), columns=[f"c{i}" for i in range(20)])
    times = []
    for _ in range(5):
        t = time.perf_counter()
        fingerprint(frame)
        times.append(time.perf_counter() - t)
    print(f"fingerprint of a 1M x 20 DataFrame: median {statistics.median(times) * 1e3:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=300, help="timed runs of the trivial cell (default 300)")
    parser.add_argument("--rounds", type=int, default=150, help="SVDs per pipeline stage (default 150, ~1 s here)")
    parser.add_argument("--skip-pipeline", action="store_true", help="skip the 10-stage kernel pipeline")
    args = parser.parse_args()
    os.chdir(tempfile.mkdtemp(prefix="mlops-nb-bench-track-"))
    for var in ("MLFLOW_TRACKING_URI", "MLOPS_NB_HOME", "MLOPS_NB_CACHE_DIR"):
        os.environ.pop(var, None)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    trivial_cells(args.cells)
    if not args.skip_pipeline:
        pipeline(args.rounds)
    fingerprint_frame()


if __name__ == "__main__":
    main()
