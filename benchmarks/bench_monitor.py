"""Drift on N x 20 numeric frames: mlops-nb's monitor vs plain SciPy (issue 13's anchor), same run, same data.

For each size (100k x 20 and 1M x 20 by default) a seeded reference and a current frame (5 of the 20 columns
shifted) are made and written to Parquet. Measured, medians over ``--repeat`` runs:

- compute: from data already in memory, ours = reference profile + every score of every column (KS,
  Wasserstein, PSI) + validation (``mlops_nb.monitoring.monitor``); plain SciPy = per column
  ``scipy.stats.ks_2samp`` + a NumPy PSI on the reference deciles. Peak memory of that step by tracemalloc.
- whole process: ``mlops-nb monitor --reference ref.parquet --data cur.parquet --json out.json`` vs a fresh
  Python reading the same Parquet files with pyarrow and doing the SciPy computation; wall time and peak RSS
  (``os.wait4``'s rusage of that child).
- the statistics compared: the largest difference of KS statistic and p-value, and PSI, between the two.
- ``--partitions N``: also the whole ``mlops-nb monitor`` process on N x 20 rows written as 10 Parquet
  partitions per side (the goal at 10M: <= 60 s, <= 1.5 GB peak RSS); mlops-nb only.

- Evidently 0.7's DataDriftPreset (the goal: >= 40x faster at <= 1/3 of its peak memory), in its own venv
  built by this benchmark (``python -m venv``; ``pip install "evidently==0.7.*" "pandas<3" pyarrow``:
  Evidently 0.7 does not import with pandas 3) at ``--evidently-venv``, reused when it is there. A fresh
  process reads the same Parquet files with pandas and runs the preset: its compute time (``Report.run``)
  beside ours, its wall time and peak RSS beside ``mlops-nb monitor``'s (ours measured before and again
  after Evidently's run, medians of both), and its normed Wasserstein values
  (the method it picks above 1,000 rows) beside ours. ``--evidently-repeat`` runs each (default 1: ~90 s
  and ~1.7 GB at 1M x 20). ``--no-evidently`` leaves it out.

    python benchmarks/bench_monitor.py [--rows 100000 1000000] [--repeat 3] [--partitions 10000000]
        [--evidently-venv DIR] [--evidently-repeat 1] [--no-evidently]

Prints figures and ratios; asserts nothing (this machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

COLUMNS = 20
SHIFTED = 5

# The whole-process anchor: a fresh Python reads the Parquet files and runs plain_scipy below (this file
# imports only numpy and the standard library at its top, so the import costs the anchor nothing extra).
SCIPY_SCRIPT = r"""
import json, sys
import pyarrow.parquet as pq
sys.path.insert(0, sys.argv[4])
from bench_monitor import plain_scipy
json.dump(plain_scipy(pq.read_table(sys.argv[1]), pq.read_table(sys.argv[2])), open(sys.argv[3], "w"))
"""


# Evidently's anchor, run with the venv's python: read both Parquet files with pandas, time Report.run,
# write the compute seconds and the normed Wasserstein distance of each column.
EVIDENTLY_SCRIPT = r"""
import json, sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
t = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
seconds = time.perf_counter() - t
values = {m["config"]["column"]: [m["config"]["method"], m["value"]]
          for m in snapshot.dict()["metrics"] if m["config"]["type"].endswith("ValueDrift")}
json.dump({"seconds": seconds, "columns": values}, open(sys.argv[3], "w"))
"""


def evidently_python(venv: Path) -> Path:
    """The venv's python, with Evidently 0.7 and pandas < 3 installed (built on first use)."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"building Evidently's venv at {venv} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "evidently==0.7.*", "pandas<3", "pyarrow"]
        subprocess.run(pip, check=True)
    return python


def evidently(python: Path, folder: Path, repeat: int) -> tuple[float, float, float, dict]:
    """(median compute s, median wall s, median peak RSS MB, the last run's output) of Evidently's preset."""
    computes, walls, rss = [], [], []
    out: dict = {}
    for _ in range(repeat):
        w, r = process([str(python), "-c", EVIDENTLY_SCRIPT, "ref.parquet", "cur.parquet", "ev.json"], folder)
        out = json.loads((folder / "ev.json").read_text())
        computes.append(out["seconds"])
        walls.append(w)
        rss.append(r)
    return statistics.median(computes), statistics.median(walls), statistics.median(rss), out


def frames(rows: int, seed: int = 0):
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    ref = {f"x{i}": rng.normal(i, 1 + i / 10, rows) for i in range(COLUMNS)}
    cur = {f"x{i}": rng.normal(i + (0.2 if i < SHIFTED else 0.0), 1 + i / 10, rows) for i in range(COLUMNS)}
    return pa.table(ref), pa.table(cur)


def plain_scipy(ref, cur) -> dict[str, list[float]]:
    """Per column ks_2samp and a NumPy PSI on the reference deciles."""
    import scipy.stats as st

    out = {}
    for name in ref.column_names:
        r, c = ref.column(name).to_numpy(), cur.column(name).to_numpy()
        ks = st.ks_2samp(r, c)
        edges = np.unique(np.quantile(r, np.arange(1, 10) / 10))
        bins = np.concatenate(([-np.inf], edges, [np.inf]))
        rs = np.maximum(np.histogram(r, bins)[0] / len(r), 1e-4)
        cs = np.maximum(np.histogram(c, bins)[0] / len(c), 1e-4)
        out[name] = [float(ks.statistic), float(ks.pvalue), float(np.sum((cs - rs) * np.log(cs / rs)))]
    return out


def ours(ref, cur, rows: int) -> dict:
    from mlops_nb.monitoring.monitor import monitor
    from mlops_nb.monitoring.profile import reference_of

    sample = max(rows, 10_000)
    return monitor(reference_of(ref, sample_rows=sample), cur.to_batches(max_chunksize=1_000_000), sample_rows=sample)


def timed(func, *args, repeat: int) -> tuple[float, float, object]:
    """(median seconds, peak traced MB of the last run, result)."""
    times = []
    result = None
    for i in range(repeat):
        if i == repeat - 1:
            tracemalloc.start()
        t = time.perf_counter()
        result = func(*args)
        times.append(time.perf_counter() - t)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return statistics.median(times), peak, result


# Started from a fresh small interpreter: a child forked from this big process would report this process's
# RSS as its own peak (Linux keeps the high-water mark across fork and exec).
WRAPPER = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def process(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one child process."""
    done = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{cmd[:3]} failed: {done.stderr[-2000:]}")
    wall, rss = done.stdout.split()
    return float(wall), int(rss) / 1024


def compare(result: dict, baseline: dict[str, list[float]]) -> tuple[float, float, float]:
    ks = max(abs(result["features"][n]["scores"]["ks"]["statistic"] - b[0]) for n, b in baseline.items())
    p = max(abs(result["features"][n]["scores"]["ks"]["p_value"] - b[1]) for n, b in baseline.items())
    psi = max(abs(result["features"][n]["scores"]["psi"]["statistic"] - b[2]) for n, b in baseline.items())
    return ks, p, psi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per variant (default 3)")
    parser.add_argument("--partitions", type=int, metavar="N", help="also N x 20 rows from 10 Parquet partitions")
    parser.add_argument("--evidently-venv", type=Path, default=Path(tempfile.gettempdir()) / "mlops-nb-bench-evidently")
    parser.add_argument("--evidently-repeat", type=int, default=1, help="Evidently runs per size (default 1)")
    parser.add_argument("--no-evidently", action="store_true", help="leave Evidently's anchor out")
    args = parser.parse_args()
    ev_python = None if args.no_evidently else evidently_python(args.evidently_venv)
    folder = Path(tempfile.mkdtemp(prefix="mlops-nb-bench-monitor-"))
    mlops_nb_cli = shutil.which("mlops-nb") or str(Path(sys.executable).parent / "mlops-nb")
    try:
        for rows in args.rows:
            import pyarrow.parquet as pq

            ref, cur = frames(rows)
            pq.write_table(ref, folder / "ref.parquet")
            pq.write_table(cur, folder / "cur.parquet")
            print(f"\n{rows:,} rows x {COLUMNS} numeric columns ({SHIFTED} shifted), median of {args.repeat}")
            sp_time, sp_peak, baseline = timed(plain_scipy, ref, cur, repeat=args.repeat)
            our_time, our_peak, result = timed(ours, ref, cur, rows, repeat=args.repeat)
            ks, p, psi = compare(result, baseline)
            drifted = sorted(n for n, f in result["features"].items() if f["drift"])
            print(f"  compute  plain SciPy (ks_2samp + PSI): {sp_time:7.2f} s  peak {sp_peak:7.0f} MB (tracemalloc)")
            print(f"  compute  mlops-nb (KS, Wasserstein, PSI, checks): {our_time:7.2f} s  peak {our_peak:7.0f} MB")
            print(f"           ratio: {sp_time / our_time:.1f}x faster, {our_peak / sp_peak:.2f}x the memory")
            print(f"  same statistics: max |dKS| {ks:.1e}, max |dp| {p:.1e}, max |dPSI| {psi:.1e}; drifted {drifted}")
            walls_sp, walls_us, rss_sp, rss_us = [], [], [], []
            for _ in range(args.repeat):
                w, r = process(
                    [
                        sys.executable,
                        "-c",
                        SCIPY_SCRIPT,
                        "ref.parquet",
                        "cur.parquet",
                        "sp.json",
                        str(Path(__file__).parent),
                    ],
                    folder,
                )
                walls_sp.append(w)
                rss_sp.append(r)
                cmd = [mlops_nb_cli, "monitor", "--reference", "ref.parquet", "--data", "cur.parquet"]
                w, r = process([*cmd, "--json", "ours.json"], folder)
                walls_us.append(w)
                rss_us.append(r)
            json.loads((folder / "ours.json").read_text())
            wsp, wus = statistics.median(walls_sp), statistics.median(walls_us)
            print(f"  process  plain SciPy script: {wsp:7.2f} s  peak RSS {statistics.median(rss_sp):7.0f} MB")
            print(f"  process  mlops-nb monitor:   {wus:7.2f} s  peak RSS {statistics.median(rss_us):7.0f} MB")
            print(f"           ratio: {wsp / wus:.1f}x faster")
            if ev_python is not None:
                ev_compute, ev_wall, ev_rss, ev_out = evidently(ev_python, folder, args.evidently_repeat)
                # Ours again right after Evidently's minutes-long run, and the medians over both sets: a
                # shared machine's load changes in minutes, and both sides should see the same.
                our_times = [our_time, timed(ours, ref, cur, rows, repeat=args.repeat)[0]]
                for _ in range(args.repeat):
                    w, r = process([*cmd, "--json", "ours.json"], folder)
                    walls_us.append(w)
                    rss_us.append(r)
                our_time, wus = statistics.median(our_times), statistics.median(walls_us)
                print(
                    f"  mlops-nb after Evidently: compute {our_times[1]:.2f} s; medians before and after: "
                    f"compute {our_time:.2f} s, process {wus:.2f} s"
                )
                rss_us_median = statistics.median(rss_us)
                methods = sorted({m for m, _ in ev_out["columns"].values()})
                dw = max(
                    abs(result["features"][n]["scores"]["wasserstein"]["statistic"] - v)
                    for n, (_, v) in ev_out["columns"].items()
                )
                ev_drifted = sorted(n for n, (_, v) in ev_out["columns"].items() if v >= 0.1)
                print(f"  compute  Evidently 0.7 DataDriftPreset (Report.run): {ev_compute:7.2f} s")
                print(f"           ratio: mlops-nb {ev_compute / our_time:.1f}x faster")
                print(f"  process  Evidently script: {ev_wall:7.2f} s  peak RSS {ev_rss:7.0f} MB")
                print(
                    f"           ratio: mlops-nb {ev_wall / wus:.1f}x faster, "
                    f"{rss_us_median / ev_rss:.2f}x its peak RSS"
                )
                print(f"  same statistics: Evidently's {methods}: max |dW| vs ours {dw:.1e}; drifted {ev_drifted}")
        if args.partitions:
            partitions(args.partitions, folder, mlops_nb_cli)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def partitions(rows: int, folder: Path, mlops_nb_cli: str) -> None:
    import pyarrow.parquet as pq

    parts = 10
    for side, seed in (("ref", 0), ("cur", 1)):
        (folder / side).mkdir()
        for p in range(parts):
            ref, cur = frames(rows // parts, seed=seed * 100 + p)
            table = ref if side == "ref" else cur
            pq.write_table(table, folder / side / f"part-{p:02d}.parquet", row_group_size=250_000)
    wall, rss = process([mlops_nb_cli, "monitor", "--reference", "ref", "--data", "cur", "--json", "big.json"], folder)
    result = json.loads((folder / "big.json").read_text())
    drifted = sorted(n for n, f in result["features"].items() if f["drift"])
    print(f"\n{rows:,} rows x {COLUMNS} from {parts} Parquet partitions per side (reference sampled to 1,000,000)")
    print(f"  process  mlops-nb monitor: {wall:7.2f} s  peak RSS {rss:7.0f} MB; drifted {drifted}")


if __name__ == "__main__":
    main()
