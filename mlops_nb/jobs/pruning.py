"""``mnb.report(value, step)``: an intermediate value of a trial, recorded and shown to the study's pruner.

A trial's kernel is told its study by the environment (set by ``mlops-nb tune`` for each trial): the
study's journal file, name and pruner, and the trial. ``report`` logs the value as a step metric, records it
in the study, and raises ``optuna.TrialPruned`` when the pruner says stop: the notebook stops at that cell
and the job ends as ``pruned`` with its values kept. Outside a tune (``mlops-nb run``, JupyterLab) it only
logs the metric.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

STORAGE_ENV = "MLOPS_NB_TUNE_STORAGE"  # the study's journal file
STUDY_ENV = "MLOPS_NB_TUNE_STUDY"
TRIAL_ENV = "MLOPS_NB_TUNE_TRIAL"  # the trial's number
PRUNER_ENV = "MLOPS_NB_TUNE_PRUNER"  # the pruner's spec (see mlops_nb.jobs.study.pruner)
DEFAULT_NAME = "intermediate_value"  # Optuna's name for what a trial reports

_trial: tuple[tuple[str, ...], Any] | None = None  # (the environment it is for, the Optuna trial)


def trial_env(path: str, study: str, number: int, pruner: str) -> dict[str, str]:
    """The environment of a trial's kernel."""
    return {STORAGE_ENV: path, STUDY_ENV: study, TRIAL_ENV: str(number), PRUNER_ENV: pruner}


def _current_trial() -> Any | None:
    """The Optuna trial this kernel runs, or None outside a tune."""
    global _trial
    where = tuple(os.environ.get(k, "") for k in (STORAGE_ENV, STUDY_ENV, TRIAL_ENV, PRUNER_ENV))
    if not all(where):
        return None
    if _trial is None or _trial[0] != where:
        import optuna

        from mlops_nb.jobs.study import pruner, storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        path, name, number, spec = where
        study = optuna.load_study(study_name=name, storage=storage(Path(path)), pruner=pruner(spec))
        frozen = study.get_trials(deepcopy=False)[int(number)]
        # A live Trial of a trial another process asked for: Optuna has no public way to get one from its
        # number, its integrations (optuna-integration's callbacks) build it from the id, as here.
        _trial = (where, optuna.trial.Trial(study, frozen._trial_id))
    return _trial[1]


def report(value: float, step: int, name: str | None = None) -> None:
    """Record ``value`` at ``step`` (metric ``name``, default ``intermediate_value``); in a tune's trial, also
    report it to the study and stop the trial (raise ``optuna.TrialPruned``) when the pruner says so."""
    from mlops_nb.tracking.fluent import log_metric

    log_metric(name or DEFAULT_NAME, value, step)
    trial = _current_trial()
    if trial is None:
        return
    trial.report(float(value), int(step))
    if trial.should_prune():
        import optuna

        raise optuna.TrialPruned(f"pruned at step {step} ({name or DEFAULT_NAME} = {value:g})")
