"""The MLflow side of a pipeline's job run: one ``job`` run per orchestrator run (an Airflow DAG run, a KFP
pipeline job), which every task's stages nest under (jobs/pipeline_run.py drives it).

Plain dataclasses out; the MLflow client stays in tracking/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlops_nb.tracking import tags
from mlops_nb.tracking._client import client
from mlops_nb.tracking.recorder import get_recorder

TERMINAL = ("FINISHED", "FAILED", "KILLED")


@dataclass(frozen=True)
class ParentRun:
    run_id: str
    experiment: str  # the experiment's name
    status: str


@dataclass(frozen=True)
class StageRun:
    run_id: str
    stage: str
    status: str
    error: str
    start_time: int


def _client() -> Any:  # an MlflowClient, kept inside tracking/
    """The client of the store this process's records go to (settings given by ``configure`` included: a Dask
    worker's task, jobs/pipeline.py, names the job's store that way)."""
    return client(get_recorder().settings)


def find(key: str) -> ParentRun | None:
    """The live run whose mlops-nb key is ``key`` (32 hex digits), in any experiment, or None."""
    mlflow = _client()
    experiments = [e.experiment_id for e in mlflow.search_experiments()]
    found = mlflow.search_runs(experiments, f"tags.`{tags.RUN_KEY}` = '{key}'", max_results=1)
    if not found:
        return None
    run = found[0]
    return ParentRun(run.info.run_id, mlflow.get_experiment(run.info.experiment_id).name, run.info.status)


def stage_runs(parent: str) -> list[StageRun]:
    """The live stage runs nested under run ``parent``, oldest first."""
    mlflow = _client()
    experiment = mlflow.get_run(parent).info.experiment_id
    found = mlflow.search_runs(
        [experiment], f"tags.`mlflow.parentRunId` = '{parent}'", max_results=10_000, order_by=["attributes.start_time"]
    )
    return [
        StageRun(
            r.info.run_id,
            r.data.tags[tags.STAGE],
            r.info.status,
            r.data.tags.get(tags.ERROR, ""),
            r.info.start_time or 0,
        )
        for r in found
        if tags.STAGE in r.data.tags
    ]


def retire(run_ids: list[str]) -> None:
    """Move runs to MLflow's trash (``mlflow gc`` purges them, ``MlflowClient().restore_run`` brings one back)."""
    mlflow = _client()
    for run_id in run_ids:
        mlflow.delete_run(run_id)


def end_killed(run_id: str, reason: str) -> None:
    """End a run another process left RUNNING: KILLED, with the reason."""
    mlflow = _client()
    mlflow.set_tag(run_id, tags.END_REASON, reason[:5000])
    mlflow.set_terminated(run_id, "KILLED")


def conclude(run_id: str, status: str, outcome: str, error: str) -> None:
    """End the pipeline's job run ``status`` with its outcome; ``error`` '' clears an earlier attempt's."""
    mlflow = _client()
    mlflow.set_tag(run_id, tags.JOB_OUTCOME, outcome)
    if error:
        mlflow.set_tag(run_id, tags.ERROR, error[:5000])
    elif tags.ERROR in mlflow.get_run(run_id).data.tags:
        mlflow.delete_tag(run_id, tags.ERROR)
    mlflow.set_terminated(run_id, status)
