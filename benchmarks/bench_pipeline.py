"""The example notebook as an Airflow DAG against the same notebook under ``mlops-nb run``, cold and warm.

Side by side in one run, on one machine, each timed from start to exit (medians of --repeat):

- ``mlops-nb export-pipeline notebooks/train.ipynb --to airflow``, then ``airflow dags test train``: every
  task a ``mlops-nb run --stage`` process with its own kernel, between the tasks that open and end the DAG run's
  job run. Cold: an empty stage cache; warm: the same DAG run again (every stage a cache hit);
- ``mlops-nb run notebooks/train.ipynb`` (one kernel), cold and warm the same way.

Goal: the warm DAG run within 2x of the warm single-kernel run. Then where a warm task's time goes: a bare
``mlops-nb`` process, ``import mlflow``, a kernel start, one warm ``mlops-nb run --stage`` task.

Needs an Airflow 3 (``--airflow PATH``, or ``MLOPS_NB_TEST_AIRFLOW``). Run:
python benchmarks/bench_pipeline.py --airflow /work/airflow-venv/bin/airflow [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MLOPS_NB = str(Path(sys.executable).parent / "mlops-nb")
SETTINGS = ("MLFLOW_TRACKING_URI", "MLOPS_NB_CACHE_URI", "MLOPS_NB_EXPERIMENT", "MLOPS_NB_HOME", "MLOPS_NB_CACHE")


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{args[:4]} failed ({done.returncode}): {done.stdout[-1500:]}{done.stderr[-1500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--airflow", default=os.environ.get("MLOPS_NB_TEST_AIRFLOW"), help="an airflow executable")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.airflow:
        sys.exit("Give --airflow PATH (an Airflow 3 airflow executable) or set MLOPS_NB_TEST_AIRFLOW.")
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        run(work, args.airflow, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, airflow: str, repeat: int) -> None:
    project = work / "project"
    (project / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / "train.ipynb", project / "notebooks" / "train.ipynb")
    (project / "pyproject.toml").write_text('[project]\nname = "bench"\nversion = "0"\n')
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    notebook = "notebooks/train.ipynb"
    timed([MLOPS_NB, "export-pipeline", notebook, "--to", "airflow", "--out", "dags", "--mlops-nb-command", MLOPS_NB],
          project, env)  # fmt: skip
    home = work / "airflow"
    home.mkdir()
    air_env = {**env, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags")}
    air_env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    timed([airflow, "db", "migrate"], home, air_env)
    figures: dict[str, list[float]] = {k: [] for k in ("dag cold", "dag warm", "run cold", "run warm")}
    for i in range(repeat):  # each repetition: a fresh stage cache, so the first run of each is cold
        for label, args, cwd, base in (
            ("dag", [airflow, "dags", "test", "train"], home, air_env),
            ("run", [MLOPS_NB, "run", notebook, "-o", "out.ipynb"], project, env),
        ):
            cache = {**base, "MLOPS_NB_CACHE_DIR": str(work / f"cache-{label}-{i}")}
            figures[f"{label} cold"].append(timed(args, cwd, cache))
            figures[f"{label} warm"].append(timed(args, cwd, cache))
            print(f"  {i + 1}/{repeat} {label}: cold {figures[f'{label} cold'][-1]:.1f} s, "
                  f"warm {figures[f'{label} warm'][-1]:.1f} s", flush=True)  # fmt: skip
    median = {k: statistics.median(v) for k, v in figures.items()}
    print(f"\nexample notebook (5 stages), medians of {repeat}, load average {os.getloadavg()[0]:.1f}:")
    for key, value in median.items():
        print(f"  {key:<9} {value:7.1f} s")
    ratio = median["dag warm"] / median["run warm"]
    print(f"  warm DAG / warm mlops-nb run: {ratio:.2f}x (goal <= 2x: {'met' if ratio <= 2 else 'missed'})")

    # Where a warm task's time goes: each is paid once per task (7 tasks: open, 5 stages, close).
    cache = {**env, "MLOPS_NB_CACHE_DIR": str(work / "cache-run-0")}
    parts = {
        "mlops-nb --version (process start)": [MLOPS_NB, "--version"],
        "python -c 'import mlflow'": [sys.executable, "-c", "import mlflow"],
        "kernel start + stop": [sys.executable, "-c", KERNEL],
        "mlops-nb run --stage load (warm)": [MLOPS_NB, "run", notebook, "--stage", "load", "-o", "stage.ipynb"],
    }
    print("\nper task, medians of 3:")
    for label, command in parts.items():
        print(f"  {label:<40} {statistics.median(timed(command, project, cache) for _ in range(3)):6.2f} s")


KERNEL = (
    "from jupyter_client.manager import start_new_kernel\n"
    "km, kc = start_new_kernel(kernel_name='python3')\n"
    "kc.stop_channels(); km.shutdown_kernel(now=True)\n"
)


if __name__ == "__main__":
    main()
