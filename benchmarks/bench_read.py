"""The read side on a big store (issue 11's anchor: MLflow's own client doing the same by hand).

An experiment with N job runs of 6 stages each (default 1,000 x 6 = 7,000 runs, params, metrics and tags as
mlops-nb records them) in an embedded SQLite store. In one process, warm, medians of R repetitions:

1. ``runs``: the first page of 100, newest first — ``reading.list_runs`` against ``MlflowClient.search_runs``
   of the same page;
2. ``show``: one job run with its stages — ``reading.run_detail`` against ``get_run`` + the stage search;
3. ``diff`` of two job runs — ``reading.run_detail`` x2 + ``diff_runs`` against two ``get_run`` and two
   stage searches by hand (no code download on either side: no stage's code changed).

Goals: a page of runs <= 100 ms and >= 5x faster than the plain search page; diff <= 200 ms.

    python benchmarks/bench_read.py [--jobs 1000] [--repeats 15] [--store DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

STAGES = ["load", "clean", "split", "features", "train", "evaluate"]


def populate(uri: str, jobs: int, notebook: str = "/project/notebooks/train.ipynb") -> tuple[str, list[str]]:
    """Runs of ``notebook`` as mlops-nb records them, written straight through MLflow's client (fast to set up)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(uri)
    experiment = client.create_experiment("bench")
    now = int(time.time() * 1000)
    job_ids = []
    for j in range(jobs):
        t = now - (jobs - j) * 10_000
        job = client.create_run(
            experiment,
            start_time=t,
            run_name=f"train-{j}",
            tags={"mlops_nb.kind": "job", "mlops_nb.notebook": notebook},
        )
        run_id = job.info.run_id
        job_ids.append(run_id)
        client.log_batch(
            run_id,
            metrics=[Metric("accuracy", 0.8 + j % 17 / 100, t, 0), Metric("f1_macro", 0.7 + j % 13 / 100, t, 0)],
            params=[Param("C", str(0.1 * (1 + j % 7))), Param("seed", str(j % 3))],
        )
        for i, name in enumerate(STAGES):
            stage = client.create_run(
                experiment,
                start_time=t + i,
                run_name=name,
                tags={
                    "mlflow.parentRunId": run_id,
                    "mlops_nb.kind": "stage",
                    "mlops_nb.stage": name,
                    "mlops_nb.cache_hit": "true" if (j + i) % 3 else "false",
                    "mlops_nb.code_hash": f"code-{name}",
                    "mlops_nb.cache_key": f"{j}-{i}",
                    "mlops_nb.duration_s": "0.5",
                },
            )
            client.log_batch(
                stage.info.run_id,
                params=[Param("C", str(0.1 * (1 + j % 7)))] if name == "train" else [],
                tags=[RunTag(f"mlops_nb.input.x{k}", f"fp{j % 5}-{k}") for k in range(3)],
                metrics=[Metric("accuracy", 0.8, t, 0)] if name == "evaluate" else [],
            )
            client.set_terminated(stage.info.run_id, "FINISHED", t + i + 1)
        client.set_terminated(run_id, "FINISHED", t + 9_000)
    return experiment, job_ids


def median_ms(fn, repeats: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--store", help="reuse a store folder made by an earlier run (it is made when missing)")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    folder = Path(args.store or tempfile.mkdtemp(prefix="mlops-nb-bench-read-"))
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    marker = folder / "populated"
    if not marker.exists():
        started = time.perf_counter()
        populate(uri, args.jobs)
        marker.write_text(str(args.jobs))
        print(f"store: {args.jobs} jobs x {len(STAGES)} stages written in {time.perf_counter() - started:.0f} s")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["MLOPS_NB_HOME"] = str(folder / ".mlops_nb")

    from mlflow import MlflowClient

    from mlops_nb.config import load_settings
    from mlops_nb.tracking import reading
    from mlops_nb.tracking.diff import diff_runs

    settings = load_settings()
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("bench").experiment_id
    page = client.search_runs([experiment], "tags.`mlops_nb.kind` = 'job'", max_results=2)
    a, b = (r.info.run_id for r in page)

    def anchor_page() -> None:
        client.search_runs(
            [experiment], "tags.`mlops_nb.kind` != 'stage'", max_results=100, order_by=["attributes.start_time DESC"]
        )

    def anchor_show(run_id: str = a) -> list:
        run = client.get_run(run_id)
        return [run, client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{run_id}'", max_results=1000)]

    def anchor_diff() -> None:
        anchor_show(a)
        anchor_show(b)

    def no_code(run_id: str) -> str:
        raise AssertionError("no stage's code changed: nothing to download")

    rows = [
        ("runs: page of 100", lambda: reading.list_runs(max_results=100, settings=settings), anchor_page),
        ("show: a job and its stages", lambda: reading.run_detail(a, settings), anchor_show),
        (
            "diff: two jobs, per stage",
            lambda: diff_runs(reading.run_detail(a, settings), reading.run_detail(b, settings), no_code),
            anchor_diff,
        ),
    ]
    print(f"{args.jobs} jobs x {len(STAGES)} stages, SQLite, warm, medians of {args.repeats}:")
    for label, ours, anchor in rows:
        mine, theirs = median_ms(ours, args.repeats), median_ms(anchor, args.repeats)
        print(f"  {label:<28} mlops-nb {mine:8.1f} ms   MlflowClient by hand {theirs:8.1f} ms", end="")
        print(f"   ratio {theirs / mine:5.2f}x")


if __name__ == "__main__":
    main()
