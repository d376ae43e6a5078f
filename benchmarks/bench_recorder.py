"""How long the caller is blocked recording a run: mlops-nb vs MLflow used directly (issue 2's anchor).

One run = start, 10 params, 20 metrics logged one by one, end. Both go to an SQLite store in a temporary
folder, in this same process. mlops-nb is timed twice: "settled" (the sender has caught up before each
run, as between notebook cells) and "back to back" (runs follow each other with no pause, so the sender
works while the next run is recorded). Also the time of ``import mlops_nb`` vs ``import mlflow`` in fresh
interpreters. Prints medians and ratios; asserts nothing (this machine is shared and noisy).

    python benchmarks/bench_recorder.py [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARAMS, METRICS = 10, 20


def one_mlflow_run(mlflow) -> float:
    t = time.perf_counter()
    with mlflow.start_run():
        for i in range(PARAMS):
            mlflow.log_param(f"p{i}", i)
        for i in range(METRICS):
            mlflow.log_metric(f"m{i}", i * 0.5)
    return time.perf_counter() - t


def one_mnb_run(mnb) -> float:
    t = time.perf_counter()
    with mnb.start_run("bench", experiment="bench"):
        for i in range(PARAMS):
            mnb.log_param(f"p{i}", i)
        for i in range(METRICS):
            mnb.log_metric(f"m{i}", i * 0.5)
    return time.perf_counter() - t


def import_time(module: str, repeat: int) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(repeat)]
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="timed runs per variant (default 40)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mlops-nb-bench-"))
    os.environ["MLOPS_NB_HOME"] = str(folder / "mnb")
    os.environ.pop("MLFLOW_TRACKING_URI", None)

    import mlflow

    import mlops_nb as mnb

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    mlflow.set_experiment("bench")
    one_mlflow_run(mlflow)  # warm-up: schema, experiment, caches
    one_mnb_run(mnb)
    assert mnb.flush(120)

    anchor, settled, back_to_back = [], [], []
    for _ in range(args.runs):  # interleaved, so machine noise hits both alike
        anchor.append(one_mlflow_run(mlflow))
        assert mnb.flush(120)
        settled.append(one_mnb_run(mnb))
    assert mnb.flush(120)
    back_to_back = [one_mnb_run(mnb) for _ in range(args.runs)]
    t = time.perf_counter()
    assert mnb.flush(300)
    drain = time.perf_counter() - t

    ms = lambda xs: statistics.median(xs) * 1e3  # noqa: E731
    print(f"one run = start + {PARAMS} params + {METRICS} metrics + end, {args.runs} runs each, medians")
    print(f"  MLflow direct (anchor)          {ms(anchor):8.2f} ms")
    print(f"  mlops-nb, sender settled        {ms(settled):8.2f} ms   {ms(anchor) / ms(settled):6.1f}x less blocked")
    print(
        f"  mlops-nb, back to back          {ms(back_to_back):8.2f} ms   "
        f"{ms(anchor) / ms(back_to_back):6.1f}x less blocked  (then {drain:.2f} s to drain the sender)"
    )
    mnb_import, mlflow_import = import_time("mlops_nb", 15), import_time("mlflow", 5)
    print(
        f"import mlops_nb {mnb_import * 1e3:.1f} ms   import mlflow {mlflow_import * 1e3:.0f} ms   "
        f"({mlflow_import / mnb_import:.0f}x)"
    )


if __name__ == "__main__":
    main()
