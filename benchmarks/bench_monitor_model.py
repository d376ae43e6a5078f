"""What monitoring a registered model costs over checking data against data: same frames, same run.

A seeded N x 20 numeric reference (5 of the 20 columns shifted in the current frame, as bench_monitor.py) is
written to Parquet; a Ridge model is fitted on it and logged with ``mnb.log_model(..., reference=X)`` into a
fresh embedded store, and registered as ``bench`` version 1. Whole ``mlops-nb`` processes, medians over
``--repeat`` runs, side by side:

- anchor: ``mlops-nb monitor --reference ref.parquet --data cur.parquet --json out.json`` (data against data,
  nothing recorded);
- model: ``mlops-nb monitor models:/bench/1 --data cur.parquet --json out.json`` (resolve, fetch the stored
  reference, the same pass, an MLflow run with metrics, JSON and HTML report artifacts, the version tag);
- model + report: the same with ``--report r.html`` (the report is rendered in both; this adds writing it);
- model + windows: the same with ``--window 10000rows``.

    python benchmarks/bench_monitor_model.py [--rows 100000] [--repeat 3]

Prints figures and ratios; asserts nothing (this machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_monitor import frames  # the same seeded frames as the drift benchmark

TRAIN = """
import mlops_nb as mnb
import pyarrow.parquet as pq
from sklearn.linear_model import Ridge
X = pq.read_table("ref.parquet").to_pandas()
model = Ridge().fit(X, X.sum(axis=1))
with mnb.start_run("bench", kind="job"), mnb.stage("train"):
    mnb.log_model(model, "model", input_example=X[:5], reference=X)
assert mnb.flush(300)
"""
REGISTER = """
from mlflow import MlflowClient
c = MlflowClient("sqlite:///.mlops_nb/mlflow.db")
(run,) = c.search_runs([e.experiment_id for e in c.search_experiments()], "tags.`mlops_nb.stage` = 'train'")
c.create_registered_model("bench")
c.create_model_version("bench", run.info.artifact_uri + "/model", run_id=run.info.run_id)
"""


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="bench-monitor-model-") as tmp:
        folder = Path(tmp)
        (folder / "pyproject.toml").write_text("[project]\nname = 'bench'\n")
        ref, cur = frames(options.rows)
        pq.write_table(ref, folder / "ref.parquet")
        pq.write_table(cur, folder / "cur.parquet")
        for script in (TRAIN, REGISTER):
            done = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(done.stderr[-3000:])
        base = ["mlops-nb", "monitor"]
        data = ["--data", "cur.parquet", "--json", "out.json"]
        cases = {
            "anchor: --reference ref.parquet": [*base, "--reference", "ref.parquet", *data],
            "models:/bench/1": [*base, "models:/bench/1", *data],
            "models:/bench/1 --report": [*base, "models:/bench/1", *data, "--report", "r.html"],
            "models:/bench/1 --window 10000rows": [*base, "models:/bench/1", *data, "--window", "10000rows"],
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(options.repeat):
            for name, args in cases.items():  # interleaved, so load on the machine hits every case alike
                times[name].append(timed(args, folder))
        anchor = statistics.median(next(iter(times.values())))
        print(f"{options.rows:,} x 20 rows, whole process, median of {options.repeat}:")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"  {name:38s} {median:6.2f} s  {median / anchor:4.2f}x the anchor")
        report = folder / "r.html"
        print(f"  report: {report.stat().st_size / 1024:.0f} KiB, self-contained")


if __name__ == "__main__":
    main()
