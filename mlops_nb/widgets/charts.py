"""The run comparison chart: one Vega-Lite v5 spec, the same in the JupyterLab sidebar (served by the server
extension) and in a notebook (the ``application/vnd.vegalite.v5+json`` output of ``%mlops panel``).

``compare_spec(runs)`` is a pure function of ``RunSummary`` records: a parallel-coordinates view (every run a
line across its numeric parameters and its metrics, each axis scaled to its own min..max) above a grid of
metric-vs-parameter scatter plots. The data are inline, in long form, so that names with dots or spaces
(``f1_macro``, ``train.loss``) never become Vega field paths.

The sidebar gets this spec from the server extension (``GET /mlops-nb/api/compare``, ``comparison.py``): it
is built here only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from mlops_nb.tracking.records import RunSummary

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
MAX_AXES = 12  # parameters + metrics drawn; more makes unreadable axes
MAX_RUNS = 5000


# A parameter (a string in MLflow) counts as a number when it is written as one ("1e-3"; not "True" or "").
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _number(value: Any) -> float | None:
    if isinstance(value, str):
        if not _NUMBER.fullmatch(value.strip()):
            return None
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _numeric_params(runs: Sequence[RunSummary]) -> list[str]:
    """The parameters that are numbers in every run that has them and vary between runs."""
    names = sorted({k for r in runs for k in r["params"]})
    keep = []
    for name in names:
        values = [r["params"][name] for r in runs if name in r["params"]]
        numbers = [_number(v) for v in values]
        if all(n is not None for n in numbers) and len(set(numbers)) > 1:
            keep.append(name)
    return keep


def _label(run: RunSummary) -> str:
    return f"{run['name'] or run['run_id'][:8]} ({run['run_id'][:8]})"


def compare_spec(
    runs: Sequence[RunSummary],
    *,
    params: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A Vega-Lite v5 spec comparing ``runs``: parallel coordinates, then metric vs parameter.

    Args:
        runs: the runs to compare (``RunSummary`` records, as ``list_runs`` returns them).
        params: the parameters to draw (default: the numeric ones that vary between the runs).
        metrics: the metrics to draw (default: every metric a run has).
    """
    runs = list(runs)[:MAX_RUNS]
    params = list(params) if params is not None else _numeric_params(runs)
    metrics = list(metrics) if metrics is not None else sorted({k for r in runs for k in r["metrics"]})
    axes = ([("param", p) for p in params] + [("metric", m) for m in metrics])[:MAX_AXES]

    def value(run: RunSummary, kind: str, name: str) -> float | None:
        return _number(run["params"].get(name) if kind == "param" else run["metrics"].get(name))

    lines: list[dict[str, Any]] = []
    for order, (kind, name) in enumerate(axes):
        values = [v for r in runs if (v := value(r, kind, name)) is not None]
        low, high = (min(values), max(values)) if values else (0.0, 0.0)
        for r in runs:
            v = value(r, kind, name)
            if v is None:
                continue
            scaled = 0.5 if high == low else (v - low) / (high - low)
            lines.append(
                {
                    "run": _label(r),
                    "run_id": r["run_id"],
                    "axis": name,
                    "kind": kind,
                    "order": order,
                    "value": v,
                    "scaled": scaled,
                }
            )
    points = [
        {"run": _label(r), "run_id": r["run_id"], "param": p, "x": x, "metric": m, "y": y}
        for r in runs
        for p in params
        for m in metrics
        if (x := value(r, "param", p)) is not None and (y := value(r, "metric", m)) is not None
    ]
    tooltip = [
        {"field": "run", "type": "nominal"},
        {"field": "axis", "type": "nominal"},
        {"field": "value", "type": "quantitative", "format": ".4g"},
    ]
    parallel = {
        "title": "Parallel coordinates (each axis scaled to its min..max)",
        "data": {"values": lines},
        "width": max(70 * len(axes), 200),
        "height": 160,
        "layer": [
            {
                "mark": {"type": "line", "opacity": 0.6, "strokeWidth": 1.5},
                "encoding": {
                    "x": {"field": "axis", "type": "nominal", "sort": {"field": "order"}, "title": None},
                    "y": {"field": "scaled", "type": "quantitative", "axis": None},
                    "detail": {"field": "run_id", "type": "nominal"},
                    "color": {"field": "run", "type": "nominal", "legend": None},
                    "tooltip": tooltip,
                },
            },
            {
                "mark": {"type": "point", "filled": True, "size": 30},
                "encoding": {
                    "x": {"field": "axis", "type": "nominal", "sort": {"field": "order"}},
                    "y": {"field": "scaled", "type": "quantitative"},
                    "color": {"field": "run", "type": "nominal", "legend": None},
                    "tooltip": tooltip,
                },
            },
        ],
    }
    scatter = {
        "title": "Metric vs parameter",
        "data": {"values": points},
        "facet": {
            "row": {"field": "metric", "type": "nominal", "title": None},
            "column": {"field": "param", "type": "nominal", "title": None},
        },
        "spec": {
            "width": 120,
            "height": 100,
            "mark": {"type": "point", "filled": True, "size": 50},
            "encoding": {
                "x": {"field": "x", "type": "quantitative", "scale": {"zero": False}, "title": "parameter"},
                "y": {"field": "y", "type": "quantitative", "scale": {"zero": False}, "title": "metric"},
                "color": {"field": "run", "type": "nominal", "legend": None},
                "tooltip": [
                    {"field": "run", "type": "nominal"},
                    {"field": "param", "type": "nominal"},
                    {"field": "x", "type": "quantitative", "format": ".4g"},
                    {"field": "metric", "type": "nominal"},
                    {"field": "y", "type": "quantitative", "format": ".4g"},
                ],
            },
        },
        "resolve": {"scale": {"x": "independent", "y": "independent"}},
    }
    charts = [parallel] + ([scatter] if points else [])
    return {
        "$schema": SCHEMA,
        "description": f"mlops-nb comparison of {len(runs)} runs",
        "config": {"view": {"stroke": None}},
        "vconcat": charts,
    }
