"""A study as the sidebar's Studies view shows it: the study runs of the project, and for one of them its
trials, their parameter importances (Optuna's fANOVA) and the chart (``study_charts.study_spec``).

The importances are computed from the trials recorded in MLflow (their parameters, read back in the
space's distributions), so the view needs no access to the study's journal file: it works as well against
the team's tracking server.
"""

from __future__ import annotations

import collections
import logging
from typing import Any, TypedDict

from mlops_nb.config import Settings
from mlops_nb.exceptions import UsageError
from mlops_nb.jobs.space import Dimension, parse_dimension
from mlops_nb.tracking import reading
from mlops_nb.tracking.records import RunPage, RunSummary
from mlops_nb.tracking.studies import TrialSummary, study_trials
from mlops_nb.widgets.study_charts import study_spec

log = logging.getLogger("mlops_nb")
MIN_IMPORTANCE_TRIALS = 3  # complete trials before fANOVA says anything
MAX_STUDIES = 200
KEPT = 64  # studies whose importances are kept: fANOVA's forest takes a second or two, the trials rarely change
_kept: collections.OrderedDict[tuple[Any, ...], dict[str, float] | None] = collections.OrderedDict()


class StudyView(TypedDict):
    """``GET /mlops-nb/api/studies/RUN_ID``: the study run, its trials, importances and chart."""

    run: RunSummary
    metric: str
    direction: str
    space: dict[str, str]  # parameter -> distribution, as given to --space
    trials: list[TrialSummary]
    importances: dict[str, float] | None  # None: fewer than MIN_IMPORTANCE_TRIALS complete trials
    spec: dict[str, Any]


def list_studies(settings: Settings) -> RunPage:
    """The study runs of every experiment, newest first."""
    return reading.list_runs(kind="study", max_results=MAX_STUDIES, settings=settings)


def _space(params: dict[str, str]) -> dict[str, Dimension]:
    prefix = "space."
    return {k[len(prefix) :]: parse_dimension(k[len(prefix) :], v) for k, v in params.items() if k.startswith(prefix)}


def _point(dims: dict[str, Dimension], params: dict[str, str]) -> dict[str, Any] | None:
    """A trial's parameters (strings in MLflow) in its space's types; None when one is missing or foreign."""
    point: dict[str, Any] = {}
    for name, dim in dims.items():
        if name not in params:
            return None
        text = params[name]
        if dim.kind == "choice":
            match = [c for c in dim.choices if str(c) == text]
            if not match:
                return None
            point[name] = match[0]
        else:
            try:
                point[name] = int(float(text)) if dim.kind == "int" else float(text)
            except ValueError:
                return None
    return point


def importances(trials: list[TrialSummary], dims: dict[str, Dimension], direction: str) -> dict[str, float] | None:
    """Optuna's fANOVA importances of the tuned parameters over the complete trials (None: too few)."""
    import optuna

    distributions = {n: d.optuna() for n, d in dims.items()}
    done = []
    for t in trials:
        point = _point(dims, t["params"])
        if t["state"] == "COMPLETE" and t["value"] is not None and point is not None:
            done.append(optuna.trial.create_trial(params=point, distributions=distributions, value=t["value"]))
    if len(done) < MIN_IMPORTANCE_TRIALS or not dims:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction)
    study.add_trials(done)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError) as e:  # e.g. every trial at one point
        log.info("mlops-nb: no parameter importances for this study: %r", e)
        return None
    return {name: float(value) for name, value in found.items()}


def study_view(run_id: str, settings: Settings) -> StudyView:
    """The study that run ``run_id`` worked on: its trials (all runs of the study), importances and chart.

    Raises:
        UsageError: ``run_id`` is not a study run.
        NotFound (from the store): no such run.
    """
    detail = reading.run_detail(run_id, settings)
    trials = study_trials(detail["run_id"], settings)
    params = detail["params"]
    metric, direction = params.get("metric", ""), params.get("direction", "maximize")
    if direction not in ("maximize", "minimize"):
        raise UsageError(f"Run {run_id} records the direction {direction!r}; it is not a study run of mlops-nb.")
    dims = _space(params)
    summary = RunSummary(**{k: detail[k] for k in RunSummary.__annotations__})  # type: ignore[literal-required]
    key = (detail["run_id"], direction, tuple(d.spec() for d in dims.values()), repr(trials))
    if key in _kept:
        _kept.move_to_end(key)
    else:
        _kept[key] = importances(trials, dims, direction)
        if len(_kept) > KEPT:
            _kept.popitem(last=False)
    found = _kept[key]
    return StudyView(
        run=summary,
        metric=metric,
        direction=direction,
        space={n: d.spec() for n, d in dims.items()},
        trials=trials,
        importances=found,
        spec=study_spec(
            trials, metric, direction, list(dims), found, log=[n for n, d in dims.items() if d.kind == "loguniform"]
        ),
    )
