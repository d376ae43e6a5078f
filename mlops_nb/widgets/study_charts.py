"""The charts of a study (``mlops-nb tune``): one Vega-Lite v5 spec, built here only and served to the
JupyterLab sidebar's Studies view (``GET /mlops-nb/api/studies/RUN_ID``, ``study_view.py``).

``study_spec`` is a pure function of the study's trials (``TrialSummary`` records, as ``mlops-nb show
STUDY_RUN`` lists them) and their parameter importances:

- the best value so far against the trial number (a line), each complete trial's value (dots), pruned and
  failed trials marked under the values (they have none);
- parallel coordinates: each trial a line across the tuned parameters and the metric, each axis scaled to
  its own min..max (a choice's values spread evenly), coloured by the trial's state;
- the parameters' importances (Optuna's fANOVA), largest first.

The data are inline, in long form, so that names with dots or spaces never become Vega field paths.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mlops_nb.tracking.studies import TrialSummary
from mlops_nb.widgets.charts import SCHEMA, finite_number

STATES = ["COMPLETE", "PRUNED", "FAIL"]
COLOURS = ["#4c78a8", "#e6a23c", "#d9534f"]  # complete, pruned, failed: the notebook widget's marks
MAX_TRIALS = 5000
MAX_AXES = 12


def _state(trial: TrialSummary) -> str:
    return trial["state"] or "FAIL"  # a trial whose process died (re-run as a later trial)


def _value(trial: TrialSummary) -> float | None:
    value = trial["value"]
    return value if trial["state"] == "COMPLETE" and value is not None and math.isfinite(value) else None


def _progress(trials: Sequence[TrialSummary], direction: str) -> list[dict[str, Any]]:
    """A row per trial: its value (complete ones), the best so far, and where a valueless trial is marked."""
    values = [v for t in trials if (v := _value(t)) is not None]
    floor = (min(values) if direction == "maximize" else max(values)) if values else 0.0
    rows, best = [], None
    for t in trials:
        value = _value(t)
        if value is not None and (best is None or (value > best if direction == "maximize" else value < best)):
            best = value
        rows.append(
            {
                "trial": t["trial"],
                "state": _state(t),
                "value": value,
                "best": best,
                "mark": floor if value is None else None,  # pruned and failed trials, at the worst value
                "run_id": t["run_id"],
            }
        )
    return rows


def _short(value: Any) -> str:
    number = finite_number(value)
    return f"{number:.4g}" if number is not None else str(value)


def _axes(
    trials: Sequence[TrialSummary], params: Sequence[str], metric: str, log: Sequence[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Long-form rows of the parallel coordinates: a trial's point on each axis, scaled to 0..1; and the
    axes' labels (a number's min and max, each value of a choice)."""
    rows: list[dict[str, Any]] = []
    labels: dict[tuple[str, int, float], str] = {}
    columns = [(p, {t["trial"]: t["params"].get(p) for t in trials}) for p in params]
    columns.append((metric, {t["trial"]: _value(t) for t in trials}))
    for order, (axis, by_trial) in enumerate(columns[:MAX_AXES]):
        numbers = {n: finite_number(v) for n, v in by_trial.items() if v is not None}
        if axis in log and all(x is not None and x > 0 for x in numbers.values()):
            numbers = {n: math.log10(x) for n, x in numbers.items()}  # type: ignore[arg-type]
        if all(x is not None for x in numbers.values()):
            low, high = (min(numbers.values()), max(numbers.values())) if numbers else (0.0, 0.0)
            scaled = {n: 0.5 if high == low else (x - low) / (high - low) for n, x in numbers.items()}  # type: ignore[operator]
        else:  # a choice: its values, sorted, spread evenly
            levels = sorted({str(v) for v in by_trial.values() if v is not None})
            spread = {level: (i / (len(levels) - 1) if len(levels) > 1 else 0.5) for i, level in enumerate(levels)}
            scaled = {n: spread[str(v)] for n, v in by_trial.items() if v is not None}
        state = {t["trial"]: _state(t) for t in trials}
        labels.update(
            {
                (axis, order, scaled[n]): _short(by_trial[n])
                for n in (min(scaled, key=scaled.get), max(scaled, key=scaled.get))
            }
            if numbers and all(x is not None for x in numbers.values())
            else {(axis, order, scaled[n]): str(by_trial[n]) for n in scaled}
        )
        rows.extend(
            {"trial": n, "state": state[n], "axis": axis, "order": order, "value": str(by_trial[n]), "scaled": s}
            for n, s in scaled.items()
        )
    return rows, [{"axis": a, "order": o, "scaled": s, "label": text} for (a, o, s), text in labels.items()]


def study_spec(
    trials: Sequence[TrialSummary],
    metric: str,
    direction: str,
    params: Sequence[str],
    importances: Mapping[str, float] | None = None,
    log: Sequence[str] = (),
) -> dict[str, Any]:
    """A Vega-Lite v5 spec of a study: best so far, parallel coordinates, importances (when given).

    Args:
        trials: the study's trials, by number.
        metric: the tuned metric; direction: maximize or minimize.
        params: the tuned parameters (the study's space), in its order.
        importances: parameter -> importance (fANOVA; they sum to 1), or None when there are too few trials.
        log: the parameters drawn on a log scale in the parallel coordinates (``loguniform`` ones).
    """
    trials = sorted(trials, key=lambda t: t["trial"])[:MAX_TRIALS]
    colour = {"field": "state", "type": "nominal", "scale": {"domain": STATES, "range": COLOURS}}
    trial_x = {"field": "trial", "type": "quantitative", "title": "trial", "axis": {"tickMinStep": 1}}
    progress = {
        "title": f"Best {metric} so far ({direction})",
        "data": {"values": _progress(trials, direction)},
        "width": 340,
        "height": 160,
        "layer": [
            {
                "mark": {"type": "line", "interpolate": "step-after", "color": "#f58518", "strokeWidth": 2},
                "encoding": {"x": trial_x, "y": {"field": "best", "type": "quantitative", "title": metric}},
            },
            {
                "mark": {"type": "point", "filled": True, "size": 40},
                "encoding": {
                    "x": trial_x,
                    "y": {"field": "value", "type": "quantitative", "scale": {"zero": False}},
                    "color": {**colour, "title": "trial state", "legend": {"orient": "top", "direction": "horizontal"}},
                    "tooltip": [
                        {"field": "trial", "type": "quantitative"},
                        {"field": "value", "type": "quantitative", "format": ".6g", "title": metric},
                        {"field": "best", "type": "quantitative", "format": ".6g", "title": "best so far"},
                    ],
                },
            },
            {
                "mark": {"type": "point", "shape": "triangle-down", "filled": True, "size": 70},
                "encoding": {
                    "x": trial_x,
                    "y": {"field": "mark", "type": "quantitative"},
                    "color": colour,
                    "tooltip": [{"field": "trial", "type": "quantitative"}, {"field": "state", "type": "nominal"}],
                },
            },
        ],
        "resolve": {"scale": {"y": "shared"}},
    }
    tooltip = [
        {"field": "trial", "type": "quantitative"},
        {"field": "state", "type": "nominal"},
        {"field": "axis", "type": "nominal"},
        {"field": "value", "type": "nominal"},
    ]
    lines, labels = _axes(trials, params, metric, log)
    axis_x = {"field": "axis", "type": "nominal", "sort": {"field": "order"}, "title": None, "axis": {"labelAngle": 0}}
    parallel = {
        "title": "Trials across the parameters (each axis min..max)",
        "data": {"values": lines},
        "width": max(100 * (len(params) + 1), 220),
        "height": 160,
        "layer": [
            {
                "mark": {"type": "line", "opacity": 0.55, "strokeWidth": 1.5},
                "encoding": {
                    "x": axis_x,
                    "y": {"field": "scaled", "type": "quantitative", "axis": None},
                    "detail": {"field": "trial", "type": "nominal"},
                    "color": {**colour, "legend": None},
                    "tooltip": tooltip,
                },
            },
            {
                "mark": {"type": "point", "filled": True, "size": 25},
                "encoding": {
                    "x": axis_x,
                    "y": {"field": "scaled", "type": "quantitative"},
                    "color": {**colour, "legend": None},
                    "tooltip": tooltip,
                },
            },
            {
                "data": {"values": labels},
                "mark": {"type": "text", "align": "right", "dx": -6, "fontSize": 10, "color": "#555"},
                "encoding": {
                    "x": axis_x,
                    "y": {"field": "scaled", "type": "quantitative"},
                    "text": {"field": "label", "type": "nominal"},
                },
            },
        ],
    }
    charts: list[dict[str, Any]] = [progress, parallel]
    if importances:
        charts.append(
            {
                "title": "Parameter importance (fANOVA)",
                "data": {"values": [{"param": p, "importance": v} for p, v in importances.items()]},
                "width": 300,
                "height": {"step": 22},
                "mark": {"type": "bar", "color": "#4c78a8"},
                "encoding": {
                    "y": {"field": "param", "type": "nominal", "sort": "-x", "title": None},
                    "x": {"field": "importance", "type": "quantitative", "axis": {"format": ".0%"}},
                    "tooltip": [
                        {"field": "param", "type": "nominal"},
                        {"field": "importance", "type": "quantitative", "format": ".1%"},
                    ],
                },
            }
        )
    return {
        "$schema": SCHEMA,
        "description": f"mlops-nb study of {len(trials)} trials",
        "config": {"view": {"stroke": None}},
        "vconcat": charts,
    }
