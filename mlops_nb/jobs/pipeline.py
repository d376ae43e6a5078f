"""A run of a notebook's stage graph on Dask (``mlops-nb run NOTEBOOK --executor dask``): independent stages
run at once, with no orchestrator.

It is a pipeline run (jobs/pipeline_run.py) with Dask as its orchestrator, under a run id of its own
(``dask-`` and 32 hex digits): this process opens its job run as ``mlops-nb pipeline-run open`` does; each
stage is a Dask task that runs it as ``mlops-nb run --stage NAME --pipeline-run ID`` does (its upstream
restored from the stage cache, only its own stage recorded) once its upstream tasks have ended; the end is
``mlops-nb pipeline-run close`` (FINISHED, or FAILED naming the stages that failed or did not run). So the
records are those of a whole-notebook ``mlops-nb run``: one job run, each stage nested once. Workers must reach
the tracking store and the stage cache (on one machine: the project's; across machines: an ``mlflow server``
and ``MLOPS_NB_CACHE_URI``). Stages that do not depend on a failing one finish.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_nb import exit_codes
from mlops_nb.exceptions import MlopsNbError
from mlops_nb.jobs.job import JobOptions
from mlops_nb.jobs.parameters import check_values
from mlops_nb.jobs.pipeline_run import attach, close_parent, open_parent
from mlops_nb.jobs.runner import load_notebook, run_job, select_stages
from mlops_nb.jobs.sweep import dask_client
from mlops_nb.tracking import tags
from mlops_nb.tracking.recorder import configure, get_recorder


class StageFailed(MlopsNbError):
    """Stage ``stage`` of a pipeline run failed; the message says how."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(stage, message)
        self.stage = stage

    def __str__(self) -> str:
        return self.args[1]


@dataclass
class StageTask:
    """One stage, as sent to a worker (picklable)."""

    stage: str
    notebook: str
    parameters: dict[str, Any]
    pipeline_run: str
    cache: bool
    settings: dict[str, Any]  # the job's tracking store and stage cache (recorder.configure)
    cwd: str | None
    timeout: float | None
    start_timeout: float


@dataclass
class StageOutcome:
    stage: str
    ok: bool
    message: str
    duration: float


@dataclass
class PipelineResult:
    run_id: str
    experiment: str
    stages: list[StageOutcome]
    duration: float

    @property
    def failed(self) -> list[StageOutcome]:
        return [s for s in self.stages if not s.ok]

    @property
    def exit_code(self) -> int:
        return exit_codes.FAILED if self.failed else exit_codes.OK

    def summary(self) -> str:
        ok = len(self.stages) - len(self.failed)
        lines = [
            f"job {self.run_id} in experiment {self.experiment!r}: {ok} of {len(self.stages)} stages succeeded "
            f"on Dask in {self.duration:.1f} s"
        ]
        lines += [f"  {'ok  ' if s.ok else 'FAIL'} {s.stage:<20} {s.message}" for s in self.stages]
        return "\n".join(lines)


def run_stage_task(task: StageTask) -> StageOutcome:
    """Run one stage of the pipeline's job (in a Dask worker): StageFailed, naming it, when it fails."""
    configure(**task.settings)  # the job's store and cache, whichever project the worker served before
    notebook = Path(task.notebook)
    selection = select_stages(notebook, stage=task.stage, until=None, cache=task.cache)
    options = JobOptions(cache=task.cache, stage=task.stage)
    options.attached = attach(notebook, task.pipeline_run, (task.stage,))  # as run --stage S --pipeline-run ID
    with tempfile.TemporaryDirectory(prefix="mlops-nb-stage-") as tmp:
        result = run_job(
            notebook,
            output=Path(tmp) / "out.ipynb",
            parameters=task.parameters,
            options=options,
            cwd=Path(task.cwd) if task.cwd else None,
            timeout=task.timeout,
            start_timeout=task.start_timeout,
            selection=selection,
        )
    if not result.ok:
        raise StageFailed(task.stage, f"stage {task.stage!r} failed: {result.message or result.outcome}")
    return StageOutcome(task.stage, True, f"{result.duration:.1f} s", result.duration)


def run_pipeline(
    notebook: Path,
    *,
    parameters: dict[str, Any],
    options: JobOptions,
    scheduler: str | None,
    cwd: Path | None = None,
    timeout: float | None = None,
    start_timeout: float = 60,
) -> PipelineResult:
    """Run ``notebook``'s stages as Dask tasks, one job run. UsageError (nothing recorded): a notebook
    without stages or one the pre-flight check refuses, Dask missing, an unreachable scheduler."""
    from mlops_nb.pipelines.graph import build_graph
    from mlops_nb.pipelines.tasks import plan

    started = time.monotonic()
    notebook = notebook.resolve()
    nb = load_notebook(notebook)
    graph = build_graph(notebook, nb)
    layout = plan(graph)  # UsageError: no stages, pre-flight problems
    parameters = check_values(parameters)
    settings = get_recorder().settings
    client = dask_client(scheduler, min(len(layout.tasks), os.cpu_count() or 1))
    try:
        pipeline_run = f"dask-{uuid.uuid4().hex}"
        run_tags = {tags.JOB_EXECUTOR: "dask", **options.tags}
        job = open_parent(  # as mlops-nb pipeline-run open NOTEBOOK --pipeline-run ID
            notebook, pipeline_run, parameters, options.experiment, name=options.run_name, extra_tags=run_tags
        )
        try:
            outcomes = _run_tasks(
                client,
                layout,
                notebook,
                parameters,
                pipeline_run,
                options,
                settings,
                cwd=cwd,
                timeout=timeout,
                start_timeout=start_timeout,
            )
        finally:  # as mlops-nb pipeline-run close: FINISHED, or FAILED naming each stage that failed or did not run
            close_parent(notebook, pipeline_run)
    finally:
        cluster = client.cluster if not scheduler else None
        client.close()
        if cluster is not None:
            cluster.close()
    return PipelineResult(job.run_id, job.experiment, outcomes, time.monotonic() - started)


def _run_tasks(
    client: Any,
    layout: Any,
    notebook: Path,
    parameters: dict[str, Any],
    pipeline_run: str,
    options: JobOptions,
    settings: Any,
    **run: Any,
) -> list[StageOutcome]:
    """Run one task per stage, each once its upstream tasks have ended; their outcomes in notebook order."""
    from distributed import as_completed

    where = {
        "tracking_uri": settings.tracking_uri,
        "home": settings.home,
        "cache_dir": settings.cache_dir,
        "cache_uri": settings.cache_uri,
        "cache": options.cache and settings.cache,
    }

    done: dict[str, StageOutcome] = {}
    running: dict[Any, str] = {}
    waiting = list(layout.tasks)

    def submit_ready() -> list[Any]:
        # a task goes out once its upstream tasks ended (no data passes between them: the cache carries it,
        # and any idle worker may take it); one after a failed upstream task does not run
        sent: list[Any] = []
        changed = True
        while changed:
            changed = False
            for task in list(waiting):
                if not all(t in done for t in task.upstream):
                    continue
                waiting.remove(task)
                changed = True
                broken = [t for t in task.upstream if not done[t].ok]
                if broken:
                    done[task.task_id] = StageOutcome(
                        task.stages[0], False, f"not run: upstream {broken[0]} failed", 0.0
                    )
                    continue
                future = client.submit(
                    run_stage_task,
                    _task(task.stages[0]),
                    pure=False,
                    key=f"mlops-nb-stage-{task.task_id}-{pipeline_run}",
                )
                running[future] = task.task_id
                sent.append(future)
        return sent

    def _task(stage: str) -> StageTask:
        return StageTask(
            stage=stage,
            notebook=str(notebook),
            parameters=parameters,
            pipeline_run=pipeline_run,
            cache=options.cache,
            settings=where,
            cwd=str(run["cwd"]) if run["cwd"] else None,
            timeout=run["timeout"],
            start_timeout=run["start_timeout"],
        )

    finished = as_completed(submit_ready())
    # every worker imports papermill and the job machinery while the first stages run, not when one starts
    client.run(_preload, wait=False)
    for future in finished:
        task_id = running.pop(future)
        done[task_id] = _outcome(next(t.stages[0] for t in layout.tasks if t.task_id == task_id), future)
        for more in submit_ready():
            finished.add(more)
    return [done[task.task_id] for task in layout.tasks]


async def _preload() -> None:  # a coroutine: Dask runs it on each worker without waiting for it
    import mlops_nb.jobs.preload  # papermill, the fast way
    import mlops_nb.jobs.runner  # noqa: F401


def _outcome(stage: str, future: Any) -> StageOutcome:
    try:
        return future.result()
    except StageFailed as e:
        return StageOutcome(stage, False, str(e), 0.0)
    except Exception as e:  # noqa: BLE001 - the task could not run (a worker died): the stage failed
        return StageOutcome(stage, False, f"stage {stage!r} could not run: {type(e).__name__}: {e}", 0.0)
