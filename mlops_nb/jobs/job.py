"""One notebook job: a papermill execution recorded as one MLflow ``job`` run.

The process that runs the job creates the run, and starts the kernel with the run's key in its
environment: the kernel's ``%%track`` stages and ``mnb.log_*`` calls record into that run (stages nest under
it, their metrics roll up onto it). The kernel only journals; when it has exited, this process sends its
journal (MLflow is loaded here already, in the background while the notebook ran), logs the input and
executed notebooks, checks the requirements against the run's metrics, and ends the run FINISHED or FAILED
with the reason.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_nb import exit_codes
from mlops_nb.exceptions import StoreError, UsageError
from mlops_nb.gates import GateResult, Requirement, check_all
from mlops_nb.jobs.parameters import check_values
from mlops_nb.stages.params import defaults
from mlops_nb.tracking import tags
from mlops_nb.tracking.journal import JobHold, job_journals, read
from mlops_nb.tracking.provenance import NOTEBOOK_ENV
from mlops_nb.tracking.recorder import (
    CACHE_ONLY_ENV,
    JOB_JOURNAL_ENV,
    JOB_RUN_ENV,
    JOURNAL_ONLY_ENV,
    RECORD_ONLY_ENV,
    get_recorder,
    unique_id,
)
from mlops_nb.tracking.runs import Run, open_run

OPTIONS_KWARG = "mlops_nb_job"  # how run_job hands JobOptions to the papermill engine
INPUT_ARTIFACT = "notebook/input.ipynb"  # the notebook as it was before parameters were injected
OUTPUT_ARTIFACT = "notebook/output.ipynb"
PARAMETERS_ARTIFACT = "notebook/parameters.json"  # the injected parameters with their types

# Outcomes and the exit codes of `mlops-nb run` (2 is a usage error: nothing ran).
SUCCEEDED = "succeeded"
NOTEBOOK_FAILED = "notebook_failed"
REQUIREMENT_FAILED = "requirement_failed"
EXECUTION_ERROR = "execution_error"  # papermill or nbclient failed around the notebook
KERNEL_DIED = "kernel_died"
TIMED_OUT = "timed_out"
INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM: the run ends KILLED
STORE_UNAVAILABLE = "store_unavailable"  # the records did not reach MLflow in time (they stay in the journal)
PRUNED = "pruned"  # a tune's trial stopped by its pruner (mnb.report raised optuna.TrialPruned): ends FINISHED
UPSTREAM_NOT_CACHED = "upstream_not_cached"  # run --stage --no-upstream: an upstream stage missed the cache
EXIT_CODES = {
    SUCCEEDED: exit_codes.OK,
    NOTEBOOK_FAILED: exit_codes.FAILED,
    EXECUTION_ERROR: exit_codes.FAILED,
    REQUIREMENT_FAILED: exit_codes.REFUSED,
    KERNEL_DIED: exit_codes.KERNEL,
    TIMED_OUT: exit_codes.KERNEL,
    INTERRUPTED: exit_codes.INTERRUPTED,
    STORE_UNAVAILABLE: exit_codes.STORE,
    PRUNED: exit_codes.OK,
    UPSTREAM_NOT_CACHED: exit_codes.USAGE,
}


@dataclass(frozen=True)
class Attached:
    """A job run another process opened and ends (a pipeline run's, jobs/pipeline_run.py): the job records its
    stage into it."""

    run_id: str
    experiment: str
    key: str


@dataclass
class JobOptions:
    """How to record a job (the engine's ``mlops_nb_job`` argument). ``result`` is filled in by the engine."""

    experiment: str | None = None
    run_name: str | None = None
    parent_run_id: str | None = None  # a sweep's run, by MLflow id
    parent_key: str | None = None  # or by mlops-nb key, when this process's records are sent by the sweep's
    tags: dict[str, str] = field(default_factory=dict)
    requirements: list[Requirement] = field(default_factory=list)
    cache: bool = True
    send: bool = True  # False: leave the records in the journals for the calling process (a sweep's) to send
    warm_kernels: bool = False  # run in a kernel started ahead, if there is one (a sweep's worker)
    prestart: bool = False  # and start one for the next job while this one runs
    save_every_cell: bool = True  # papermill's saves of the output notebook after each cell (False: at the end)
    # run --stage/--until (pipelines/select.py): the code cells to skip, counted among the notebook's cells
    # without papermill's injected-parameters cell, and the stages the kernel must serve from the cache
    skip_cells: tuple[int, ...] = ()
    cache_only: tuple[str, ...] = ()
    # run --stage NAME --pipeline-run ID (jobs/pipeline_run.py): record NAME into that pipeline run's job run
    attached: Attached | None = None
    stage: str | None = None
    result: JobResult | None = None


@dataclass
class StageSummary:
    name: str
    status: str
    cache_hit: bool
    duration: float | None


@dataclass
class JobResult:
    """What a job did: the run, how it ended and why, its metrics and stages. ``run_id`` is '' until the
    records are sent (a sweep worker's job: the sweep fills it in from ``key``)."""

    run_id: str
    key: str
    experiment: str
    outcome: str
    message: str
    metrics: dict[str, float]
    stages: list[StageSummary]
    gates: list[GateResult]
    duration: float
    output: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == SUCCEEDED

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def summary(self) -> str:
        """A short human summary: outcome, metrics, stages and cache hits, requirements."""
        hits = sum(s.cache_hit for s in self.stages)
        run = self.run_id or f"with key {self.key} (tag mlops_nb.run_key; not in MLflow yet)"
        lines = [
            f"{'OK' if self.ok else 'FAILED'} ({self.outcome}) in {self.duration:.1f} s: run {run} "
            f"in experiment {self.experiment!r}",
        ]
        if self.message:
            lines.append(f"  {self.message}")
        if self.metrics:
            lines.append("  metrics: " + ", ".join(f"{k}={v:.6g}" for k, v in sorted(self.metrics.items())))
        if self.stages:
            lines.append(f"  stages: {len(self.stages)} ({hits} from the cache)")
            for s in self.stages:
                took = f"{s.duration:.2f} s" if s.duration is not None else ""
                lines.append(f"    {s.name:<20} {s.status:<9} {'cache hit' if s.cache_hit else took}")
        lines.extend(f"  {'ok  ' if g.ok else 'FAIL'} {g.message}" for g in self.gates)
        if self.output:
            lines.append(f"  output notebook: {self.output}")
        return "\n".join(lines)


class Job:
    """The MLflow side of one execution; the engine calls ``kernel_env()`` before and ``finish()`` after."""

    def __init__(self, notebook: str | None, nb: Any, options: JobOptions) -> None:
        self.options = options
        self.started = time.monotonic()
        self.notebook = str(Path(notebook).resolve()) if notebook and "://" not in notebook else notebook
        recorder = get_recorder()
        self.settings = recorder.settings
        stem = Path(notebook).stem if notebook else "notebook"
        self.experiment = options.experiment or self.settings.experiment or stem
        run_tags: dict[str, str] = {}
        if self.notebook:
            run_tags.update({tags.NOTEBOOK: self.notebook, tags.MLFLOW_SOURCE_NAME: self.notebook})
            run_tags[tags.MLFLOW_SOURCE_TYPE] = "NOTEBOOK"
        run_tags[tags.JOB_CWD] = str(Path.cwd())  # the kernel's working directory (papermill has moved into --cwd)
        run_tags.update(options.tags)
        if options.parent_run_id:
            run_tags[tags.PARENT] = options.parent_run_id
        # Checked before the run opens (plain papermill callers come here unchecked): a refusal records nothing.
        parameters = check_values(dict(nb.metadata.get("papermill", {}).get("parameters", {})))
        # The run's params are every parameter the notebook ran with: its defaults, then the injected values
        # (so two runs compare on all of them, as MLflow shows params). The artifact keeps the injected ones.
        try:
            ran_with = {**check_values(defaults(nb)), **parameters}
        except UsageError:  # a default MLflow cannot hold: the injected ones still go in
            ran_with = parameters
        self._known_id = ""
        self._hold: JobHold | None = None
        if options.attached is not None:
            self._attach(options.attached)
            return
        self.run = open_run(
            options.run_name or stem,
            experiment=self.experiment,
            kind="job",
            tags=run_tags,
            parent_key=options.parent_key,
        )
        self.hold_key = self.run.key
        try:  # from here on the run is open: whatever fails ends it FAILED with the reason, never RUNNING
            self._hold = JobHold(self.settings.journal_dir, self.hold_key)  # the kernel's journals are ours to read
            self.run.log_params(ran_with)
            self.run.log_text(json.dumps(parameters, indent=2), PARAMETERS_ARTIFACT)
            if notebook:
                self._log_input(notebook)
        except BaseException as e:
            self.abandon(e)
            raise

    def _attach(self, parent: Attached) -> None:
        """Record into the pipeline run's job run (which its first task opened and its last one ends), under a
        key of this task's own for the kernel's journals (tasks running at once share the job run)."""
        self.experiment = parent.experiment
        self._known_id = parent.run_id
        self.run = Run(get_recorder(), kind="job", name=None, experiment=parent.experiment, attach=parent.key)
        self.hold_key = unique_id()
        self._hold = JobHold(self.settings.journal_dir, self.hold_key)

    def abandon(self, error: BaseException) -> None:
        """End the run before the notebook ran (FAILED, KILLED on Ctrl-C, with the reason); release the hold."""
        if self._hold is not None:
            self._hold.release()
        self.run.end("KILLED" if _interrupted(error) else "FAILED", error)

    def _log_input(self, notebook: str) -> None:
        import nbformat
        from papermill.iorw import load_notebook_node

        self.run.log_text(nbformat.writes(load_notebook_node(notebook)), INPUT_ARTIFACT)

    def kernel_env(self) -> dict[str, str]:
        """Environment for the kernel: record into this job's run, journal only, same store and cache."""
        import os

        from mlops_nb.jobs.kernel_env import KERNEL_ENV

        s = self.settings
        env = {
            **KERNEL_ENV,
            **os.environ,
            JOB_RUN_ENV: self.run.key,
            JOB_JOURNAL_ENV: self.hold_key,
            JOURNAL_ONLY_ENV: "1",
            "MLFLOW_TRACKING_URI": s.tracking_uri,
            "MLOPS_NB_EXPERIMENT": self.experiment,
            "MLOPS_NB_HOME": str(s.home),
            "MLOPS_NB_CACHE_DIR": str(s.cache_dir),
            "MLOPS_NB_CACHE": "on" if self.options.cache and s.cache else "off",
        }
        if s.cache_uri:
            env["MLOPS_NB_CACHE_URI"] = s.cache_uri  # the shared cache, wherever the kernel finds its settings
        if self.notebook:
            env[NOTEBOOK_ENV] = self.notebook
        if self.options.cache_only:
            env[CACHE_ONLY_ENV] = json.dumps(list(self.options.cache_only))
        if self.run.attached:
            env[RECORD_ONLY_ENV] = json.dumps([self.options.stage])
        return env

    def finish(self, nb: Any, error: BaseException | None, output: str | None) -> JobResult:
        """Record the executed notebook, check the requirements, end the run, send it all (``options.send``)."""
        run = self.run
        try:
            outcome, message, metrics, stages, gates = self._conclude(nb, error)
        except BaseException as e:
            run.end("FAILED", e)  # never leave the job RUNNING
            raise
        finally:
            if self._hold is not None:
                self._hold.release()
        run.end({SUCCEEDED: "FINISHED", PRUNED: "FINISHED", INTERRUPTED: "KILLED"}.get(outcome, "FAILED"))
        run_id = ""
        if self.options.send:
            try:
                send_jobs([self.hold_key])
                run_id = self._known_id or run.run_id
            except StoreError as e:
                # The run was most likely created before the store went away: its id is known, and the rest
                # of its records follow from the journal. Say so rather than lose the id with the error.
                run_id = run.known_run_id
                message = f"the notebook's outcome: {outcome}{f' ({message})' if message else ''}. {e}"
                outcome = STORE_UNAVAILABLE
        return JobResult(
            run_id=run_id,
            key=run.key,
            experiment=self.experiment,
            outcome=outcome,
            message=message,
            metrics=metrics,
            stages=stages,
            gates=gates,
            duration=time.monotonic() - self.started,
            output=output,
        )

    def _conclude(
        self, nb: Any, error: BaseException | None
    ) -> tuple[str, str, dict[str, float], list[StageSummary], list[GateResult]]:
        import nbformat

        outcome, message = _classify(nb, error)
        run = self.run
        if run.attached:  # one pipeline task of the job run: its executed notebook apart, its failure named
            task = "".join(c if c.isalnum() or c in "._-" else "_" for c in self.options.stage or "task")[:200]
            run.log_text(nbformat.writes(nb), f"notebook/tasks/{task}.out.ipynb")
            if outcome not in (SUCCEEDED, PRUNED):
                run.set_tag(tags.ERROR, f"stage {self.options.stage}: {message or outcome}"[:1000])
        else:
            run.log_text(nbformat.writes(nb), OUTPUT_ARTIFACT)
        records = [r for path in job_journals(self.settings.journal_dir, self.hold_key) for r in read(path).pending]
        metrics, stages = summarize(records, run.key)
        gates: list[GateResult] = []
        if outcome == SUCCEEDED and self.options.requirements:
            gates = check_all(self.options.requirements, metrics)
            failed = [g for g in gates if not g.ok]
            if failed:
                outcome = REQUIREMENT_FAILED
                message = "requirement not met: " + ", ".join(str(g.requirement) for g in failed)
            run.set_tag(tags.JOB_REQUIREMENTS, "; ".join(("ok: " if g.ok else "FAILED: ") + g.message for g in gates))
        if not run.attached:  # the pipeline's last task sets the job run's outcome
            run.set_tag(tags.JOB_OUTCOME, outcome)
            if message:
                run.set_tag(tags.ERROR, message[:1000])
        return outcome, message, metrics, stages, gates


def send_jobs(keys: list[str]) -> None:
    """Flush this process's records into MLflow with every journal the kernels of jobs ``keys`` wrote (a
    kernel still shutting down, or another process sending its journal: wait for them)."""
    recorder = get_recorder()
    settings = recorder.settings
    deadline = time.monotonic() + settings.flush_timeout
    while True:
        sent = recorder.flush(max(0.0, deadline - time.monotonic()))
        if sent and not any(job_journals(settings.journal_dir, key) for key in keys):
            return
        if time.monotonic() >= deadline:
            sender = recorder.sender
            raise StoreError(
                f"The jobs' records did not reach MLflow at {settings.tracking_uri} within "
                f"{settings.flush_timeout:g} s (last error: {sender.last_error if sender else None}). They are kept "
                f"in {settings.journal_dir} and sent by the next mlops-nb process."
            )
        time.sleep(0.05)


def _interrupted(error: BaseException) -> bool:
    """A Ctrl-C or SIGTERM, also when it broke into asyncio's machinery and surfaced as another error
    (``InvalidStateError`` from a future it left half-done) with the KeyboardInterrupt in its chain."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _classify(nb: Any, error: BaseException | None) -> tuple[str, str]:
    """The outcome of an execution and a message naming the cell and exception, or the kernel's fate."""
    if error is not None:
        from nbclient.exceptions import CellTimeoutError, DeadKernelError

        where = _last_started(nb)
        if _interrupted(error):
            return INTERRUPTED, f"interrupted (Ctrl-C or SIGTERM) while running {where}; the kernel was stopped"
        if isinstance(error, CellTimeoutError):
            return TIMED_OUT, f"{where} ran longer than the timeout; the kernel was stopped ({error})"
        if isinstance(error, DeadKernelError):
            return KERNEL_DIED, f"the kernel died while running {where} (killed, out of memory, or os._exit)"
        if isinstance(error, RuntimeError) and "didn't respond" in str(error):  # nbclient's start-up timeout
            return KERNEL_DIED, f"the kernel did not start: {error}"
        return EXECUTION_ERROR, f"the execution stopped at {where}: {type(error).__name__}: {error}"
    failed = _failed_cell(nb)
    if ": TrialPruned: " in failed:  # the pruner stopped the trial: its values so far are the record
        return PRUNED, failed
    if ": UpstreamNotCached: " in failed:
        return UPSTREAM_NOT_CACHED, failed
    return (NOTEBOOK_FAILED, failed) if failed else (SUCCEEDED, "")


def _failed_cell(nb: Any) -> str:
    """'cell 4 (In [3]): ZeroDivisionError: division by zero' (cells counted from 1, as a reader counts them)
    for the first failing cell, or ''."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", ()):
            if output.get("output_type") == "error" and not (
                output.get("ename") == "SystemExit" and output.get("evalue") in ("", "0")
            ):
                return f"cell {index + 1} (In [{cell.get('execution_count')}]): {output['ename']}: {output['evalue']}"
        if cell.get("metadata", {}).get("papermill", {}).get("exception") is True:
            return f"cell {index + 1} (In [{cell.get('execution_count')}]) was executing when the kernel stopped"
    return ""


def _last_started(nb: Any) -> str:
    started = [i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    if not started:
        return "kernel start-up"
    cell = nb.cells[started[-1]]
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    return f"cell {started[-1] + 1} ({first[:60]!r})"


def summarize(records: list[dict[str, Any]], job: str) -> tuple[dict[str, float], list[StageSummary]]:
    """The job's metrics (latest value per key, as MLflow shows them) and its stages, from the kernel's
    journal records: known before anything is sent."""
    latest: dict[str, tuple[int, int, float]] = {}
    stages: dict[str, StageSummary] = {}
    for rec in records:
        op, run = rec["op"], rec["run"]
        if op == "metric" and job in (run, rec.get("rollup")):
            seen = latest.get(rec["k"])
            if seen is None or (rec["step"], rec["t"]) >= seen[:2]:
                latest[rec["k"]] = (rec["step"], rec["t"], rec["v"])
        elif op == "start" and rec.get("parent") == job and tags.STAGE in rec.get("tags", {}):
            stages[run] = StageSummary(rec["tags"][tags.STAGE], "KILLED", False, None)
        elif run in stages:
            if op == "end":
                stages[run].status = rec["status"]
            elif op == "tag" and rec["k"] == tags.CACHE_HIT:
                stages[run].cache_hit = rec["v"] == "true"
            elif op == "tag" and rec["k"] == tags.DURATION:
                stages[run].duration = float(rec["v"])
    return {k: v for k, (_, _, v) in latest.items()}, list(stages.values())
