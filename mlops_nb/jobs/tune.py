"""``mlops-nb tune``: an Optuna study over a notebook, as a ``study`` run with one ``job`` run per trial.

This process is the one place that asks Optuna for parameters and tells it the results; the trials run as
a sweep's jobs do, on the warm local pool (``mlops_nb.jobs.sweep``) or on a Dask cluster, their stages cached
as usual (stages that do not read a tuned parameter are cache hits after the first trial). A trial is
COMPLETE with the job's metric, PRUNED when ``mnb.report`` stopped it, FAIL with the reason when the notebook
failed; a failed trial never stops the study. The study lives in Optuna's journal file under
``.mlops_nb/studies/``: run the same command again after a crash and it continues, re-running the trial
that was running (``mlops_nb.jobs.study``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_nb.exceptions import TrackingError, UsageError
from mlops_nb.jobs import study as study_mod
from mlops_nb.jobs.job import PRUNED, JobOptions, JobResult, send_jobs
from mlops_nb.jobs.kernel_env import PRELOAD_ENV, notebook_imports
from mlops_nb.jobs.pruning import trial_env
from mlops_nb.jobs.space import Dimension, parse_space
from mlops_nb.jobs.sweep import Task, _checked, _local_pool, _stop, _worker_exit, dask_client, run_task
from mlops_nb.jobs.trials import Trial, TuneResult, trials_of
from mlops_nb.tracking import tags
from mlops_nb.tracking.recorder import get_recorder
from mlops_nb.tracking.runs import open_run
from mlops_nb.tracking.studies import study_trials

log = logging.getLogger("mlops_nb")
TRIALS_ARTIFACT = "study/trials.json"
STUDY_RUN = "mlops_nb.study_run"  # study user attribute: the MLflow id of the study's latest run


def run_trial(task: Task, env: dict[str, str]) -> JobResult:
    """Run one trial's job in a worker (local pool or Dask), its kernel told its study by ``env``."""
    import os

    os.environ.update(env)
    try:
        return run_task(task)
    finally:
        for key in env:
            os.environ.pop(key, None)


def _import_optuna() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError as e:
        raise UsageError(
            f"mlops-nb tune needs Optuna, which is not installed ({e}). Install it with: pip install 'mlops-nb[tune]'"
        ) from e


def tune(
    notebook: Path,
    space: dict[str, Dimension] | dict[str, str] | list[str],
    *,
    trials: int,
    metric: str,
    direction: str = "maximize",
    sampler: str = "tpe",
    pruner: str = "median",
    parallel: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    timeout: float | None = None,
    study: str | None = None,
    seed: int | None = None,
    fixed: dict[str, Any] | None = None,
    options: JobOptions | None = None,
    run: dict[str, Any] | None = None,
    output_dir: Path | None = None,
    progress: bool = False,
    on_trial: Callable[[list[Trial], Trial | None], None] | None = None,
) -> TuneResult:
    """Tune ``notebook``'s parameters with Optuna: ``trials`` trials in all (a resumed study runs the rest).

    Args:
        space: the tuned parameters: ``{"C": "loguniform(1e-3,1e2)"}``, ``["C=loguniform(1e-3,1e2)"]`` or
            parsed dimensions.
        metric: the job metric to optimise (``direction``: maximize or minimize).
        sampler: tpe, random, cmaes, gp or grid (seeded by ``seed``).
        pruner: median, hyperband or none, optionally with Optuna's arguments: ``median(n_startup_trials=2)``.
        timeout: stop starting trials after this many seconds (running ones finish).
        study: the study's name (default: the notebook's stem); the same name continues the study.
        fixed: parameters every trial gets; options, run: as ``run_sweep``'s.
        on_trial: called with every trial of the study and the best one at the start and as each trial ends
            (``mnb.tune``'s widget); an error in it is logged, never stops the study.

    Raises:
        UsageError: a bad notebook, space, metric, direction, sampler, pruner, or a metric that a successful
            trial did not log (the study stops; what ran is recorded, nothing is left RUNNING).
    """
    started = time.monotonic()
    given = isinstance(space, dict) and space and all(isinstance(v, Dimension) for v in space.values())
    dims: dict[str, Dimension] = space if given else parse_space(space)  # type: ignore[assignment,arg-type]
    _check(trials, metric, direction, timeout)
    options = options or JobOptions()
    run = dict(run or {})
    grid = {n: d.grid() or [d.low, d.high] for n, d in dims.items()}
    fixed, _, _ = _checked(notebook, grid, [{}], fixed or {}, run, parallel, executor)  # type: ignore[arg-type]
    clash = sorted(set(fixed) & set(dims))
    if clash:
        raise UsageError(f"{clash[0]} is both tuned (--space) and fixed (-p); drop one of them.")
    _import_optuna()
    settings = get_recorder().settings
    name = study_mod.check_name(study or notebook.stem)
    path = study_mod.journal_path(settings.home, name)
    the_sampler = study_mod.sampler(sampler, dims, seed)
    the_pruner = study_mod.pruner(pruner)
    if sampler == "grid":
        trials = min(trials, study_mod.grid_size(dims))
    st = study_mod.open_study(path, name, dims, metric, direction, the_sampler, the_pruner)
    rerun = study_mod.recover(st)
    experiment = options.experiment or settings.experiment or notebook.stem
    previous = st.user_attrs.get(STUDY_RUN)
    study_tags = {tags.NOTEBOOK: str(notebook.resolve()), tags.STUDY: name}
    if previous:
        study_tags[tags.STUDY_RESUMES] = previous
    record = open_run(f"{notebook.stem} study {name}", experiment=experiment, kind="study", tags=study_tags)
    loop = _Loop(st, record, notebook, dims, metric, pruner, path, name, parallel, executor, scheduler)
    loop.on_trial = on_trial
    try:  # an opened run always ends: FAILED (KILLED on Ctrl-C) with the reason if anything below raises
        record.log_params({f"space.{n}": d.spec() for n, d in dims.items()})
        record.log_params({f"fixed.{n}": v for n, v in fixed.items()})
        record.log_params(
            {
                "sampler": sampler,
                "pruner": pruner,
                "seed": seed,
                "metric": metric,
                "direction": direction,
                "trials": trials,
                "parallel": parallel,
            }
        )
        job_options = dataclasses.replace(options, experiment=experiment)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        loop.output_dir = output_dir or settings.home / "studies" / f"{name}-{stamp}"
        loop.run(job_options, fixed, run, trials, None if timeout is None else started + timeout, progress)
        result = _conclude(st, record, loop, metric, direction, experiment, rerun, started)
    except BaseException as e:
        record.end("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED", e)
        with contextlib.suppress(Exception):
            loop.send()
            send_jobs(loop.keys)  # what ran is in MLflow before the error is shown
        raise
    record.end("FINISHED")
    study_mod.durable(path)
    send_jobs(loop.keys)
    loop.show(result.trials, result.best)
    return result


def _check(trials: int, metric: str, direction: str, timeout: float | None) -> None:
    if trials < 1:
        raise UsageError(f"--trials {trials}: run at least 1 trial.")
    if not metric or not metric.strip():
        raise UsageError("--metric is required: the job metric to optimise (one the notebook logs).")
    if direction not in study_mod.DIRECTIONS:
        raise UsageError(f"--direction {direction!r}: use maximize or minimize.")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout {timeout:g}: give the study's time budget in seconds (> 0).")


class _Loop:
    """Ask, run, tell: up to ``parallel`` trials in flight, each told as soon as its job ends."""

    def __init__(
        self,
        st: Any,
        record: Any,
        notebook: Path,
        dims: dict[str, Dimension],
        metric: str,
        pruner: str,
        path: Path,
        name: str,
        parallel: int,
        executor: str,
        scheduler: str | None,
    ) -> None:
        self.st, self.record, self.notebook, self.dims, self.metric = st, record, notebook, dims, metric
        self.pruner, self.path, self.name = pruner, path, name
        self.parallel, self.executor, self.scheduler = parallel, executor, scheduler
        self.output_dir = Path()
        self.keys: list[str] = []  # the job runs' keys, to send
        self.results: dict[int, tuple[JobResult | None, str]] = {}  # trial number -> (result, error)
        self.inflight: dict[Any, Any] = {}  # future -> optuna trial
        self.noted: set[str] = set()
        self.untagged: dict[str, str] = {}  # job run key -> its trial's state, to tag once MLflow has the run
        self.on_trial: Callable[[list[Trial], Trial | None], None] | None = None

    def run(
        self,
        options: JobOptions,
        fixed: dict[str, Any],
        run: dict[str, Any],
        trials: int,
        deadline: float | None,
        progress: bool,
    ) -> None:
        from tqdm.auto import tqdm

        local = self.executor == "local"
        pool = _local_pool(self.parallel) if local else dask_client(self.scheduler, self.parallel)
        source = None if local else self.notebook.read_text(encoding="utf-8")
        parent_id = None if local else self.record.run_id  # Dask workers tag their runs with it: it must exist
        distributions = {n: d.optuna() for n, d in self.dims.items()}
        from mlops_nb.jobs.runner import load_notebook

        cells = load_notebook(self.notebook)["cells"]
        code = [c["source"] if isinstance(c["source"], str) else "".join(c["source"]) for c in cells]
        preload = ",".join(notebook_imports([s for c, s in zip(cells, code, strict=True) if c["cell_type"] == "code"]))
        owner = study_mod.owner()
        problem: UsageError | None = None
        bar = tqdm(
            total=trials,
            initial=study_mod.counted(self.st),
            desc=f"tune {self.name}",
            unit="trial",
            file=sys.stderr,
            disable=not progress,
        )
        told = False
        self.show()
        try:
            while True:
                while (
                    problem is None
                    and len(self.inflight) < self.parallel
                    and (deadline is None or time.monotonic() < deadline)
                    and study_mod.counted(self.st) < trials
                ):
                    trial = self.st.ask(distributions)
                    trial.set_user_attr(study_mod.OWNER, owner)
                    task = self._task(trial, options, fixed, run, source, parent_id, trials)
                    env = trial_env(str(self.path), self.name, trial.number, self.pruner)
                    env[PRELOAD_ENV] = preload
                    if local:
                        future = pool.submit(run_trial, task, env)
                    else:
                        future = pool.submit(
                            run_trial, task, env, pure=False, key=f"mlops-nb-trial-{trial.number}-{owner}"
                        )
                    self.inflight[future] = trial
                if not self.inflight:
                    break
                if local and told:  # the workers released the told jobs' journals: sent while the next trials
                    get_recorder().send_soon()  # run (after they were submitted: the sender holds the GIL a lot)
                told = False
                for future in _first_done(list(self.inflight)):
                    trial = self.inflight.pop(future)
                    problem = self._tell(trial, future) or problem
                    told = True
                    bar.update()
                    bar.set_postfix_str(self._best_text())
                    self.show()
            if problem is not None:
                raise problem
        except BaseException as e:
            self._abandon_inflight(pool, local, e)
            raise
        finally:
            bar.close()
            if local:
                pool.shutdown(wait=True)
            else:
                with contextlib.suppress(Exception):  # the workers' spare kernels and zygotes, before they close
                    pool.run(_worker_exit)
                cluster = pool.cluster if not self.scheduler else None
                pool.close()
                if cluster is not None:
                    cluster.close()

    def _task(
        self,
        trial: Any,
        options: JobOptions,
        fixed: dict[str, Any],
        run: dict[str, Any],
        source: str | None,
        parent_id: str | None,
        trials: int,
    ) -> Task:
        n = trial.number
        local = source is None
        return Task(
            index=n,
            notebook=str(self.notebook.resolve()),
            output=str(self.output_dir / f"{n:03d}.ipynb") if local else "",
            parameters={**fixed, **trial.params},
            options=dataclasses.replace(
                options,
                run_name=f"{self.notebook.stem}[trial {n}]",
                tags={**options.tags, tags.STUDY: self.name, tags.TRIAL: str(n)},
                parent_key=self.record.key if local else None,
                parent_run_id=parent_id,
                send=not local,  # local workers journal; this process sends as each trial ends
                warm_kernels=True,
                save_every_cell=False,
                prestart=n + self.parallel < trials,  # the last trials would start kernels nobody uses
            ),
            run=run,
            source=source,
            tracking_uri=None if local else get_recorder().settings.tracking_uri,
        )

    def _tell(self, trial: Any, future: Any) -> UsageError | None:
        """Tell Optuna how the trial ended and tag its job run; a UsageError when the metric is missing."""
        from optuna.trial import TrialState

        recorder = get_recorder()
        result: JobResult | None = None
        error = ""
        try:
            result = future.result()
        except Exception as e:  # noqa: BLE001 - a job that could not run is a failed trial, not a failed study
            error = f"{type(e).__name__}: {e}"
        if STUDY_RUN not in self.noted:  # so that a run resuming this study after a crash can name this one
            with contextlib.suppress(TrackingError):  # once a study: waits for MLflow to make the study run
                self.st.set_user_attr(STUDY_RUN, self.record.run_id)
                self.noted.add(STUDY_RUN)
        problem = None
        if result is not None:
            self.keys.append(result.key)
            result.run_id = result.run_id or recorder.known_run_id(result.key) or ""
            trial.set_user_attr(study_mod.RUN, {"key": result.key, "id": result.run_id})
        self.results[trial.number] = (result, error)
        if result is not None and result.ok and self.metric in result.metrics:
            self.st.tell(trial, result.metrics[self.metric])
            state = "COMPLETE"
        elif result is not None and result.outcome == PRUNED:
            trial.set_user_attr(study_mod.REASON, result.message)
            self.st.tell(trial, state=TrialState.PRUNED)
            state = "PRUNED"
        else:
            if result is not None and result.ok:
                logged = ", ".join(sorted(result.metrics)) or "none"
                error = f"the notebook did not log the metric {self.metric!r} (it logged: {logged})"
                problem = UsageError(
                    f"Trial {trial.number} succeeded but {error}. Pass --metric as one of those, or log it in the "
                    f"notebook with mnb.log_metric({self.metric!r}, value). The study stopped."
                )
            reason = error or (result.message or result.outcome if result is not None else "")
            trial.set_user_attr(study_mod.REASON, reason[:1000])
            self.st.tell(trial, state=TrialState.FAIL)
            state = "FAIL"
        if result is not None:
            self.untagged[result.key] = state
        self.tag_states()
        return problem

    def tag_states(self, *, all_: bool = False) -> None:
        """Tag the trials' job runs with their state, once MLflow has them (the sender makes a job's run from
        its worker's journal: a tag sent before it would find no run), or ``all_`` after a flush."""
        recorder = get_recorder()
        for key, state in list(self.untagged.items()):
            if all_ or recorder.known_run_id(key):
                recorder.set_tag(key, tags.TRIAL_STATE, state)
                del self.untagged[key]

    def send(self) -> None:
        """Everything recorded so far into MLflow (the jobs' journals too), then the trials' state tags."""
        get_recorder().flush(get_recorder().settings.flush_timeout)
        self.tag_states(all_=True)

    def show(self, trials: list[Trial] | None = None, best: Trial | None = None) -> None:
        """Hand the study's trials and its best so far to ``on_trial``."""
        if self.on_trial is None:
            return
        if trials is None:
            from optuna.trial import TrialState

            trials = trials_of(self.st, self.results)
            complete = self.st.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            best = next((t for t in trials if t.number == self.st.best_trial.number), None) if complete else None
        try:
            self.on_trial(trials, best)
        except Exception as e:  # noqa: BLE001 - a display that fails must not stop the study
            log.warning("mlops-nb: the study's display failed: %r", e)

    def _best_text(self) -> str:
        try:
            return f"best {self.metric}={self.st.best_value:.6g}"
        except ValueError:  # no complete trial yet
            return ""

    def _abandon_inflight(self, pool: Any, local: bool, error: BaseException) -> None:
        """The study stops early (Ctrl-C, a missing metric): stop the running jobs; their trials end FAIL,
        queued again unless the study itself was wrong (a re-run would fail the same way)."""
        if local:
            _stop(pool)
        else:
            for future in self.inflight:
                future.cancel()
        again = isinstance(error, KeyboardInterrupt)
        for trial in self.inflight.values():
            why = "the study was interrupted while it ran" if again else f"the study stopped: {error}"
            if again:
                study_mod.abandon(self.st, trial.number, trial.params, why)
            else:
                trial.set_user_attr(study_mod.REASON, why[:1000])
                from optuna.trial import TrialState

                self.st.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        self.inflight.clear()


def _reconcile(st: Any, trials: list[Trial], study_run: str, ran: set[int]) -> None:
    """What a process that died mid-study left undone in MLflow, read back from it: the job runs of trials it
    told Optuna about before MLflow had them (known by key only), and their state tags."""
    again = study_mod.reruns(st)  # trials whose process died while they ran: their runs keep no state
    finished = [t for t in trials if t.state in ("COMPLETE", "PRUNED", "FAIL") and t.number not in again]
    earlier = [t for t in finished if t.number not in ran]
    if not earlier and all(t.run_id for t in finished):
        return
    try:
        found = study_trials(study_run)
    except TrackingError:  # MLflow unreachable: left as they are, the records wait in the journals
        return
    tagged = {t["trial"]: t for t in found if t["state"] is not None}
    untagged = {t["trial"]: t for t in found if t["state"] is None}
    keys = {t.number: t.user_attrs.get(study_mod.RUN, {}).get("key") for t in st.get_trials(deepcopy=False)}
    recorder = get_recorder()
    for t in finished:
        if t.number in tagged:
            t.run_id = t.run_id or tagged[t.number]["run_id"]
        elif t.number in untagged and keys.get(t.number) and t.number not in ran:
            recorder.set_tag(keys[t.number], tags.TRIAL_STATE, t.state)  # its process died before tagging it
            t.run_id = t.run_id or untagged[t.number]["run_id"]


def _first_done(futures: list[Any]) -> list[Any]:
    from concurrent.futures import FIRST_COMPLETED, Future

    if isinstance(futures[0], Future):
        from concurrent.futures import wait

        return list(wait(futures, return_when=FIRST_COMPLETED).done)
    from distributed import wait as dask_wait

    return list(dask_wait(futures, return_when="FIRST_COMPLETED").done)


def _conclude(
    st: Any,
    record: Any,
    loop: _Loop,
    metric: str,
    direction: str,
    experiment: str,
    rerun: list[int],
    started: float,
) -> TuneResult:
    """Roll the study up onto its run: the best value and parameters, the trials; tag the best trial."""
    recorder = get_recorder()
    loop.send()  # the trials' job runs are in MLflow: their ids are known
    for result, _ in loop.results.values():
        if result is not None and not result.run_id:
            result.run_id = recorder.known_run_id(result.key) or ""
    trials = trials_of(st, loop.results)
    _reconcile(st, trials, record.run_id, set(loop.results))
    by_number = {t.number: t for t in trials}
    best = None
    complete = [t for t in trials if t.state == "COMPLETE"]
    if complete:
        best = by_number[st.best_trial.number]
        best_key = st.best_trial.user_attrs.get(study_mod.RUN, {}).get("key")
        earlier = st.user_attrs.get(study_mod.BEST_KEY)
        if earlier and earlier != best_key:
            recorder.set_tag(earlier, tags.BEST, "false")
        if best_key:
            recorder.set_tag(best_key, tags.BEST, "true")
            st.set_user_attr(study_mod.BEST_KEY, best_key)
            record.link_tag(tags.STUDY_BEST, best_key)
        record.log_metric(f"best_{metric}", float(best.value))  # type: ignore[arg-type]
        record.log_params({f"best.{k}": v for k, v in best.params.items()})
    counts = {s: sum(t.state == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL")}
    record.log_metrics({f"trials_{s.lower()}": float(n) for s, n in counts.items()})
    st.set_user_attr(STUDY_RUN, record.run_id)
    result = TuneResult(
        study_name=loop.name,
        run_id=record.run_id,
        experiment=experiment,
        metric=metric,
        direction=direction,
        trials=trials,
        best=best,
        ran=sorted(loop.results),
        rerun=rerun,
        duration=time.monotonic() - started,
        study=st,
    )
    record.log_text(json.dumps(result.json(), indent=2, default=str), TRIALS_ARTIFACT)
    return result
