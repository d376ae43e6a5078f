"""The Optuna side of ``mlops-nb tune``: the study's journal file, its sampler and pruner, and the trials
that a dead process left RUNNING.

A study lives in Optuna's journal file under ``<home>/studies/NAME.journal`` (an append-only log that
several processes share through file locks): nothing to set up, durable across a SIGKILL. A trial records
who runs it (``mlops_nb.owner``: host, pid and the process's start time); a RUNNING trial whose owner is
gone on this host is failed with the reason and its parameters are queued again, so the next process re-runs
it (Optuna itself would leave it RUNNING forever, or skip it).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import socket
from pathlib import Path
from typing import Any

from mlops_nb.exceptions import UsageError
from mlops_nb.jobs.parameters import typed
from mlops_nb.jobs.space import Dimension

SAMPLERS = ("tpe", "random", "cmaes", "gp", "grid")
PRUNERS = ("median", "hyperband", "none")
DIRECTIONS = ("maximize", "minimize")

# Trial user attributes
OWNER = "mlops_nb.owner"  # host:pid:start of the process running the trial
RUN = "mlops_nb.run"  # the trial's job run: {"key": mlops-nb key, "id": MLflow id} (one write: each one fsyncs)
REASON = "mlops_nb.reason"  # why it failed, was pruned, or is a re-run
RERUN_OF = "mlops_nb.rerun_of"  # a re-run: the number of the trial whose process died while it ran
# Study user attributes
SPACE = "mlops_nb.space"  # {name: DIST}: a resumed study must be given the same space
METRIC = "mlops_nb.metric"
BEST_KEY = "mlops_nb.best_key"  # the job run tagged best, to untag when another trial beats it

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_name(name: str) -> str:
    if not _NAME.match(name) or ".." in name:
        raise UsageError(
            f"--study {name!r}: a study name is letters, digits, '_', '-' and '.', up to 128 characters "
            "(it names the study's file under .mlops_nb/studies/)."
        )
    return name


def journal_path(home: Path, name: str) -> Path:
    return home / "studies" / f"{check_name(name)}.journal"


def storage(path: Path) -> Any:
    """Optuna's journal storage on the file ``path`` (created with its folder when missing)."""
    from optuna.storages import JournalStorage

    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(_backend_class()(str(path)))


def durable(path: Path) -> None:
    """Make the study's journal durable on disk (an fsync; records survive a killed process without it)."""
    with path.open("ab") as f:
        os.fsync(f.fileno())


@functools.cache
def _backend_class() -> Any:
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    class Backend(JournalFileBackend):  # type: ignore[misc]
        """Optuna's journal file (same lines, same lock: Optuna and optuna-dashboard read and share it),
        appended without an fsync per record. A trial writes five or more records, and an fsync costs 5-7 ms
        on this kind of machine: 30 ms of a trial's bookkeeping, against a few for everything else. A record
        written is in the OS's page cache, so it survives a SIGKILL of this process or its kernels; the tune
        makes the file durable (``durable``) when the study ends."""

        def __init__(self, file_path: str) -> None:
            self.lock = JournalFileSymlinkLock(file_path)
            self.path = file_path
            super().__init__(file_path, lock_obj=self.lock)

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode("utf-8")
            self.lock.acquire()
            try:
                with open(self.path, "ab") as f:  # noqa: PTH123 - Optuna's path is a str
                    f.write(text)
            finally:
                self.lock.release()

    return Backend


def _call_spec(text: str, what: str) -> tuple[str, dict[str, Any]]:
    """``"median(n_startup_trials=1)"`` -> ``("median", {"n_startup_trials": 1})``."""
    name, _, rest = text.strip().partition("(")
    kwargs: dict[str, Any] = {}
    if rest:
        if not rest.endswith(")"):
            raise UsageError(f"{what} {text!r}: write it as NAME or NAME(arg=value,...).")
        for item in filter(None, (a.strip() for a in rest[:-1].split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip().isidentifier():
                raise UsageError(f"{what} {text!r}: arguments are name=value, e.g. median(n_startup_trials=2).")
            kwargs[key.strip()] = typed(value.strip())
    return name.strip(), kwargs


def _construct(cls: Any, kwargs: dict[str, Any], what: str) -> Any:
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", "search_space")]
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise UsageError(f"{what}: {cls.__name__} takes no argument {unknown[0]!r} (it takes {', '.join(accepted)}).")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise UsageError(f"{what}: {cls.__name__}({kwargs}) refused its arguments: {e}") from e


def check_pruner(spec: str) -> str:
    """The pruner's spec, checked (``median``, ``hyperband``, ``none``, each with Optuna's arguments)."""
    pruner(spec)
    return spec


def pruner(spec: str) -> Any:
    """Optuna's pruner for ``spec`` (the kernels build the same one from the same text)."""
    import optuna

    name, kwargs = _call_spec(spec, "--pruner")
    classes = {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner}
    if name == "none" and not kwargs:
        return optuna.pruners.NopPruner()
    if name not in classes:
        raise UsageError(f"--pruner {spec!r}: use one of {', '.join(PRUNERS)}.")
    return _construct(classes[name], kwargs, f"--pruner {spec}")


def sampler(name: str, space: dict[str, Dimension], seed: int | None) -> Any:
    """Optuna's sampler ``name`` (seeded), or a UsageError naming the package it needs or the fix."""
    import optuna

    if name == "grid":
        grid = {n: d.grid() for n, d in space.items()}
        continuous = [n for n, values in grid.items() if values is None]
        if continuous:
            raise UsageError(
                f"--sampler grid needs values to enumerate; {continuous[0]} is continuous. Give it as "
                "choice(...) or int(a,b,step=s), or pick another sampler (tpe, random)."
            )
        return _grid_sampler()(grid, seed=seed)
    needs = {"cmaes": ("cmaes", "cmaes"), "gp": ("torch", "torch")}
    if name in needs:
        module, package = needs[name]
        try:
            __import__(module)
        except ImportError:
            raise UsageError(
                f"--sampler {name} needs the {package} package, which is not installed. Install it with "
                f"pip install {package}, or use --sampler tpe."
            ) from None
    classes = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "gp": optuna.samplers.GPSampler,
    }
    if name not in classes:
        raise UsageError(f"--sampler {name!r}: use one of {', '.join(SAMPLERS)}.")
    return classes[name](seed=seed)


def _grid_sampler() -> Any:
    from optuna.samplers import GridSampler

    class Grid(GridSampler):  # type: ignore[misc]
        """GridSampler without its stop once every point is taken: ``Study.stop`` raises outside
        ``optimize`` (so ``tell`` would fail and leave the last trial RUNNING). The tune loop stops at the
        grid's size itself."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return Grid


def grid_size(space: dict[str, Dimension]) -> int:
    size = 1
    for dim in space.values():
        size *= len(dim.grid() or ())
    return size


def open_study(
    path: Path, name: str, space: dict[str, Dimension], metric: str, direction: str, sampler_: Any, pruner_: Any
) -> Any:
    """Create the study, or load it to resume; a resumed study must keep its space, metric and direction."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # mlops-nb says what happens; Optuna's INFO lines repeat it
    specs = {n: d.spec() for n, d in space.items()}
    study = optuna.create_study(
        storage=storage(path),
        study_name=name,
        direction=direction,
        sampler=sampler_,
        pruner=pruner_,
        load_if_exists=True,
    )
    given = study.user_attrs.get(SPACE)
    if given is None:
        study.set_user_attr(SPACE, specs)
        study.set_user_attr(METRIC, metric)
    fix = f"give another --study NAME to start a new study, or delete {path} to start this one again"
    if given is not None and given != specs:
        raise UsageError(f"Study {name!r} was started with the space {json.dumps(given)}; {fix}.")
    if study.user_attrs.get(METRIC, metric) != metric:
        raise UsageError(f"Study {name!r} tunes {study.user_attrs[METRIC]!r}, not {metric!r}; {fix}.")
    if study.direction.name.lower() != direction:
        raise UsageError(f"Study {name!r} is set to {study.direction.name.lower()}; {fix}.")
    return study


def owner() -> str:
    """This process: ``host:pid:start`` (the start time tells a reused pid from the process that had it)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid())}"


def _started(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(owner_: str) -> bool:
    host, _, rest = owner_.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname():  # another machine's process: it cannot be checked from here
        return True
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return _started(int(pid)) == start


def recover(study: Any) -> list[int]:
    """Fail the RUNNING trials of processes that are gone and queue their parameters again: the numbers of
    the trials that will be re-run."""
    from optuna.trial import TrialState

    rerun = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        who = trial.user_attrs.get(OWNER)
        if who is None or _alive(who):  # being asked right now, or still running elsewhere
            continue
        abandon(study, trial.number, trial.params, f"its process ({who}) ended while it ran")
        rerun.append(trial.number)
    return rerun


def abandon(study: Any, number: int, params: dict[str, Any], why: str) -> None:
    """Fail a trial that never finished (killed or interrupted) and queue its parameters for a re-run, the
    new trial naming it (``mlops_nb.rerun_of``) and why."""
    from optuna.trial import TrialState

    study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    study.enqueue_trial(params, user_attrs={RERUN_OF: number, REASON: why}, skip_if_exists=False)


def reruns(study: Any) -> dict[int, str]:
    """Trials queued again after their process died: their number -> why."""
    return {
        t.user_attrs[RERUN_OF]: t.user_attrs.get(REASON, "")
        for t in study.get_trials(deepcopy=False)
        if RERUN_OF in t.user_attrs
    }


def counted(study: Any) -> int:
    """Trials that count toward ``--trials``: finished ones (not those queued again) and running ones."""
    from optuna.trial import TrialState

    again = reruns(study)
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state != TrialState.WAITING and not (t.state == TrialState.FAIL and t.number in again)
    )
