"""The run comparison chart: one Vega-Lite v5 spec, the same in the JupyterLab sidebar (served by the server
extension) and in a notebook (the ``application/vnd.vegalite.v5+json`` output of ``%mlops panel``).

``compare_spec(runs)`` is a pure function of ``RunSummary`` records: a parallel-coordinates view (every run a
line across its numeric parameters and its metrics, each axis scaled to its own min..max) above a grid of
metric-vs-parameter scatter plots. The data are inline, in long form, so that names with dots or spaces
(``f1_macro``, ``train.loss``) never become Vega field paths.

``choose(runs, params=, metrics=, first=)`` picks the axes: at most ``MAX_AXES``, the metrics in
``metric_order`` (the ones the gates name first, then an evaluation's own metrics, its worst slices,
cross-validation means, baseline deltas, and interval bounds last), and it says what it left out, which the
chart says too ("+N more metrics").

The sidebar gets this spec from the server extension (``GET /mlops-nb/api/compare``, ``comparison.py``): it
is built here only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_nb.config import Settings, load_monitor_settings, load_promote_settings
from mlops_nb.exceptions import ConfigError, UnknownMetricError, UsageError
from mlops_nb.gates import canonical, parse_requirement
from mlops_nb.tracking.records import RunSummary

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
MAX_AXES = 12  # parameters + metrics drawn; more makes unreadable axes
MAX_RUNS = 5000
NAMED = 40  # names listed in an error about an unknown one
HINT = "draw them with mnb.compare(runs, metrics=[...])"  # how the reader of the chart draws the metrics left out


# A parameter (a string in MLflow) counts as a number when it is written as one ("1e-3"; not "True" or "").
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def finite_number(value: Any) -> float | None:
    """``value`` as a finite float (numbers, and text that reads as one), else None."""
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
        numbers = [finite_number(v) for v in values]
        if all(n is not None for n in numbers) and len(set(numbers)) > 1:
            keep.append(name)
    return keep


def _label(run: RunSummary) -> str:
    return f"{run['name'] or run['run_id'][:8]} ({run['run_id'][:8]})"


# The groups of metric_order: an evaluation's own metrics (roc_auc), then its worst slices, cross-validation
# means, baseline deltas; counts (example_count, true_positives) and interval bounds (cv.NAME.low) last.
def _group(name: str, counts: frozenset[str]) -> int:
    parts = name.split(".")
    if parts[-1] in counts:
        return 4
    if "worst_slice" in parts[:-1]:
        return 1
    if "cv" in parts[:-1]:
        return 2 if parts[-1] == "mean" else 4
    if "delta" in parts[:-1]:
        return 3 if parts[-2] == "delta" else 4
    return 0


def metric_order(names: Sequence[str], first: Sequence[str] = ()) -> list[str]:
    """``names`` (distinct) in the chart's default order: those of ``first`` that are there (the metrics the
    gates name, short names such as ``accuracy`` spelled out), then by ``_group``, alphabetically within one."""
    from mlops_nb.evaluation.metrics import COUNTS  # numpy: only when a comparison is drawn

    present = list(dict.fromkeys(names))
    firsts = [n for f in first if (n := _resolve(f, present)) is not None]
    firsts = list(dict.fromkeys(firsts))
    rest = sorted((n for n in present if n not in firsts), key=lambda n: (_group(n, COUNTS), n))
    return firsts + rest


def _resolve(name: str, present: Sequence[str]) -> str | None:
    if name in present:
        return name
    spelled = canonical(name)  # worst_slice.recall -> worst_slice.recall_score, as the gates read it
    return spelled if spelled in present else None


def first_metrics(settings: Settings) -> list[str]:
    """The metrics a comparison draws first: the project's promotion metric, the metrics its retraining
    requirements name, then an evaluation's primary metrics and their worst slices. A project whose gate
    settings cannot be read (its commands say why) gets the evaluation's metrics only."""
    from mlops_nb.evaluation.metrics import PRIMARY  # numpy: only when a comparison is drawn

    named: list[str] = []
    try:
        promote = load_promote_settings(settings.project_root).metric
        retrain = load_monitor_settings(settings.project_root).retrain
        named += [promote] if promote else []
        named += [parse_requirement(r).metric for r in (retrain.require if retrain else ())]
    except (ConfigError, UsageError):
        pass
    primary = list(dict.fromkeys(PRIMARY.values()))
    return list(dict.fromkeys([*named, *primary, *(f"worst_slice.{m}" for m in primary)]))


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:NAMED]) or "none"
    return shown + (f" and {len(names) - NAMED} more" if len(names) > NAMED else "")


@dataclass(frozen=True)
class Choice:
    """The axes of a comparison chart and what did not fit.

    Attributes:
        params: the parameters drawn (numeric ones), in order.
        metrics: the metrics drawn, in order.
        available: every metric the runs have, in ``metric_order``: what a picker lists.
        left_out: metrics chosen (or, by default, available) but not drawn: more than ``MAX_AXES`` axes.
        params_left_out: the same for parameters.
    """

    params: list[str]
    metrics: list[str]
    available: list[str]
    left_out: list[str] = field(default_factory=list)
    params_left_out: list[str] = field(default_factory=list)


def choose(
    runs: Sequence[RunSummary],
    *,
    params: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    first: Sequence[str] = (),
) -> Choice:
    """The axes of the chart of ``runs``: ``params`` then ``metrics``, at most ``MAX_AXES`` in all, and what
    did not fit.

    Args:
        runs: the runs compared.
        params: the parameters to draw (default: the numeric ones that vary between the runs).
        metrics: the metrics to draw, in that order; short names as the gates take them
            (``worst_slice.recall`` for ``worst_slice.recall_score``). Default: every metric of the runs, in
            ``metric_order(..., first)``. The parameters are drawn first (by default at most half the axes),
            the metrics in the room left.
        first: the metrics to put first by default (those the promotion gate and the requirements name).

    Raises:
        UnknownMetricError: a metric no run has (the message lists those they have).
        UsageError: a parameter no run has.
    """
    available = metric_order([k for r in runs for k in r["metrics"]], first)
    if metrics is None:
        wanted = available
    else:
        unknown = [m for m in metrics if _resolve(m, available) is None]
        if unknown:
            asked = ", ".join(repr(m[:100]) for m in unknown)
            raise UnknownMetricError(
                f"No compared run has the metric {asked}. Choose among: {_listed(available)}.",
                unknown=list(unknown),
                available=available,
            )
        wanted = list(dict.fromkeys(n for m in metrics if (n := _resolve(m, available)) is not None))
    if params is None:
        numeric = _numeric_params(runs)
        room = MAX_AXES // 2 if wanted else MAX_AXES  # by default, half the axes at most are parameters
        drawn_params, params_left = numeric[:room], numeric[room:]
    else:
        known = sorted({k for r in runs for k in r["params"]})
        missing = [p for p in params if p not in known]
        if missing:
            asked = ", ".join(repr(p[:100]) for p in missing)
            raise UsageError(f"No compared run has the parameter {asked}. Choose among: {_listed(known)}.")
        chosen = list(dict.fromkeys(params))
        drawn_params, params_left = chosen[:MAX_AXES], chosen[MAX_AXES:]
    room = MAX_AXES - len(drawn_params)
    return Choice(drawn_params, wanted[:room], available, wanted[room:], params_left)


def _note(choice: Choice, hint: str) -> str | None:
    """What the chart says it left out, or None when it draws everything chosen."""
    more = []
    if choice.left_out:
        more.append(f"+{len(choice.left_out)} more metrics")
    if choice.params_left_out:
        more.append(f"+{len(choice.params_left_out)} more parameters")
    return f"{', '.join(more)}: {hint}" if more else None


def compare_spec(
    runs: Sequence[RunSummary],
    *,
    params: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    first: Sequence[str] = (),
    hint: str = HINT,
) -> dict[str, Any]:
    """A Vega-Lite v5 spec comparing ``runs``: parallel coordinates, then metric vs parameter.

    Args:
        runs: the runs to compare (``RunSummary`` records, as ``list_runs`` returns them).
        params, metrics, first: the axes, as :func:`choose` takes them.
        hint: how the reader draws what was left out, after "+N more metrics: " under the chart's title.

    Raises:
        UnknownMetricError: a metric no run has. UsageError: a parameter no run has.
    """
    runs = list(runs)[:MAX_RUNS]
    return spec_of(runs, choose(runs, params=params, metrics=metrics, first=first), hint)


def spec_of(runs: Sequence[RunSummary], choice: Choice, hint: str = HINT) -> dict[str, Any]:
    """The spec of :func:`compare_spec` for axes already chosen."""
    runs = list(runs)[:MAX_RUNS]
    params, metrics = choice.params, choice.metrics
    axes = [("param", p) for p in params] + [("metric", m) for m in metrics]

    def value(run: RunSummary, kind: str, name: str) -> float | None:
        return finite_number(run["params"].get(name) if kind == "param" else run["metrics"].get(name))

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
    note = _note(choice, hint)
    title: dict[str, Any] = {"text": "Parallel coordinates (each axis scaled to its min..max)"}
    if note:
        title["subtitle"] = note
    parallel = {
        "title": title,
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
        "description": f"mlops-nb comparison of {len(runs)} runs" + (f" ({note})" if note else ""),
        "config": {"view": {"stroke": None}},
        "vconcat": charts,
    }
