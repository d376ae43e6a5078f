"""One job run per pipeline run (``mlops-nb pipeline-run open``, ``run --stage S --pipeline-run ID``,
``pipeline-run close``), as an exported pipeline's tasks run it, without an orchestrator: what a retried, a
failed and a killed task leave in MLflow."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.notebooks import WAITING, mlops_nb, runs, start_mlops_nb, wait_for, write_notebook

PARAMETERS = "n = 10"
CELLS = (
    "%load_ext mlops_nb",
    "%%track load\ndata = list(range(n))",
    "%%track boom\ntotal = sum(data) / (n - 10)",
)


def _task(project: Path, *args: str):
    return mlops_nb(*args, cwd=project)


def _stage_runs(project: Path, parent: str) -> list:
    return [r for r in runs(project, "pipe") if r.data.tags.get("mlflow.parentRunId") == parent]


def test_a_retried_task_records_its_stage_once_and_a_failed_one_fails_the_pipelines_job_run(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", *CELLS, parameters=PARAMETERS)
    refused = _task(project, "run", "pipe.ipynb", "--stage", "load", "--pipeline-run", "R1")
    assert refused.returncode == 2 and "pipeline-run open pipe.ipynb" in refused.stderr  # the first task did not run
    assert _task(project, "run", "pipe.ipynb", "--pipeline-run", "R1").returncode == 2  # no --stage
    assert runs(project, "pipe") == []

    opened = _task(project, "pipeline-run", "open", "pipe.ipynb", "--pipeline-run", "R1", "-y", '{"n": 10}')
    assert opened.returncode == 0, opened.stderr
    parent = opened.stdout.strip()
    again = _task(project, "pipeline-run", "open", "pipe.ipynb", "--pipeline-run", "R1", "-y", '{"n": 10}')
    assert again.stdout.strip() == parent  # a retried first task finds the run it made
    for _ in range(2):  # the load task, then its retry
        done = _task(project, "run", "pipe.ipynb", "--stage", "load", "--pipeline-run", "R1", "-o", "load.out.ipynb")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == parent
    failed = _task(project, "run", "pipe.ipynb", "--stage", "boom", "--pipeline-run", "R1", "-o", "boom.out.ipynb")
    assert failed.returncode == 1
    assert [r.data.tags["mlops_nb.stage"] for r in _stage_runs(project, parent)] == ["boom", "load"]  # load once

    closed = _task(project, "pipeline-run", "close", "pipe.ipynb", "--pipeline-run", "R1")
    assert closed.returncode == 1 and "stage boom: FAILED: ZeroDivisionError" in closed.stderr
    (job,) = [r for r in runs(project, "pipe") if r.data.tags.get("mlops_nb.kind") == "job"]
    assert job.info.run_id == parent and job.info.status == "FAILED"
    assert job.data.tags["mlops_nb.error"].startswith("stage boom: FAILED: ZeroDivisionError: division by zero")
    assert job.data.tags["mlops_nb.pipeline.run"] == "R1" and job.data.params == {"n": "10"}


def test_a_killed_task_leaves_nothing_running_once_the_pipeline_ends(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", *WAITING, parameters="k = 1")
    opened = _task(project, "pipeline-run", "open", "pipe.ipynb", "--pipeline-run", "R2")
    assert opened.returncode == 0, opened.stderr
    task = start_mlops_nb("run", "pipe.ipynb", "--stage", "wait", "--pipeline-run", "R2", cwd=project)
    wait_for([project / "started-1"], task)
    os.killpg(task.pid, signal.SIGKILL)  # the worker dies with its kernel: nothing ends their runs
    task.wait(timeout=30)

    closed = _task(project, "pipeline-run", "close", "pipe.ipynb", "--pipeline-run", "R2")
    assert closed.returncode == 1, closed.stderr
    recorded = runs(project, "pipe")
    assert all(r.info.status != "RUNNING" for r in recorded)
    (job,) = [r for r in recorded if r.data.tags.get("mlops_nb.kind") == "job"]
    assert job.info.status == "FAILED" and job.data.tags["mlops_nb.error"].startswith("stage wait: KILLED")
    (stage,) = _stage_runs(project, job.info.run_id)
    assert stage.info.status == "KILLED" and job.data.metrics == {"started": 1.0}  # what it recorded is kept
