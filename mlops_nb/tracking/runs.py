"""Run lifecycles: a top-level run (notebook, job, script, sweep) and stage runs nested under it.

A ``Run`` is a context manager like MLflow's ``ActiveRun``: leaving the block normally ends it FINISHED, an
exception ends it FAILED with the traceback as an artifact (KILLED for ``KeyboardInterrupt``) and still
propagates. Runs form a stack; records go to the innermost. Logging with no run open starts the process's
own run (a ``notebook`` run in a kernel, a ``script`` run otherwise), which ends when the process exits
(FAILED if an uncaught exception ends a script).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from mlops_nb.exceptions import InvalidRecordError, TrackingError
from mlops_nb.tracking import tags as tag_names
from mlops_nb.tracking.recorder import JOB_RUN_ENV, Recorder, get_recorder, unique_id
from mlops_nb.tracking.tags import TOP_LEVEL_KINDS
from mlops_nb.tracking.validation import check_metric, param_value, tag_value

OPEN_KINDS = TOP_LEVEL_KINDS  # open_run also opens a model's monitors and evaluations ("monitor", "evaluation")
_MAX_HISTORY = 100_000


class Run:
    """One MLflow run being recorded. Create it with ``start_run()`` or ``stage()``, not directly."""

    def __init__(
        self,
        recorder: Recorder,
        *,
        kind: str,
        name: str | None,
        experiment: str,
        parent: Run | None = None,
        tags: dict[str, str] | None = None,
        attach: str | None = None,
        parent_key: str | None = None,
        key: str | None = None,
        quiet: bool = False,
    ) -> None:
        """``attach``: the key of a run another process started and will end (a job's run, in its kernel);
        ``parent_key``: the key of a parent run another process records (a sweep's, for its jobs); ``key``: this
        run's key when the caller derives it (a pipeline's job run); ``quiet``: a run nothing records (an
        upstream stage a pipeline task restores, recorded by its own task)."""
        from mlops_nb.tracking.provenance import process_tags

        if quiet:
            recorder = _UNRECORDED
        self.key = attach or key or unique_id()
        self.attached = attach is not None
        self.kind = kind
        self.name = name
        self.experiment = experiment
        self.parent = parent
        self.root: Run = parent.root if parent is not None else self
        self.status = "RUNNING"
        self._recorder: Any = recorder
        self._params: dict[str, str] = {}
        self.metrics: dict[str, float] = {}  # latest value of each metric logged here
        self.metric_history: list[tuple[str, float, int]] = []  # (key, value, step) of every value logged here
        self.models: list[str] = []  # artifact paths of the models logged here
        if self.attached:
            return
        all_tags = {**process_tags(), tag_names.KIND: kind, **{k: str(v) for k, v in (tags or {}).items()}}
        recorder.start_run(
            self.key, experiment=experiment, name=name, parent=parent.key if parent else parent_key, tags=all_tags
        )

    def __repr__(self) -> str:
        return f"<Run {self.kind} {self.name!r} {self.status}>"

    @property
    def run_id(self) -> str:
        """The MLflow run id; waits (up to ``flush_timeout``) until the sender has created the run."""
        return self._recorder.run_id(self.key)

    @property
    def known_run_id(self) -> str:
        """The MLflow run id if the sender has created the run already, else '' (never waits)."""
        return self._recorder.known_run_id(self.key) or ""

    # --- recording ----------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.status != "RUNNING":
            raise TrackingError(f"{self!r} has ended; start a new run to record more.")

    def _param_text(self, key: str, value: Any) -> str:
        text = param_value(key, value)
        old = self._params.get(key)
        if old is not None and old != text:
            raise InvalidRecordError(
                f"Param {key!r} was already logged as {old!r} in this run; MLflow params cannot change. "
                "Log the new value under another name, or as a metric."
            )
        return text

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        """Every value is checked before any is recorded: a refused call records nothing."""
        self._check_open()
        texts = {key: self._param_text(key, value) for key, value in params.items()}
        for key, text in texts.items():
            if key not in self._params:
                self._params[key] = text
                self._recorder.log_param(self.key, key, text)

    def log_first_params(self, params: dict[str, Any]) -> None:
        """Log the params not logged here yet; a value that changed since keeps the first (MLflow params
        cannot change). A notebook run gets the parameters its stages read this way."""
        self._check_open()
        for key, value in params.items():
            if key not in self._params:
                self.log_param(key, value)

    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
        self._check_open()
        rollup = self.root.key if self.root is not self and self.root.status == "RUNNING" else None
        step = 0 if step is None else step
        self._recorder.log_metric(self.key, key, value, step, timestamp, rollup)
        self.metrics[key] = float(value)
        if len(self.metric_history) <= _MAX_HISTORY:  # what a cache hit logs again; one past the bound says so
            self.metric_history.append((key, float(value), int(step)))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, timestamp: int | None = None) -> None:
        """Every metric is checked before any is recorded: a refused call records nothing."""
        for key, value in metrics.items():
            check_metric(key, value, 0 if step is None else step)
        for key, value in metrics.items():
            self.log_metric(key, value, step, timestamp)

    def set_tag(self, key: str, value: Any) -> None:
        self._check_open()
        self._recorder.set_tag(self.key, key, value)

    def set_tags(self, tags: dict[str, Any]) -> None:
        """Every tag is checked before any is recorded: a refused call records nothing."""
        for key, value in tags.items():
            tag_value(key, value)
        for key, value in tags.items():
            self.set_tag(key, value)

    def log_artifact(self, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self._check_open()
        self._recorder.log_artifact(self.key, Path(local_path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._check_open()
        self._recorder.log_text(self.key, text, artifact_file)

    def log_model(
        self,
        model: Any,
        name: str,
        example: Any = None,
        profile: dict[str, Any] | None = None,
        tables: dict[str, Any] | None = None,
    ) -> None:
        """Log a scikit-learn model as artifact ``name`` (saved into MLflow in the background), with its
        reference ``profile`` and reference ``tables`` (Arrow tables by file name) beside it."""
        self._check_open()
        if name in self.models:
            raise InvalidRecordError(f"A model named {name!r} was already logged in this run; use another name.")
        self._recorder.log_model(self.key, name, model, example, profile, tables)
        self.models.append(name)
        self._recorder.set_tag(self.key, tag_names.MODELS, ",".join(self.models))

    def link_tag(self, key: str, run_key: str) -> None:
        """Set tag ``key`` to the MLflow run id of the run with mlops-nb key ``run_key``."""
        self._check_open()
        self._recorder.link(self.key, key, run_key)

    # --- lifecycle ----------------------------------------------------------------------------------
    def end(self, status: str = "FINISHED", error: BaseException | None = None) -> None:
        """End this run (and any run still open inside it). Ending twice does nothing."""
        if self.status != "RUNNING":
            return
        with _stack_lock:
            inner = _stack[_stack.index(self) + 1 :] if self in _stack else []
        for run in reversed(inner):
            run.end(status, error)
        if error is not None and not self.attached:  # an attached run is its owner's to end
            import traceback

            self._recorder.set_tag(self.key, tag_names.ERROR, f"{type(error).__name__}: {error}"[:1000])
            self._recorder.log_text(self.key, "".join(traceback.format_exception(error)), "traceback.txt")
        self.status = status
        if not self.attached:
            self._recorder.end_run(self.key, status)
        with _stack_lock:
            if self in _stack:
                _stack.remove(self)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.end("FINISHED")
        else:
            self.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED", exc)


_stack_lock = threading.RLock()
_stack: list[Run] = []


class _Unrecorded:
    """The recorder of a quiet run: every record is dropped, and it never has an MLflow id."""

    def __getattr__(self, name: str) -> Any:
        return _drop


def _drop(*_: Any, **__: Any) -> None:
    return None


_UNRECORDED = _Unrecorded()


def parse_tags(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["team=ml", "data=v2"]`` -> ``{"team": "ml", "data": "v2"}`` (``--tag`` of %%track and mlops-nb)."""
    from mlops_nb.exceptions import UsageError

    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag takes KEY=VALUE, got {pair!r}")
        tags[key] = value
    return tags


def active_run() -> Run | None:
    """The innermost open run, or None."""
    with _stack_lock:
        return _stack[-1] if _stack else None


def default_experiment() -> str:
    """``MLOPS_NB_EXPERIMENT`` / ``MLFLOW_EXPERIMENT_NAME`` / config, else the notebook's stem, else Default."""
    from mlops_nb.tracking.provenance import notebook_path

    settings = get_recorder().settings
    if settings.experiment:
        return settings.experiment
    notebook = notebook_path()
    return Path(notebook).stem if notebook else "Default"


def start_run(
    name: str | None = None,
    *,
    experiment: str | None = None,
    kind: str | None = None,
    tags: dict[str, Any] | None = None,
) -> Run:
    """Start a top-level run and make it the active one; use it as a context manager.

    Args:
        name: run name shown in MLflow (default: the notebook's or script's file name).
        experiment: experiment name (default: see ``default_experiment``); created when missing.
        kind: ``notebook``, ``job``, ``sweep`` or ``script`` (default: notebook in a kernel, else script).
        tags: extra tags.

    Raises:
        TrackingError: a run is already active (end it first, or use ``stage()`` for a nested run).
    """
    from mlops_nb.tracking.provenance import in_kernel

    kind = kind or ("notebook" if in_kernel() else "script")
    if kind not in TOP_LEVEL_KINDS:
        raise ValueError(f"kind must be one of {', '.join(TOP_LEVEL_KINDS)}, got {kind!r}")
    with _stack_lock:
        if _stack:
            raise TrackingError(
                f"{_stack[-1]!r} is already active. End it first (mnb.end_run()), or use mnb.stage() "
                "for a run nested inside it."
            )
        run = Run(
            get_recorder(),
            kind=kind,
            name=name or _default_name(),
            experiment=experiment or default_experiment(),
            tags=tags,
        )
        _stack.append(run)
    _install_hooks()
    return run


def open_run(
    name: str | None,
    *,
    experiment: str,
    kind: str,
    tags: dict[str, Any] | None = None,
    parent_key: str | None = None,
    key: str | None = None,
) -> Run:
    """A run that does not become the active one: a job's run, kept by the process that runs the job while
    the job's kernel records into it (``parent_key``: its sweep's run; ``key``: its key, when the caller derives
    it). End it with ``run.end(status)``."""
    if kind not in OPEN_KINDS:
        raise ValueError(f"kind must be one of {', '.join(OPEN_KINDS)}, got {kind!r}")
    return Run(get_recorder(), kind=kind, name=name, experiment=experiment, tags=tags, parent_key=parent_key, key=key)


def current_run() -> Run:
    """The innermost open run; starts the process's own top-level run when none is open (in a kernel that
    the jobs engine started: attaches to the job's run instead, so stages nest under the job)."""
    with _stack_lock:
        if _stack:
            return _stack[-1]
        job = os.environ.get(JOB_RUN_ENV)
        if not job:
            return start_run()
        run = Run(get_recorder(), kind="job", name=None, experiment=default_experiment(), attach=job)
        _stack.append(run)
    _install_hooks()
    return run


def stage(name: str, *, tags: dict[str, Any] | None = None, quiet: bool = False) -> Run:
    """A stage run nested under the active run (starting the process's own run if none is open).

    Use it as a context manager: ``with mnb.stage("train"): mnb.log_metric("loss", 0.1)``. ``quiet``: nothing
    of it is recorded.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"A stage needs a non-empty name, got {name!r}")
    with _stack_lock:
        parent = current_run()
        run = Run(
            get_recorder(),
            kind="stage",
            name=name,
            experiment=parent.experiment,
            parent=parent,
            tags={tag_names.STAGE: name, tag_names.CACHE_HIT: "false", **(tags or {})},
            quiet=quiet,
        )
        _stack.append(run)
    return run


def end_run(status: str = "FINISHED") -> None:
    """End the innermost open run (like ``mlflow.end_run``). Does nothing when no run is open."""
    run = active_run()
    if run is not None:
        run.end(status)


def _default_name() -> str | None:
    from mlops_nb.tracking.provenance import in_kernel, notebook_path

    notebook = notebook_path()
    if notebook:
        return Path(notebook).stem
    if in_kernel():
        return None  # a kernel's argv names ipykernel_launcher, not the notebook: MLflow picks a name
    return Path(sys.argv[0]).stem if sys.argv and sys.argv[0] not in ("", "-c") else None


def end_all_runs(status: str = "FINISHED", error: BaseException | None = None) -> None:
    """End every open run, innermost first."""
    with _stack_lock:
        bottom = _stack[0] if _stack else None
    if bottom is not None:
        bottom.end(status, error)


_hooks_installed = False
_worker_hook_pid = 0


def _install_hooks() -> None:
    """At exit, end open runs FINISHED; an uncaught exception in a script ends them FAILED first."""
    global _hooks_installed, _worker_hook_pid
    if not _hooks_installed:  # inherited by forked children, which keep both hooks
        _hooks_installed = True
        previous = sys.excepthook

        def excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
            end_all_runs("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED", exc)
            previous(exc_type, exc, tb)

        sys.excepthook = excepthook
        atexit.register(end_all_runs, "FINISHED")
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is not None and multiprocessing.parent_process() is not None and _worker_hook_pid != os.getpid():
        # A forked multiprocessing worker leaves through os._exit, skipping atexit: use its own exit hook.
        from multiprocessing.util import Finalize

        _worker_hook_pid = os.getpid()
        Finalize(None, _end_worker, exitpriority=100)


def _end_worker() -> None:
    from mlops_nb.tracking.recorder import shutdown

    end_all_runs("FINISHED")
    shutdown()


def _forget_in_child() -> None:
    global _stack_lock
    _stack.clear()
    _stack_lock = threading.RLock()


os.register_at_fork(after_in_child=_forget_in_child)
