"""One MLflow job run per pipeline run (an Airflow DAG run, a KFP pipeline job), every task's stages nested
under it, as ``mlops-nb run`` of the whole notebook records them.

- ``open_parent`` (the pipeline's first task, ``mlops-nb pipeline-run open``) creates the job run: kind
  ``job``, the notebook's parameters as params, the input notebook as artifact, tag ``mlops_nb.pipeline.run``.
  Its mlops-nb key is derived from the notebook's path and the orchestrator's run id, so every task finds it
  without passing ids around (no XCom), and a retried first task finds the run it made instead of a second.
- Each stage task (``mlops-nb run --stage S --pipeline-run ID``) records into it (``attach``): its stage nests
  under it and its metrics roll up onto it; the upstream stages the task restores are not recorded again (their
  own tasks recorded them). A retried task first moves its earlier attempt's stage run to MLflow's trash: one
  stage run per stage.
- ``close_parent`` (the last task, run whatever happened upstream: Airflow's teardown, KFP's exit handler) ends
  the job run FINISHED when every stage ran, else FAILED with the reason of each stage that failed or did not
  run; a stage run that a killed task left RUNNING ends KILLED.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_nb.exceptions import UsageError
from mlops_nb.jobs import parameters as params_mod
from mlops_nb.jobs.job import INPUT_ARTIFACT, NOTEBOOK_FAILED, PARAMETERS_ARTIFACT, SUCCEEDED, Attached
from mlops_nb.pipelines.model import printable
from mlops_nb.stages.params import defaults
from mlops_nb.tracking import tags
from mlops_nb.tracking.recorder import get_recorder

MAX_RUN_ID = 250
OPEN_COMMAND = "mlops-nb pipeline-run open"


@dataclass(frozen=True)
class Closed:
    """How ``close_parent`` ended the job run: ``status`` FINISHED or FAILED, and why (``reasons``)."""

    run_id: str
    status: str
    reasons: tuple[str, ...]

    def summary(self) -> str:
        head = f"{'OK' if self.status == 'FINISHED' else 'FAILED'}: pipeline job run {self.run_id} ended {self.status}"
        return "\n".join([head, *(f"  {r}" for r in self.reasons)])


def check_run_id(pipeline_run: str) -> str:
    """``pipeline_run`` when it is a usable orchestrator run id; UsageError naming the fix otherwise."""
    if not pipeline_run.strip() or len(pipeline_run) > MAX_RUN_ID or not pipeline_run.isprintable():
        raise UsageError(
            f"--pipeline-run {printable(pipeline_run)[:80]!r}: give the orchestrator's run id (Airflow: "
            f"{{{{ run_id }}}}), 1 to {MAX_RUN_ID} printable characters."
        )
    return pipeline_run


def parent_key(notebook: Path, pipeline_run: str) -> str:
    """The mlops-nb key of the job run of ``pipeline_run`` of ``notebook`` (two DAGs' run ids may be equal)."""
    text = f"mlops-nb pipeline\0{notebook.resolve()}\0{check_run_id(pipeline_run)}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def open_parent(
    notebook: Path,
    pipeline_run: str,
    parameters: dict[str, Any],
    experiment: str | None,
    *,
    name: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> Attached:
    """The job run of ``pipeline_run``: found when a first attempt made it, else created (and left RUNNING),
    named ``name`` (default: the notebook's stem) and tagged ``extra_tags`` too (jobs/pipeline.py's Dask run).

    Raises:
        UsageError: a bad run id, a missing or damaged notebook, parameters its ``parameters`` cell does not set.
    """
    from mlops_nb.jobs.runner import load_notebook
    from mlops_nb.tracking import pipeline_runs
    from mlops_nb.tracking.runs import open_run

    key = parent_key(notebook, pipeline_run)
    nb = load_notebook(notebook)
    parameters = params_mod.check_values(parameters)
    params_mod.check_names(str(notebook), nb, parameters, False)
    recorder = get_recorder()
    recorder.flush()  # an earlier attempt's records, still in its journal, first
    found = pipeline_runs.find(key)
    if found is not None:
        return Attached(found.run_id, found.experiment, key)
    path = str(notebook.resolve())
    experiment = experiment or recorder.settings.experiment or notebook.stem
    run = open_run(
        name or notebook.stem,
        experiment=experiment,
        kind="job",
        key=key,
        tags={
            **(extra_tags or {}),
            tags.NOTEBOOK: path,
            tags.MLFLOW_SOURCE_NAME: path,
            tags.MLFLOW_SOURCE_TYPE: "NOTEBOOK",
            tags.JOB_CWD: str(Path.cwd()),
            tags.PIPELINE_RUN: pipeline_run,
        },
    )
    try:
        run.log_params({**params_mod.check_values(defaults(nb)), **params_mod.like_defaults(nb, parameters)})
        run.log_text(json.dumps(parameters, indent=2), PARAMETERS_ARTIFACT)
        run.log_text(notebook.read_text(encoding="utf-8"), INPUT_ARTIFACT)
        recorder.flush()
        run_id = run.run_id
    except BaseException as e:
        run.end("FAILED", e)
        raise
    return Attached(run_id, experiment, key)


def attach(notebook: Path, pipeline_run: str, stages: tuple[str, ...]) -> Attached:
    """The job run of ``pipeline_run`` for a stage task to record into, with the stage runs of ``stages`` an
    earlier attempt of the task left moved to the trash.

    Raises:
        UsageError: no such job run (the pipeline's first task did not run).
    """
    from mlops_nb.tracking import pipeline_runs

    key = parent_key(notebook, pipeline_run)
    get_recorder().flush()  # a killed attempt's records, still in its journal, first
    found = pipeline_runs.find(key)
    if found is None:
        raise UsageError(
            f"pipeline run {printable(pipeline_run)!r} of {notebook} has no job run yet: run its first task "
            f"({OPEN_COMMAND} {notebook} --pipeline-run ID) before its stages, or drop --pipeline-run."
        )
    earlier = [s.run_id for s in pipeline_runs.stage_runs(found.run_id) if s.stage in stages]
    pipeline_runs.retire(earlier)
    return Attached(found.run_id, found.experiment, key)


def close_parent(notebook: Path, pipeline_run: str) -> Closed:
    """End the job run of ``pipeline_run``: FINISHED when each stage of ``notebook`` has a FINISHED stage run
    under it, else FAILED with why; stage runs still RUNNING (their task was killed) end KILLED first.

    Raises:
        UsageError: a bad run id, no such job run (the first task did not run).
    """
    from mlops_nb.pipelines.graph import build_graph
    from mlops_nb.pipelines.model import STAGE
    from mlops_nb.tracking import pipeline_runs

    key = parent_key(notebook, pipeline_run)
    expected = [n.name for n in build_graph(notebook).stages if n.kind == STAGE]
    get_recorder().flush()  # the journals of killed tasks' kernels, sent first
    found = pipeline_runs.find(key)
    if found is None:
        raise UsageError(
            f"pipeline run {printable(pipeline_run)!r} of {notebook} has no job run: its first task "
            f"({OPEN_COMMAND}) did not run, so there is nothing to end."
        )
    latest: dict[str, pipeline_runs.StageRun] = {}
    for run in pipeline_runs.stage_runs(found.run_id):
        if run.status not in pipeline_runs.TERMINAL:
            why = f"its task ended without ending it (killed); ended by the pipeline's last task ({pipeline_run})"
            pipeline_runs.end_killed(run.run_id, why)
            run = pipeline_runs.StageRun(run.run_id, run.stage, "KILLED", why, run.start_time)
        latest[run.stage] = run
    reasons = []
    for name in expected:
        run = latest.get(name)
        if run is None:
            reasons.append(f"stage {name}: did not run (its task or one upstream of it failed, or was not run)")
        elif run.status != "FINISHED":
            reasons.append(f"stage {name}: {run.status}" + (f": {run.error}" if run.error else ""))
    status = "FAILED" if reasons else "FINISHED"
    pipeline_runs.conclude(
        found.run_id, status, NOTEBOOK_FAILED if reasons else SUCCEEDED, "; ".join(printable(r) for r in reasons)
    )
    return Closed(found.run_id, status, tuple(reasons))
