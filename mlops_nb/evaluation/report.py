"""One evaluation of a fitted model: every part computed, gathered into the JSON result and the charts.

:func:`evaluate_model` is pure (no MLflow): ``mnb.evaluate`` and ``mlops-nb evaluate`` call it, then record
(``tracking/evaluations.py``). A part that cannot be computed is named in ``skipped`` with its reason, and
its key holds ``None`` (not asked for) or what could be computed: nothing missing looks complete.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

import numpy as np

from mlops_nb.evaluation import explain as explaining
from mlops_nb.evaluation import metrics as m
from mlops_nb.evaluation import plots, resampling
from mlops_nb.evaluation import slices as slicing
from mlops_nb.evaluation.cv import FoldSummary, cross_validate
from mlops_nb.exceptions import UsageError

SMALL_CELLS = 1_000_000  # rows x columns of X evaluated with one BLAS thread


class Baseline(TypedDict):
    model: str
    metrics: dict[str, float]
    deltas: dict[str, resampling.Delta]
    rows: int


class Result(TypedDict):
    """``evaluation/result.json`` (docs/evaluate.md describes every field)."""

    name: str
    model: str
    task: str
    rows: int
    classes: list[Any]
    metrics: dict[str, float]
    intervals: dict[str, resampling.Interval]
    cv: dict[str, FoldSummary] | None
    slices: list[slicing.Slice] | None
    worst_slices: list[slicing.Slice]
    worst_slice: dict[str, float]
    importance: list[explaining.Importance] | None
    shap: explaining.ShapSummary | None
    baseline: Baseline | None
    skipped: list[m.Skipped]
    seconds: dict[str, float]
    run_id: str | None


@dataclass
class Evaluation:
    """What ``mnb.evaluate`` returns: ``result`` (the JSON), the charts; displays as the report in a notebook."""

    result: Result
    charts: list[plots.Chart] = field(default_factory=list, repr=False)

    @property
    def metrics(self) -> dict[str, float]:
        return self.result["metrics"]

    @property
    def skipped(self) -> list[m.Skipped]:
        return self.result["skipped"]

    def html(self, *, page: bool = False) -> str:
        """The report: a fragment for a notebook, or with ``page`` one self-contained HTML file."""
        from mlops_nb.evaluation import html

        return html.page(self) if page else html.fragment(self)

    def _repr_html_(self) -> str:
        return self.html()

    def __repr__(self) -> str:
        r = self.result
        name = m.PRIMARY[r["task"]]
        value = r["metrics"].get(name)
        shown = f"{name} = {value:.4g}" if value is not None else f"no {name}"
        return f"<Evaluation {r['name']} of {r['model']}: {r['task']}, {r['rows']} rows, {shown}, run {r['run_id']}>"


def _blas_threads(frame: Any) -> AbstractContextManager[Any]:
    """One BLAS thread on data of up to ``SMALL_CELLS`` cells: matrices that small gain nothing from more, and
    OpenBLAS's threads spin-waiting for a busy core made the evaluation 3-4x slower on a shared machine
    (five logistic-regression fits on 285 rows: 0.37 s with 2 threads, 0.09 s with 1)."""
    if frame.size > SMALL_CELLS:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def _restrict(s: m.Scored, mask: np.ndarray) -> m.Scored:
    return replace(s, y=s.y[mask], pred=s.pred[mask], proba=None if s.proba is None else s.proba[mask])


def evaluate_model(
    model: Any,
    X: Any,
    y: Any,
    *,
    slices: list[str] | None = None,
    baseline: Any = None,
    baseline_label: str = "baseline",
    cv: Any = None,
    explain: bool = True,
    name: str = "evaluation",
    label: str | None = None,
    min_support: int | None = None,
) -> Evaluation:
    """Evaluate the fitted ``model`` on ``X``, ``y``.

    Args:
        model: a fitted scikit-learn classifier or regressor (a pipeline ending in one).
        X, y: the labelled rows (a DataFrame or array, and one label per row).
        slices: declared slices, ``["cat0", "num1:quantile(4)"]``.
        baseline: a fitted model to compare with on the same rows (``baseline_label`` names it).
        cv: folds of cross-validation on ``X``, ``y`` (clones refitted), or a scikit-learn splitter.
        explain: SHAP values and permutation importance.
        name: the evaluation's name (several in a run: ``evaluation``, ``holdout``...).
        label: how the result names the model (default: its class name).
        min_support: the fewest rows of a found worst segment (default: 5% of the rows, at least 20).

    Raises:
        UsageError: bad input (the message names the fix).
    """
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(part: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[part] = round(now - clock, 4)
        clock = now

    frame = m.frame_of(X)
    with _blas_threads(frame):  # the whole evaluation, the model's own predictions and CV fits included
        s, skipped = m.score(model, m.model_input(model, frame), y)
        if s.kept is not None:
            frame = frame.loc[s.kept]
        frame = frame.reset_index(drop=True)
        found, undefined = m.evaluate(s)
        skipped += undefined
        intervals = resampling.intervals(s)
        charts = plots.charts(s, found)
        lap("metrics")
        primary = found.get(m.PRIMARY[s.task], float("nan"))
        declared = slicing.declared_slices(s, frame, list(slices), primary) if slices else None
        worst: list[slicing.Slice] = []
        if np.isfinite(primary):
            worst = slicing.worst_slices(s, frame, primary, min_support)
        else:
            skipped.append({"part": "worst_slices", "reason": f"{m.PRIMARY[s.task]} is undefined on all rows"})
        lap("slices")
        summary = None
        if cv is not None:
            labels = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
            kept_labels = labels if s.kept is None else labels[s.kept]
            summary, cv_skipped = cross_validate(model, m.model_input(model, frame), kept_labels, cv)
            skipped += cv_skipped
            lap("cv")
        importance = shap = None
        if explain:
            importance = explaining.permutation_importance(model, frame, s)
            charts.append(plots.importance_chart(importance))  # type: ignore[arg-type]
            lap("importance")
            values, shap_skipped = explaining.shap_values(model, frame, s)
            skipped += shap_skipped
            if values is not None:
                shap = values.summary
                charts += plots.shap_charts(values)
            lap("shap")
        compared = None
        if baseline is not None:
            compared = _compare(s, baseline, baseline_label, frame, y, skipped)
            lap("baseline")
    result: Result = {
        "name": name,
        "model": label or type(model).__name__,
        "task": s.task,
        "rows": s.rows,
        "classes": list(s.classes),
        "metrics": found,
        "intervals": intervals,
        "cv": summary,
        "slices": declared,
        "worst_slices": worst,
        "worst_slice": slicing.worst_of([*(declared or []), *worst]),
        "importance": importance,
        "shap": shap,
        "baseline": compared,
        "skipped": skipped,
        "seconds": seconds,
        "run_id": None,
    }
    return Evaluation(result, charts)


def _compare(s: m.Scored, baseline: Any, label: str, frame: Any, y: Any, skipped: list[m.Skipped]) -> Baseline:
    """The baseline scored on the rows the model was scored on, and the paired deltas."""
    if m.task_of(baseline) != s.task:
        raise UsageError(
            f"The baseline {label} is a {m.task_of(baseline)} model, the model a {s.task} one: compare like with like."
        )
    labels = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    kept_labels = labels if s.kept is None else labels[s.kept]
    b, b_skipped = m.score(baseline, m.model_input(baseline, frame), kept_labels)
    skipped += [{"part": f"baseline.{p['part']}", "reason": p["reason"]} for p in b_skipped]
    if tuple(b.classes) != tuple(s.classes):
        raise UsageError(f"The baseline {label} has classes {list(b.classes)}, the model {list(s.classes)}.")
    ours = s if b.kept is None else _restrict(s, b.kept)
    baseline_metrics, _ = m.evaluate(b)
    return {
        "model": label,
        "metrics": baseline_metrics,
        "deltas": resampling.paired_deltas(ours, b),
        "rows": b.rows,
    }
