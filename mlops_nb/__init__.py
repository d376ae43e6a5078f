"""mlops-nb: notebook-first MLOps on MLflow.

``import mlops_nb as mnb`` loads neither MLflow nor pandas nor IPython; they load on first use.
"""

from __future__ import annotations

from typing import Any

from mlops_nb.exceptions import ConfigError, MlopsNbError, TrackingError
from mlops_nb.tracking.fluent import (
    flush,
    log_artifact,
    log_dict,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_text,
    set_tag,
    set_tags,
    tracking_uri,
)
from mlops_nb.tracking.runs import Run, active_run, end_run, stage, start_run


def log_model(
    model: Any, name: str = "model", input_example: Any = None, reference: Any = None, reference_y: Any = None
) -> None:
    """Log a scikit-learn model under the current stage (see ``mlops_nb.stages.models.log_model``)."""
    from mlops_nb.stages.models import log_model as _log_model

    _log_model(model, name, input_example, reference, reference_y)


def monitor(model_uri: str | None = None, data: Any = None, **options: Any) -> Any:
    """Check ``data`` (a frame or a path; or ``logs=`` a prediction log folder) against the reference stored
    with ``model_uri``, as an MLflow run: returns a ``MonitorOutcome`` that displays as the HTML report.
    Options as ``mlops-nb monitor``'s: ``reference``, ``labels``, ``window``, ``timestamp``, ``json_out``,
    ``report``, ``webhook``, ``preset``, ``sample_rows``, ``thresholds``, ``drift_share``, ``executor``,
    ``scheduler``, ``retrain`` (see ``mlops_nb.watch.monitor.watch``)."""
    from mlops_nb.watch.monitor import watch

    return watch(model_uri, data=data, **options)


def evaluate(model: Any, X: Any, y: Any, **options: Any) -> Any:
    """Evaluate a fitted scikit-learn model on labelled rows and record it into the current run (the
    ``%%track`` stage, else the notebook's run): metrics under MLflow's names, plots, explanations, slices,
    and with ``cv=K`` cross-validation, with ``baseline=`` paired deltas. Returns an ``Evaluation`` that
    displays as the report. Options: ``slices``, ``baseline``, ``cv``, ``explain``, ``name``,
    ``registered_model``, ``min_support``, ``record`` (see ``mlops_nb.jobs.evaluate.evaluate``)."""
    from mlops_nb.jobs.evaluate import evaluate as _evaluate

    return _evaluate(model, X, y, **options)


def report(value: float, step: int, name: str | None = None) -> None:
    """Record an intermediate value of a trial (metric ``name``, default ``intermediate_value``, at ``step``).
    In a trial of ``mlops-nb tune`` the study's pruner sees it too, and stops the trial when it is not
    promising (``optuna.TrialPruned`` is raised: the notebook stops there, its values kept); anywhere else it
    is ``log_metric``."""
    from mlops_nb.jobs.pruning import report as _report

    _report(value, step, name)


def tune(notebook: Any, space: Any, **options: Any) -> Any:
    """Tune ``notebook``'s parameters with Optuna, as ``mlops-nb tune``: ``space`` is ``{"C":
    "loguniform(1e-3,1e2)"}``; options ``trials``, ``metric``, ``direction``, ``sampler``, ``pruner``,
    ``parallel``, ``executor``, ``scheduler``, ``timeout``, ``study``, ``seed``, ``fixed`` (see
    ``mlops_nb.jobs.tune.tune``). Returns a ``TuneResult``; its ``.study`` is the ``optuna.Study``.

    In a notebook a live widget shows the trials done, the best value and its parameters, and each trial's
    value (``widget=False`` leaves it out)."""
    from pathlib import Path

    from mlops_nb.jobs.tune import tune as _tune

    if options.pop("widget", True) and "on_trial" not in options:
        from mlops_nb.widgets.study import live_widget

        shown = live_widget(Path(notebook), options)
        if shown is not None:
            options["on_trial"] = shown.update
    return _tune(Path(notebook), space, **options)


def diff(a: Any, b: Any) -> Any:
    """Why run ``b`` differs from run ``a``: params, metric deltas and, per stage, whether its code, the
    parameters it read or its inputs changed. Displays as HTML in a notebook; ``.record`` is the JSON of
    ``mlops-nb diff``. ``a``/``b``: run ids, or runs (``mnb.active_run()``)."""
    from mlops_nb.widgets.diff import diff as _diff

    return _diff(a, b)


def compare(runs: Any, *, metrics: Any = None, params: Any = None) -> Any:
    """The comparison chart of ``runs`` (two or more run ids, or runs such as ``mnb.active_run()``): parallel
    coordinates over ``params`` and ``metrics``, then metric vs parameter; displays in a notebook, ``.record``
    is the sidebar's record. ``metrics``: the metrics to draw, in order (short names as gates take them:
    ``"worst_slice.recall"``); default: every metric, those the gates name first, at most 12 axes. An unknown
    name raises ``UnknownMetricError`` (a ValueError) listing the runs' metrics."""
    from mlops_nb.widgets.comparison import compare_runs

    return compare_runs(runs, metrics=metrics, params=params)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext mlops_nb``: register ``%%track`` and ``%mlops``."""
    from mlops_nb.magics import load

    load(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the built JupyterLab extension is (``jupyter labextension develop .`` links it from here)."""
    return [{"src": "labextension", "dest": "mlops-nb"}]


__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "MlopsNbError",
    "Run",
    "TrackingError",
    "__version__",
    "active_run",
    "compare",
    "diff",
    "end_run",
    "evaluate",
    "flush",
    "load_ipython_extension",
    "log_artifact",
    "log_dict",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_text",
    "monitor",
    "report",
    "set_tag",
    "set_tags",
    "stage",
    "start_run",
    "tracking_uri",
    "tune",
]
