"""Sweeps: one notebook over a grid of parameters, as a ``sweep`` run with one child ``job`` run per point.

Two executors run the jobs:

- ``local``: a pool of worker processes forked from a server that has imported papermill once (no Python
  start-up or papermill import per job). Workers only journal; this process sends their journals to MLflow
  as each job ends, so MLflow loads once, here, while the kernels run.
- ``dask``: each job is a task on a Dask cluster (``--scheduler ADDRESS``, or a local cluster of processes);
  a worker runs it like ``mlops-nb run`` and sends its own records, so every machine must reach the
  tracking URI (an ``mlflow server`` shared by the cluster). The notebook travels with the task.

A failed job does not stop the others; the sweep run lists the failures and the best job by a metric.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_nb import exit_codes
from mlops_nb.exceptions import UsageError
from mlops_nb.jobs.job import JobOptions, JobResult, send_jobs
from mlops_nb.jobs.parameters import load_yaml, typed
from mlops_nb.tracking import tags
from mlops_nb.tracking.recorder import get_recorder
from mlops_nb.tracking.runs import open_run

RESULTS_ARTIFACT = "sweep/results.json"


def parse_grid(specs: tuple[str, ...] | list[str]) -> dict[str, list[Any]]:
    """``["alpha=0.1,0.5", "kernel=rbf,linear"]`` -> ``{"alpha": [0.1, 0.5], "kernel": ["rbf", "linear"]}``.

    Values are typed as ``-p`` values are; ``name=[1, "a,b"]`` is read as a YAML list (for values with commas).
    """
    import yaml

    grid: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not values.strip():
            raise UsageError(f"--grid {spec!r}: write it as NAME=v1,v2,... (e.g. --grid alpha=0.1,0.5).")
        if name in grid:
            raise UsageError(f"--grid {name} is given twice; list all its values in one --grid {name}=v1,v2.")
        if values.lstrip().startswith("["):
            try:
                parsed = load_yaml(values, f"--grid {name}")
            except yaml.YAMLError as e:
                raise UsageError(f"--grid {spec!r}: the list is not valid YAML ({e}).") from e
            if not isinstance(parsed, list) or not parsed:
                raise UsageError(f"--grid {spec!r}: expected a non-empty list like [1, 2].")
            grid[name] = parsed
        else:
            grid[name] = [typed(v.strip()) for v in values.split(",")]
    return grid


def combinations(grid: dict[str, list[Any]], sample: int | None = None, seed: int | None = None) -> list[dict]:
    """Every point of the grid, in order; or ``sample`` of them drawn without replacement (seeded)."""
    names = list(grid)
    points = [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]
    if sample is not None:
        if sample < 1:
            raise UsageError(f"--random {sample}: draw at least 1 point.")
        points = random.Random(seed).sample(points, min(sample, len(points)))
    return points


@dataclass
class Task:
    """One job of a sweep, as sent to a worker (picklable)."""

    index: int
    notebook: str  # absolute path (local) or the file name (dask: the text travels in ``source``)
    output: str
    parameters: dict[str, Any]
    options: JobOptions
    run: dict[str, Any] = field(default_factory=dict)  # kernel, cwd, timeout, start_timeout, allow_new
    source: str | None = None
    tracking_uri: str | None = None


@dataclass
class Child:
    """A job of the sweep: its point of the grid and what happened (``result`` None: it could not start)."""

    index: int
    parameters: dict[str, Any]
    result: JobResult | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.ok

    @property
    def why(self) -> str:
        if self.result is None:
            return self.error
        return self.result.message or self.result.outcome


@dataclass
class SweepResult:
    run_id: str
    experiment: str
    children: list[Child]
    metric: str | None
    best: Child | None
    duration: float

    @property
    def failed(self) -> list[Child]:
        return [c for c in self.children if not c.ok]

    @property
    def unknown_metric(self) -> str | None:
        """Why no job is the best by ``metric`` when jobs succeeded but none logged it (a typo), else None."""
        done = [c for c in self.children if c.ok and c.result is not None]
        if not self.metric or self.best is not None or not done:
            return None
        logged = sorted({k for c in done for k in c.result.metrics})  # type: ignore[union-attr]
        close = [m for m in logged if m.startswith(self.metric)][:1] or difflib.get_close_matches(
            self.metric, logged, n=1
        )
        return (
            f"--metric {self.metric!r}: no job logged it, so none is the best. The jobs logged "
            f"{', '.join(logged) if logged else 'no metric at all'}."
            + (f" Did you mean --metric {close[0]}?" if close else "")
        )

    @property
    def exit_code(self) -> int:
        if self.failed:
            return exit_codes.FAILED
        return exit_codes.USAGE if self.unknown_metric else exit_codes.OK

    def summary(self) -> str:
        ok = len(self.children) - len(self.failed)
        lines = [
            f"sweep {self.run_id} in experiment {self.experiment!r}: {ok} of {len(self.children)} jobs "
            f"succeeded in {self.duration:.1f} s"
        ]
        for child in self.children:
            point = ", ".join(f"{k}={v!r}" for k, v in child.parameters.items())
            run = child.result.run_id if child.result else "-"
            value = child.result.metrics.get(self.metric) if child.result and self.metric else None
            shown = f" {self.metric}={value:.6g}" if value is not None else ""
            lines.append(f"  {'ok  ' if child.ok else 'FAIL'} [{child.index}] {point}  run {run}{shown}")
            if not child.ok:
                lines.append(f"         {child.why}")
        if self.best is not None and self.best.result is not None:
            value = self.best.result.metrics[self.metric] if self.metric else None
            lines.append(f"best by {self.metric}: [{self.best.index}] run {self.best.result.run_id} ({value:.6g})")
        if self.unknown_metric:
            lines.append(f"Error: {self.unknown_metric}")
        return "\n".join(lines)


_running = False  # in a local worker: a job is running
_stopping = False  # in a local worker: the sweep was interrupted, start no more jobs


def run_task(task: Task) -> JobResult:
    """Run one job of a sweep (in a worker process)."""
    import os

    from mlops_nb.tracking import recorder

    global _running
    if _stopping:  # queued in this worker before the sweep was interrupted
        raise KeyboardInterrupt("the sweep was interrupted before this job started")
    if not task.options.send:  # the sweep's process sends this worker's journals
        os.environ[recorder.JOURNAL_ONLY_ENV] = "1"
    if task.tracking_uri:
        recorder.configure(tracking_uri=task.tracking_uri)
    with tempfile.TemporaryDirectory(prefix="mlops-nb-sweep-") as tmp:
        notebook = Path(task.notebook)
        if task.source is not None:  # a remote worker: the notebook came with the task
            notebook = Path(tmp) / Path(task.notebook).name
            notebook.write_text(task.source, encoding="utf-8")
        output = Path(task.output) if task.output else Path(tmp) / f"{task.index}.ipynb"
        output.parent.mkdir(parents=True, exist_ok=True)
        from mlops_nb.jobs.runner import run_job

        _running = True
        try:
            return run_job(notebook, output=output, parameters=task.parameters, options=task.options, **task.run)
        finally:
            _running = False
            if not task.options.send:
                recorder.shutdown()  # releases this job's journal: the sweep's process sends it


def _worker_exit() -> None:
    from mlops_nb.jobs import kernels

    kernels.close()


def _worker_stop(signum: int, frame: Any) -> None:
    # The sweep's process asks a worker to stop: a running job is interrupted (it ends KILLED, its kernel
    # is stopped); an idle worker just leaves. Either way the worker's exit hooks stop its kernels.
    global _stopping
    _stopping = True
    if _running:
        raise KeyboardInterrupt("the sweep was interrupted")
    raise SystemExit(130)


def _worker_init() -> None:
    """In each worker process: shut its kernels down when it exits (workers leave through os._exit); stop
    on the sweep process's SIGTERM only, so that a Ctrl-C in the terminal, which reaches the whole process
    group, interrupts each job once, in order."""
    import signal
    from multiprocessing.util import Finalize

    Finalize(None, _worker_exit, exitpriority=50)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_stop)


def _local_pool(parallel: int) -> Any:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Workers fork from a server that imported papermill once: no interpreter start-up or imports per job,
    # and no threads of this process (the sender's) inherited.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["mlops_nb.jobs.preload", "mlops_nb.jobs.runner", "mlops_nb.jobs.sweep"])
    return ProcessPoolExecutor(max_workers=parallel, mp_context=context, initializer=_worker_init)


def dask_client(scheduler: str | None, parallel: int) -> Any:
    try:
        from distributed import Client, LocalCluster
    except ImportError as e:
        raise UsageError(
            f"--executor dask needs Dask, which is not installed ({e}). Install it with: pip install 'mlops-nb[dask]'"
        ) from e
    if scheduler:
        try:
            return Client(scheduler, timeout="30s")
        except OSError as e:
            raise UsageError(
                f"Cannot reach the Dask scheduler at {scheduler}: {e}. Start one (dask scheduler) and workers "
                "(dask worker ADDRESS), or leave out --scheduler for a local cluster."
            ) from e
    cluster = LocalCluster(n_workers=parallel, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster)


def run_sweep(
    notebook: Path,
    grid: dict[str, list[Any]],
    *,
    points: list[dict[str, Any]] | None = None,
    fixed: dict[str, Any] | None = None,
    options: JobOptions | None = None,
    run: dict[str, Any] | None = None,
    parallel: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    metric: str | None = None,
    higher_is_better: bool = True,
    output_dir: Path | None = None,
    progress: bool = False,
) -> SweepResult:
    """Run ``notebook`` once per point of ``grid`` (or of ``points``), ``parallel`` at a time.

    Args:
        fixed: parameters every job gets (the grid's values override them).
        options: experiment, tags, requirements, cache for every job.
        run: ``run_job`` arguments for every job (kernel, cwd, timeout, start_timeout, allow_new).
        metric: pick the best job by this metric (``higher_is_better`` or not).
        output_dir: where the executed notebooks go (default: ``<home>/sweeps/<notebook stem>-<time>/``).

    Raises:
        UsageError: a bad notebook, grid, parameter or executor; nothing was run.
    """
    started = time.monotonic()
    options = options or JobOptions()
    run = dict(run or {})
    points = points if points is not None else combinations(grid)
    fixed, grid, points = _checked(notebook, grid, points, fixed or {}, run, parallel, executor)
    settings = get_recorder().settings
    experiment = options.experiment or settings.experiment or notebook.stem
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output_dir = output_dir or settings.home / "sweeps" / f"{notebook.stem}-{stamp}"

    sweep = open_run(
        f"{notebook.stem} sweep",
        experiment=experiment,
        kind="sweep",
        tags={tags.NOTEBOOK: str(notebook.resolve()), tags.SWEEP_JOBS: str(len(points))},
    )
    try:  # an opened run always ends: FAILED (KILLED on Ctrl-C) with the reason if anything below raises
        sweep.log_params({f"grid.{name}": json.dumps(values) for name, values in grid.items()})
        sweep.log_params({f"fixed.{name}": value for name, value in fixed.items()})
        children = [Child(i, point) for i, point in enumerate(points)]
        job_options = dataclasses.replace(options, experiment=experiment)
        tasks = [
            _task(child, len(children), notebook, fixed, job_options, output_dir, executor, parallel, run)
            for child in children
        ]
        if executor == "local":
            for task in tasks:
                task.options.parent_key = sweep.key
                task.options.send = False
            _run_local(children, tasks, parallel, progress)
        else:
            sweep_id = sweep.run_id  # the workers tag their runs with it: it must exist first
            source = notebook.read_text(encoding="utf-8")
            for task in tasks:
                task.options.parent_run_id = sweep_id
                task.source = source
                task.tracking_uri = settings.tracking_uri
            _run_dask(children, tasks, scheduler, parallel, progress)
        best = _best(children, metric, higher_is_better)
        _record(sweep, children, metric, best)
    except BaseException as e:
        sweep.end("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED", e)
        raise
    sweep.end("FINISHED" if any(c.ok for c in children) else "FAILED")
    send_jobs([c.result.key for c in children if c.result is not None])
    return SweepResult(sweep.run_id, experiment, children, metric, best, time.monotonic() - started)


def _checked(
    notebook: Path,
    grid: dict[str, list[Any]],
    points: list[dict[str, Any]],
    fixed: dict[str, Any],
    run: dict[str, Any],
    parallel: int,
    executor: str,
) -> tuple[dict[str, Any], dict[str, list[Any]], list[dict[str, Any]]]:
    """The sweep's arguments checked, before its run opens (a refusal leaves nothing behind): the fixed
    parameters, the grid and the points as the runs will record them."""
    from mlops_nb.jobs import parameters as params_mod
    from mlops_nb.jobs.runner import kernel_of, load_notebook

    if not grid or not points:
        raise UsageError("The sweep has no grid: give at least one --grid NAME=v1,v2 (mlops-nb run runs one job).")
    if parallel < 1:
        raise UsageError(f"--parallel {parallel}: run at least 1 job at a time.")
    if executor not in ("local", "dask"):
        raise UsageError(f"--executor {executor!r}: use local or dask.")
    fixed = params_mod.check_values(fixed)
    grid = {name: params_mod.check_values({name: values}, "--grid")[name] for name, values in grid.items()}
    points = [params_mod.check_values(point) for point in points]
    nb = load_notebook(notebook)
    params_mod.check_names(str(notebook), nb, {**fixed, **grid}, run.get("allow_new", False))
    kernel_of(nb, run.get("kernel"))
    fixed = params_mod.like_defaults(nb, fixed)
    grid = {name: [params_mod.like_defaults(nb, {name: v})[name] for v in values] for name, values in grid.items()}
    points = [params_mod.like_defaults(nb, point) for point in points]
    return fixed, grid, points


def _task(
    child: Child,
    jobs: int,
    notebook: Path,
    fixed: dict[str, Any],
    options: JobOptions,
    output_dir: Path,
    executor: str,
    parallel: int,
    run: dict[str, Any],
) -> Task:
    """The job of one point of the sweep."""
    return Task(
        index=child.index,
        notebook=str(notebook.resolve()),
        output=str(output_dir / f"{child.index:03d}-{_slug(child.parameters)}.ipynb") if executor == "local" else "",
        parameters={**fixed, **child.parameters},
        options=dataclasses.replace(
            options,
            run_name=f"{notebook.stem}[{_slug(child.parameters, sep=', ')}]",
            tags={**options.tags, tags.SWEEP_INDEX: str(child.index)},
            warm_kernels=True,
            save_every_cell=False,  # a sweep's notebooks are read when it is done: one write each
            prestart=child.index < jobs - parallel,  # the last jobs of each worker would start unused kernels
        ),
        run=run,
    )


def _slug(parameters: dict[str, Any], sep: str = ",") -> str:
    text = sep.join(f"{k}={v}" for k, v in parameters.items())
    return text if sep != "," else "".join(c if c.isalnum() or c in "=.,-_" else "_" for c in text)[:80]


def _run_local(children: list[Child], tasks: list[Task], parallel: int, progress: bool) -> None:
    pool = _local_pool(min(parallel, len(tasks)))
    try:
        _collect(children, [(pool.submit(run_task, task), task) for task in tasks], progress, sent_here=True)
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)


def _stop(pool: Any, grace: float = 30.0) -> None:
    """Stop an interrupted sweep's pool: no new jobs, the running ones interrupted (they end KILLED and stop
    their kernels), and workers still alive after ``grace`` seconds killed; no process is left behind."""
    import os
    import signal

    # Private: before Python 3.14 (ProcessPoolExecutor.terminate_workers) concurrent.futures has no public way
    # to stop running jobs (shutdown(cancel_futures=True) cancels only queued ones), so its record of its
    # worker processes is read; an executor without it leaves only the queued jobs cancelled.
    workers = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        try:
            os.kill(worker.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():  # its zygote and kernels follow it: they watch their parents
            worker.kill()


def _run_dask(children: list[Child], tasks: list[Task], scheduler: str | None, parallel: int, progress: bool) -> None:
    client = dask_client(scheduler, parallel)
    try:
        futures = [
            (client.submit(run_task, task, pure=False, key=f"mlops-nb-job-{task.index}"), task) for task in tasks
        ]
        _collect(children, futures, progress, sent_here=False)
    finally:
        cluster = client.cluster if not scheduler else None
        client.close()
        if cluster is not None:
            cluster.close()


def _collect(children: list[Child], futures: list[tuple[Any, Task]], progress: bool, sent_here: bool) -> None:
    """Wait for every job; send what the local workers journaled as each one ends; fill in the results."""
    from tqdm.auto import tqdm

    by_future = {id(f): t for f, t in futures}
    recorder = get_recorder()
    with tqdm(total=len(futures), desc="sweep", unit="job", file=sys.stderr, disable=not progress) as bar:
        for future in _as_completed([f for f, _ in futures]):
            child = children[by_future[id(future)].index]
            try:
                child.result = future.result()
            except Exception as e:  # noqa: BLE001 - a job that could not run is a failed child, not a failed sweep
                child.error = f"{type(e).__name__}: {e}"
            if sent_here:
                recorder.flush()  # the worker released the job's journals: send them now, while others run
                if child.result is not None:
                    child.result.run_id = recorder.known_run_id(child.result.key) or ""
            bar.set_postfix_str(f"{sum(1 for c in children if (c.result or c.error) and not c.ok)} failed")
            bar.update()


def _as_completed(futures: list[Any]) -> Iterator[Any]:
    if futures and not isinstance(futures[0], Future):  # Dask futures
        from distributed import as_completed

        yield from as_completed(futures)
        return
    from concurrent.futures import as_completed

    yield from as_completed(futures)


def _best(children: list[Child], metric: str | None, higher_is_better: bool) -> Child | None:
    if not metric:
        return None
    scored = [c for c in children if c.ok and c.result and metric in c.result.metrics]
    if not scored:
        return None
    key: Callable[[Child], float] = lambda c: c.result.metrics[metric]  # type: ignore[union-attr]  # noqa: E731
    return max(scored, key=key) if higher_is_better else min(scored, key=key)


def _record(sweep: Any, children: list[Child], metric: str | None, best: Child | None) -> None:
    rows = [
        {
            "index": c.index,
            "parameters": c.parameters,
            "run_id": c.result.run_id if c.result else None,
            "outcome": c.result.outcome if c.result else "not_started",
            "message": c.why if not c.ok else "",
            "metrics": c.result.metrics if c.result else {},
        }
        for c in children
    ]
    sweep.log_text(json.dumps(rows, indent=2, default=str), RESULTS_ARTIFACT)
    failed = [c for c in children if not c.ok]
    sweep.set_tag(tags.SWEEP_FAILED, str(len(failed)))
    if failed:
        sweep.set_tag(tags.SWEEP_FAILURES, "; ".join(f"[{c.index}] {c.why}" for c in failed)[:8000])
    if best is not None and best.result is not None and metric:
        sweep.set_tag(tags.SWEEP_BEST, best.result.run_id)
        sweep.log_metric(f"best_{metric}", best.result.metrics[metric])
