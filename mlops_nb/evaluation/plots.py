"""The evaluation's plots, as data and as Vega-Lite v5 specs (the sidebar's charts; JupyterLab renders them).

Each :class:`Chart` is named as MLflow's default evaluator names its plot (``confusion_matrix``,
``roc_curve_plot``, ``precision_recall_curve_plot``, ``calibration_curve_plot``, ``lift_curve_plot``,
``shap_feature_importance_plot``, ``shap_beeswarm_plot``) or, where MLflow has none, in the same way
(``residuals_plot``, ``predicted_vs_actual_plot``, ``permutation_importance_plot``). Its data are kept in
long form with plain field names, so column names with dots or spaces never become Vega field paths;
``html.py`` draws the same data as inline SVG for the offline report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlops_nb.evaluation.metrics import BINARY, REGRESSION, Scored

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
MAX_POINTS = 300  # of a curve or scatter
CALIBRATION_BINS = 10
TOP_FEATURES = 15


@dataclass
class Chart:
    """One plot: ``kind`` is ``lines``, ``points``, ``heatmap``, ``bars`` or ``strips``; ``rows`` its data."""

    name: str
    title: str
    kind: str
    rows: list[dict[str, Any]]
    x: str = ""
    y: str = ""
    diagonal: bool = False  # draw y = x (ROC's chance line, perfect calibration, predicted = actual)
    extra: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> dict[str, Any]:
        """The Vega-Lite v5 spec, data inline."""
        base: dict[str, Any] = {
            "$schema": SCHEMA,
            "title": self.title,
            "data": {"values": self.rows},
            "width": 320,
            "height": 240,
        }
        quantitative = {"type": "quantitative"}
        if self.kind in ("lines", "points"):
            mark = {"type": "line", "interpolate": "linear"} if self.kind == "lines" else {"type": "point", "size": 18}
            layer = {
                "mark": {**mark, "tooltip": True},
                "encoding": {
                    "x": {"field": "x", **quantitative, "title": self.x},
                    "y": {"field": "y", **quantitative, "title": self.y},
                    "color": {"field": "series", "type": "nominal", "title": None},
                },
            }
            layers = [layer]
            if self.diagonal:
                low = min((min(r["x"], r["y"]) for r in self.rows), default=0.0)
                high = max((max(r["x"], r["y"]) for r in self.rows), default=1.0)
                layers.append(
                    {
                        "data": {"values": [{"x": low, "y": low}, {"x": high, "y": high}]},
                        "mark": {"type": "line", "strokeDash": [4, 4], "color": "#999"},
                        "encoding": {"x": {"field": "x", **quantitative}, "y": {"field": "y", **quantitative}},
                    }
                )
            return {**base, "layer": layers}
        if self.kind == "heatmap":
            cell = {
                "x": {"field": "predicted", "type": "nominal", "title": self.x},
                "y": {"field": "actual", "type": "nominal", "title": self.y},
            }
            return {
                **base,
                "layer": [
                    {"mark": "rect", "encoding": {**cell, "color": {"field": "count", **quantitative}}},
                    {"mark": {"type": "text"}, "encoding": {**cell, "text": {"field": "count", **quantitative}}},
                ],
            }
        if self.kind == "bars":
            y = {"field": "feature", "type": "nominal", "sort": None, "title": None}
            layers = [
                {"mark": "bar", "encoding": {"y": y, "x": {"field": "value", **quantitative, "title": self.x}}},
            ]
            if any("low" in r for r in self.rows):
                layers.append(
                    {
                        "mark": {"type": "rule"},
                        "encoding": {"y": y, "x": {"field": "low", **quantitative}, "x2": {"field": "high"}},
                    }
                )
            return {**base, "layer": layers}
        return {  # strips: a beeswarm, one row of points per feature coloured by the input's value
            **base,
            "mark": {"type": "point", "filled": True, "size": 14},
            "encoding": {
                "y": {"field": "feature", "type": "nominal", "sort": None, "title": None},
                "x": {"field": "value", **quantitative, "title": self.x},
                "yOffset": {"field": "jitter", **quantitative},
                "color": {"field": "level", **quantitative, "scale": {"scheme": "blueorange"}, "title": "input"},
            },
        }


def _thin(n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).round().astype(int)) if n else np.arange(0)


def curve(positive: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """ROC and precision-recall points at each distinct score (as scikit-learn's curves), from the top score."""
    order = np.argsort(-scores, kind="mergesort")
    ranked = scores[order]
    ends = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    pos = positive[order].astype(float)
    tps, fps = np.cumsum(pos)[ends], np.cumsum(1 - pos)[ends]
    P, N = max(tps[-1], 1.0), max(fps[-1], 1.0)
    return {
        "fpr": np.r_[0.0, fps / N],
        "tpr": np.r_[0.0, tps / P],
        "recall": tps / P,
        "precision": tps / np.maximum(tps + fps, 1.0),
    }


def _lines(series: str, x: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    keep = _thin(len(x))
    return [{"series": series, "x": float(x[i]), "y": float(y[i])} for i in keep]


def _label(value: Any) -> str:
    return str(value)


def charts(s: Scored, metrics: dict[str, float]) -> list[Chart]:
    """The standard plots of the task: classifiers' confusion matrix, ROC, precision-recall, calibration and
    lift (the last three need probabilities; calibration and lift binary only); regressors' residuals and
    predicted vs actual."""
    if s.task == REGRESSION:
        keep = _thin(s.rows) if s.rows > MAX_POINTS else np.arange(s.rows)
        residuals = [{"series": "rows", "x": float(s.pred[i]), "y": float(s.y[i] - s.pred[i])} for i in keep]
        actual = [{"series": "rows", "x": float(s.y[i]), "y": float(s.pred[i])} for i in keep]
        return [
            Chart("residuals_plot", "Residuals", "points", residuals, "predicted", "actual - predicted"),
            Chart("predicted_vs_actual_plot", "Predicted vs actual", "points", actual, "actual", "predicted", True),
        ]
    k = len(s.classes)
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (s.y, s.pred), 1)
    cells = [
        {"actual": _label(s.classes[a]), "predicted": _label(s.classes[p]), "count": int(counts[a, p])}
        for a in range(k)
        for p in range(k)
    ]
    found = [Chart("confusion_matrix", "Confusion matrix", "heatmap", cells, "predicted", "actual")]
    if s.proba is None:
        return found
    roc, pr = [], []
    targets = [1] if s.task == BINARY else range(k)
    for c in targets:
        points = curve(s.y == c, s.proba[:, c])
        name = _label(s.classes[c])
        roc += _lines(name, points["fpr"], points["tpr"])
        pr += _lines(name, points["recall"], points["precision"])
    auc = f" (AUC = {metrics['roc_auc']:.3f})" if "roc_auc" in metrics else ""
    found.append(
        Chart("roc_curve_plot", f"ROC curve{auc}", "lines", roc, "false positive rate", "true positive rate", True)
    )
    ap = f" (AP = {metrics['precision_recall_auc']:.3f})" if "precision_recall_auc" in metrics else ""
    found.append(
        Chart("precision_recall_curve_plot", f"Precision-recall curve{ap}", "lines", pr, "recall", "precision")
    )
    if s.task == BINARY:
        found += [_calibration(s), _lift(s)]
    return found


def _calibration(s: Scored) -> Chart:
    assert s.proba is not None
    score, positive = s.proba[:, 1], (s.y == 1).astype(float)
    bins = np.clip((score * CALIBRATION_BINS).astype(int), 0, CALIBRATION_BINS - 1)
    rows = []
    for b in range(CALIBRATION_BINS):
        inside = bins == b
        if inside.any():
            rows.append(
                {
                    "series": _label(s.classes[1]),
                    "x": float(score[inside].mean()),
                    "y": float(positive[inside].mean()),
                    "rows": int(inside.sum()),
                }
            )
    return Chart(
        "calibration_curve_plot", "Calibration", "lines", rows, "mean predicted probability", "fraction positive", True
    )


def _lift(s: Scored) -> Chart:
    assert s.proba is not None
    order = np.argsort(-s.proba[:, 1], kind="mergesort")
    positive = (s.y[order] == 1).astype(float)
    share = np.arange(1, s.rows + 1) / s.rows
    rate = max(positive.mean(), 1e-12)
    lift = np.cumsum(positive) / np.arange(1, s.rows + 1) / rate
    return Chart("lift_curve_plot", "Lift", "lines", _lines(_label(s.classes[1]), share, lift), "share of rows", "lift")


def importance_chart(importance: list[dict[str, Any]]) -> Chart:
    rows = [
        {"feature": f["feature"], "value": f["mean"], "low": f["low"], "high": f["high"]}
        for f in importance[:TOP_FEATURES]
    ]
    return Chart("permutation_importance_plot", "Permutation importance", "bars", rows, "fall of the primary metric")


def shap_charts(shap: Any) -> list[Chart]:
    """Mean |SHAP| per feature, and a beeswarm of the top features (``shap``: ``explain.Shap``)."""
    top = shap.summary["features"][:TOP_FEATURES]
    bars = [{"feature": f["feature"], "value": f["mean_abs"]} for f in top]
    rng = np.random.default_rng(0)
    strips = []
    for f in top[:10]:
        j = shap.names.index(f["feature"])
        column = shap.inputs[:, j]
        span = float(np.ptp(column)) or 1.0
        for i in range(len(column)):
            strips.append(
                {
                    "feature": f["feature"],
                    "value": float(shap.values[i, j]),
                    "level": float((column[i] - column.min()) / span),
                    "jitter": float(rng.uniform(-6, 6)),
                }
            )
    return [
        Chart(
            "shap_feature_importance_plot",
            f"Mean |SHAP value| ({shap.summary['explainer']})",
            "bars",
            bars,
            "mean |SHAP|",
        ),
        Chart("shap_beeswarm_plot", "SHAP values (colour: the input's value)", "strips", strips, "SHAP value"),
    ]
