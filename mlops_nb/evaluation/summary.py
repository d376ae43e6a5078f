"""What ``mlops-nb show``, ``mlops-nb diff`` and the sidebar say of the evaluations a run logged.

:func:`headline` keeps the parts of a result (``evaluation/result.json``) that a reader looks at first: the
metrics with their intervals, the cross-validation, the worst slice, the baseline's paired deltas and what was
skipped. :func:`compare` sets the evaluations of two runs side by side, by name. Pure: the results come from
``tracking.evaluations.results_in``.

The interval of a difference between two runs: the two evaluations are independent (each its own bootstrap),
so the half-widths add in quadrature, ``b - a ± sqrt(h_a² + h_b²)`` with ``h`` half of each side's 95%
interval. On the same rows this is wider than a paired interval (what the rows have in common does not
cancel): for the paired one evaluate the model with ``baseline=`` the other.
"""

from __future__ import annotations

import math
from typing import Any, TypedDict

from mlops_nb.evaluation.metrics import BOUNDED, COUNTS, PRIMARY

WORST_SHOWN = 3  # worst slices in a headline


class Headline(TypedDict):
    """One evaluation of a run: ``run_id`` holds it (the run or one of its stages, named by ``stage``);
    ``report`` is its HTML report's artifact path there. ``error``: why its result could not be read."""

    name: str
    run_id: str
    stage: str | None
    report: str
    model: str | None
    task: str | None
    rows: int | None
    primary: str | None  # the metric slices are ranked by (accuracy_score, r2_score)
    metrics: dict[str, float]
    intervals: dict[str, dict[str, float]]
    cv: dict[str, dict[str, float]] | None
    worst_slice: dict[str, float]
    worst_slices: list[dict[str, Any]]
    baseline: dict[str, Any] | None
    skipped: list[dict[str, str]]
    error: str | None


# The evaluation NAME in run a and run b. "in" is a Python keyword: the functional form keeps the JSON name.
EvaluationDiff = TypedDict(
    "EvaluationDiff",
    {
        "name": str,
        "in": str,  # "both" | "a" | "b": which runs logged it
        "run_ids": list,  # [a, b]: the runs (or stage runs) that hold it, None where missing
        "metrics": dict[str, list],  # name -> [a, b, b - a]
        "deltas": dict[str, dict[str, float]],  # name -> {delta, low, high}: metrics with intervals on both sides
        "cv": dict[str, list],  # cross-validation means, as metrics
        "worst_slice": dict[str, list],  # each metric's worst slice value, as metrics
        "primary": str | None,  # the metric slices are ranked by (accuracy_score, r2_score)
    },
)


def headline(result: dict[str, Any], *, run_id: str, stage: str | None, report: str) -> Headline:
    """The headline of one ``result.json`` logged in run ``run_id``."""
    baseline = result.get("baseline")
    return {
        "name": str(result.get("name", "evaluation")),
        "run_id": run_id,
        "stage": stage,
        "report": report,
        "model": result.get("model"),
        "task": result.get("task"),
        "rows": result.get("rows"),
        "primary": PRIMARY.get(result.get("task") or ""),
        "metrics": dict(result.get("metrics") or {}),
        "intervals": dict(result.get("intervals") or {}),
        "cv": result.get("cv"),
        "worst_slice": dict(result.get("worst_slice") or {}),
        "worst_slices": [
            {k: s[k] for k in ("slice", "rows", "metrics", "intervals", "gap") if k in s}
            for s in (result.get("worst_slices") or [])[:WORST_SHOWN]
        ],
        "baseline": None
        if not baseline
        else {"model": baseline.get("model"), "metrics": baseline.get("metrics", {}), "deltas": baseline["deltas"]},
        "skipped": list(result.get("skipped") or []),
        "error": None,
    }


def unreadable(name: str, *, run_id: str, stage: str | None, report: str, reason: str) -> Headline:
    """The headline of an evaluation the run names but whose result cannot be read: nothing in it looks computed."""
    return {
        "name": name,
        "run_id": run_id,
        "stage": stage,
        "report": report,
        "model": None,
        "task": None,
        "rows": None,
        "primary": None,
        "metrics": {},
        "intervals": {},
        "cv": None,
        "worst_slice": {},
        "worst_slices": [],
        "baseline": None,
        "skipped": [{"part": "result", "reason": reason}],
        "error": reason,
    }


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _pair(a: Any, b: Any) -> list[float | None]:
    x, y = _finite(a), _finite(b)
    return [x, y, None if x is None or y is None else y - x]


def _side_by_side(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[float | None]]:
    return {k: _pair(a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys())}


def _half(interval: dict[str, float] | None) -> float | None:
    if not interval:
        return None
    low, high = _finite(interval.get("low")), _finite(interval.get("high"))
    return None if low is None or high is None else (high - low) / 2


def _deltas(a: Headline, b: Headline) -> dict[str, dict[str, float]]:
    found = {}
    for name in sorted(a["metrics"].keys() & b["metrics"].keys()):
        delta = _pair(a["metrics"][name], b["metrics"][name])[2]
        ha, hb = _half(a["intervals"].get(name)), _half(b["intervals"].get(name))
        if name in COUNTS or delta is None or ha is None or hb is None:
            continue
        half = math.hypot(ha, hb)
        low, high = delta - half, delta + half
        if name in BOUNDED:  # a difference of two values in [0, 1]
            low, high = max(low, -1.0), min(high, 1.0)
        found[name] = {"delta": delta, "low": low, "high": high}
    return found


def _latest(headlines: list[Headline]) -> dict[str, Headline]:
    """By name; an evaluation logged twice in a run (two stages) counts once, its latest (oldest come first)."""
    found: dict[str, Headline] = {}
    for h in headlines:
        found.pop(h["name"], None)
        found[h["name"]] = h
    return found


def compare(a: list[Headline], b: list[Headline]) -> list[EvaluationDiff]:
    """The evaluations of run a against those of run b, matched by name (a's order, then b's new ones)."""
    by_a, by_b = _latest(a), _latest(b)
    empty = unreadable("", run_id="", stage=None, report="", reason="")
    out: list[EvaluationDiff] = []
    for name in [*by_a, *(n for n in by_b if n not in by_a)]:
        x, y = by_a.get(name, empty), by_b.get(name, empty)
        cv_a = {k: v.get("mean") for k, v in (x["cv"] or {}).items()}
        cv_b = {k: v.get("mean") for k, v in (y["cv"] or {}).items()}
        out.append(
            {
                "name": name,
                "in": "both" if name in by_a and name in by_b else "a" if name in by_a else "b",
                "run_ids": [
                    by_a[name]["run_id"] if name in by_a else None,
                    by_b[name]["run_id"] if name in by_b else None,
                ],
                "metrics": _side_by_side(x["metrics"], y["metrics"]),
                "deltas": _deltas(x, y),
                "cv": _side_by_side(cv_a, cv_b),
                "worst_slice": _side_by_side(x["worst_slice"], y["worst_slice"]),
                "primary": x["primary"] or y["primary"],
            }
        )
    return out
