"""A tracking server that goes away while a job runs: ``mlops-nb run --json`` still prints the run's id (and
the server's ``GET jobs/ID`` has it), exit 5, the records kept for later."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mlops_nb.config import load_settings
from mlops_nb.server.jobs import RESULT, Jobs
from tests.notebooks import write_notebook

pytestmark = pytest.mark.slow

WAIT_THEN_LOG = """
import os, time
import mlops_nb as mnb
while not os.path.exists(flag):
    time.sleep(0.1)
mnb.log_metric("y", 2.0)
"""


def test_a_job_whose_store_went_away_still_gives_its_run_id(
    project: Path, mlflow_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("MLOPS_NB_FLUSH_TIMEOUT", "5")
    write_notebook(project / "outage.ipynb", WAIT_THEN_LOG, parameters='flag = ""')
    settings = load_settings()
    jobs = Jobs(settings.home / "server-jobs", project, settings)
    flag = project / "go"
    job = jobs.start({"notebook": "outage.ipynb", "parameters": {"flag": str(flag)}})

    client = MlflowClient(mlflow_server.uri)
    deadline = time.monotonic() + 240
    while True:  # the job's process created its run on the server
        experiment = client.get_experiment_by_name("outage")
        created = client.search_runs([experiment.experiment_id]) if experiment else []
        if created:
            break
        assert time.monotonic() < deadline and jobs.status(job["id"])["status"] == "running", jobs.status(job["id"])
        time.sleep(0.5)
    mlflow_server.stop()
    flag.touch()

    while job["status"] == "running":
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
        job = jobs.status(job["id"])
    (run,) = created
    assert job["exit_code"] == 5 and job["outcome"] == "store_unavailable", job
    assert job["run_id"] == run.info.run_id, job
    assert "did not reach MLflow" in job["message"] and "the notebook's outcome: succeeded" in job["message"]
    printed = json.loads((settings.home / "server-jobs" / job["id"] / RESULT).read_text())  # run --json's stdout
    assert printed["run_id"] == run.info.run_id and printed["exit_code"] == 5
    assert printed["run_key"] == run.data.tags["mlops_nb.run_key"]
    assert printed["metrics"] == {"y": 2.0}  # read from the kernel's journal: known without MLflow
    assert list((settings.home / "journal").glob("*.jsonl")), "the records were not kept"
