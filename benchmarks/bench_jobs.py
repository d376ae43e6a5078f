"""Notebook jobs: an 8-job sweep of a small 5-cell notebook, mlops-nb (tracked) against plain papermill.

Same machine, same run, each contender a fresh process timed from start to exit (medians of --repeat):

- anchor: 8 ``papermill.execute_notebook`` calls in one process (the fastest plain-papermill way);
- 8 papermill CLI runs one after another; 2 plain-papermill processes of 4 jobs each in parallel;
- ``mlops-nb sweep --parallel 2`` (every job an MLflow run with params, input and output notebooks);
- per-job overhead: in one warm process, ``run_job`` (our engine, tracked) against ``execute_notebook``,
  8 jobs each, in turn, medians (the MLflow load is paid once per process, like papermill's own imports); and one
  ``mlops-nb run`` against one ``papermill`` CLI run, fixed costs included.

Run: python benchmarks/bench_jobs.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat

JOBS = 8
ALPHAS = [round(0.1 * (i + 1), 1) for i in range(JOBS)]
CELLS = (
    "import numpy as np",
    "rng = np.random.default_rng(0)\nx = rng.normal(size=n)",
    "score = float((x * alpha).mean())",
    "print(score)",
)


def write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    nb.cells.append(nbformat.v4.new_code_cell("alpha = 0.1\nn = 1000", metadata={"tags": ["parameters"]}))
    nb.cells.extend(nbformat.v4.new_code_cell(c) for c in CELLS)
    nbformat.write(nb, path)


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{args[:3]} failed: {done.stderr[-2000:]}")
    return elapsed


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


LOOP = """
    import papermill
    for i, alpha in enumerate({alphas}):
        papermill.execute_notebook("nb.ipynb", f"out/pm-{{i}}.ipynb", parameters={{"alpha": alpha}}, progress_bar=False)
"""
HALF = """
    import sys, papermill
    for alpha in sys.argv[1:]:
        papermill.execute_notebook("nb.ipynb", f"out/half-{{alpha}}.ipynb", parameters={{"alpha": float(alpha)}},
                                   progress_bar=False)
"""
# One plain execution and one tracked job in turn (so that the machine's drift hits both alike), medians.
PER_JOB = """
    import statistics, time
    from pathlib import Path
    import papermill
    from mlops_nb.jobs.runner import run_job
    run_job(Path("nb.ipynb"), output=Path("out/warm.ipynb"), parameters={{"alpha": 0.5}})  # load MLflow once
    papermill.execute_notebook("nb.ipynb", "out/warm-pm.ipynb", parameters={{"alpha": 0.5}}, progress_bar=False)
    plain, ours = [], []
    for i, alpha in enumerate({alphas}):
        t = time.perf_counter()
        papermill.execute_notebook("nb.ipynb", f"out/p{{i}}.ipynb", parameters={{"alpha": alpha}}, progress_bar=False)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_job(Path("nb.ipynb"), output=Path(f"out/m{{i}}.ipynb"), parameters={{"alpha": alpha}})
        ours.append(time.perf_counter() - t)
    print(statistics.median(plain), statistics.median(ours))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONWARNINGS": "ignore"}
    for var in ("MLFLOW_TRACKING_URI", "MLOPS_NB_HOME", "MLOPS_NB_EXPERIMENT"):
        env.pop(var, None)
    results: dict[str, list[float]] = {}
    per_job: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        root = Path(tmp)
        write_notebook(root / "nb.ipynb")
        (root / "out").mkdir()
        # Warm-up: create the embedded store, compile bytecode.
        timed([str(bin_dir / "mlops-nb"), "run", "nb.ipynb", "-o", "out/w.ipynb"], root, env)
        loop = python(LOOP.format(alphas=ALPHAS))
        half = python(HALF.format())
        grid = "alpha=" + ",".join(map(str, ALPHAS))
        for _ in range(args.repeat):
            results.setdefault("papermill in-process loop (anchor)", []).append(timed(loop, root, env))
            start = time.perf_counter()
            for i, alpha in enumerate(ALPHAS):
                timed(
                    [str(bin_dir / "papermill"), "nb.ipynb", f"out/cli-{i}.ipynb", "-p", "alpha", str(alpha)], root, env
                )
            results.setdefault("papermill CLI x8, one after another", []).append(time.perf_counter() - start)
            start = time.perf_counter()
            procs = [
                subprocess.Popen(
                    [*half, *map(str, part)], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                for part in (ALPHAS[: JOBS // 2], ALPHAS[JOBS // 2 :])
            ]
            if any(p.wait() for p in procs):
                raise RuntimeError("a plain papermill process failed")
            results.setdefault("papermill, 2 processes in parallel", []).append(time.perf_counter() - start)
            sweep = [
                str(bin_dir / "mlops-nb"),
                "sweep",
                "nb.ipynb",
                "--grid",
                grid,
                "--parallel",
                "2",
                "--no-progress-bar",
            ]
            results.setdefault("mlops-nb sweep --parallel 2 (tracked)", []).append(timed(sweep, root, env))
            results.setdefault("papermill CLI, one run", []).append(
                timed([str(bin_dir / "papermill"), "nb.ipynb", "out/one.ipynb", "-p", "alpha", "0.5"], root, env)
            )
            results.setdefault("mlops-nb run, one run (tracked)", []).append(
                timed(
                    [str(bin_dir / "mlops-nb"), "run", "nb.ipynb", "-o", "out/one.ipynb", "-p", "alpha", "0.5"],
                    root,
                    env,
                )
            )
            out = subprocess.run(
                python(PER_JOB.format(alphas=ALPHAS)),
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            per_job.append((float(out[-2]), float(out[-1])))
    print(f"{JOBS} jobs of a 5-cell notebook, medians of {args.repeat} (seconds, process start to exit)")
    medians = {name: statistics.median(times) for name, times in results.items()}
    for name, value in medians.items():
        print(f"  {name:<42} {value:7.2f}")
    anchor = medians["papermill in-process loop (anchor)"]
    sweep = medians["mlops-nb sweep --parallel 2 (tracked)"]
    print(f"mlops-nb sweep --parallel 2 vs the in-process papermill loop: {anchor / sweep:.2f}x faster (goal 1.8x)")
    plain = statistics.median(p for p, _ in per_job)
    ours = statistics.median(o for _, o in per_job)
    print(
        f"per job in a warm process: papermill {plain:.3f} s, mlops-nb run_job {ours:.3f} s "
        f"-> overhead {ours - plain:+.3f} s per job (goal < 0.3 s)"
    )
    one = medians["mlops-nb run, one run (tracked)"] - medians["papermill CLI, one run"]
    print(f"one mlops-nb run vs one papermill CLI run: {one:+.2f} s (fixed costs: loading MLflow and the store)")


if __name__ == "__main__":
    main()
