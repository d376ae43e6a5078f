"""Explanations: permutation importance (scikit-learn only) and SHAP values (the ``explain`` extra).

Permutation importance: each column of X shuffled ``REPEATS`` times, every shuffled copy predicted in one call
(one ``predict`` on the stacked copies, not one per shuffle), and the fall of the primary metric
(``metrics.PRIMARY``) from its value on the intact rows, as mean, standard deviation and t interval over
the repeats. Up to ``MAX_ROWS`` rows take part (a seeded sample above).

SHAP: a model-specific explainer where one fits, on the model's final step (a pipeline's last estimator, on
the rows its earlier steps transform, under their ``get_feature_names_out`` names): ``LinearExplainer`` for
linear models, ``TreeExplainer`` for trees and tree ensembles. Otherwise permutation sampling on the whole
model (the estimator of shap's ``PermutationExplainer``, computed here in one ``predict``: shap's own
compiles its masker with numba, which took 30-60 s per process on this machine), on ``PERMUTATION_ROWS``
rows against ``BACKGROUND_ROWS`` background rows. ``shap`` is
imported only here, lazily; without it the part is skipped with the pip command that installs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np

from mlops_nb.evaluation.metrics import LOWER_IS_BETTER, PRIMARY, Scored, Skipped, encode, model_input, primary
from mlops_nb.evaluation.resampling import LEVEL, SEED

REPEATS = 5
MAX_ROWS = 2000
SHAP_ROWS = 2000  # rows explained by a model-specific explainer
PERMUTATION_ROWS = 50
BACKGROUND_ROWS = 20
PERMUTATIONS = 5  # random column orders per explained row
BEESWARM_ROWS = 200
INSTALL = "pip install 'mlops-nb[explain]'"


class Importance(TypedDict):
    feature: str
    mean: float
    std: float
    low: float
    high: float


class ShapFeature(TypedDict):
    feature: str
    mean_abs: float


class ShapSummary(TypedDict):
    explainer: str
    rows: int
    features: list[ShapFeature]


@dataclass
class Shap:
    """SHAP values of a model: the summary (JSON) and, for the plots, the values and inputs of some rows."""

    summary: ShapSummary
    values: np.ndarray = field(repr=False)  # rows x features (a classifier's positive or mean-over-classes)
    inputs: np.ndarray = field(repr=False)  # the same rows' (transformed) inputs, for the colour of a beeswarm
    names: list[str] = field(default_factory=list)


def _sample(rows: int, budget: int, seed: int = SEED) -> np.ndarray:
    if rows <= budget:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, budget, replace=False))


def _t_half(std: float, repeats: int) -> float:
    from scipy import stats

    return float(stats.t.ppf((1 + LEVEL) / 2, repeats - 1)) * std / np.sqrt(repeats)


def permutation_importance(model: Any, frame: Any, s: Scored, repeats: int = REPEATS) -> list[Importance]:
    """How much the primary metric falls when each column of ``frame`` is shuffled, most important first.

    ``frame``: the rows ``s`` scored (a DataFrame with the model's input columns).
    """
    import pandas as pd

    rows = _sample(len(frame), MAX_ROWS)
    base = frame.iloc[rows].reset_index(drop=True)
    n, copies = len(base), len(base.columns) * repeats
    truth = Scored(s.task, s.y[rows], s.pred[rows], None, s.classes)
    name = PRIMARY[s.task]
    intact = float(primary(truth, np.ones(n))[0])
    # the copies stacked column by column (copy k shuffles column k // repeats): one predict for them all
    rng = np.random.default_rng(SEED)
    stacked = {}
    for c, column in enumerate(base.columns):
        values = base[column].to_numpy()
        tiled = np.tile(values, copies)
        for k in range(c * repeats, (c + 1) * repeats):
            tiled[k * n : (k + 1) * n] = values[rng.permutation(n)]
        stacked[column] = tiled
    predicted = model.predict(model_input(model, pd.DataFrame(stacked).astype(base.dtypes.to_dict())))
    if s.task == "regression":
        blocks = np.asarray(predicted, dtype=float).reshape(copies, n)
    else:
        blocks = encode(np.asarray(model.classes_), np.asarray(predicted))[0].reshape(copies, n)
    found: list[Importance] = []
    sign = -1.0 if name in LOWER_IS_BETTER else 1.0
    for i, column in enumerate(base.columns):
        drops = []
        for block in blocks[i * repeats : (i + 1) * repeats]:
            shuffled = Scored(s.task, truth.y, block, None, s.classes)
            drops.append(sign * (intact - float(primary(shuffled, np.ones(n))[0])))
        mean, std = float(np.mean(drops)), float(np.std(drops, ddof=1)) if repeats > 1 else 0.0
        half = _t_half(std, repeats) if repeats > 1 else 0.0
        found.append({"feature": str(column), "mean": mean, "std": std, "low": mean - half, "high": mean + half})
    return sorted(found, key=lambda f: -f["mean"])


def _final_step(model: Any, frame: Any) -> tuple[Any, Any, list[str]]:
    """(the estimator to explain, its inputs, their names): a pipeline's last step on the transformed rows."""
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline) and len(model.steps) > 1:
        head, last = model[:-1], model[-1]
        inputs = head.transform(model_input(model, frame))
        try:
            names = [str(n) for n in head.get_feature_names_out()]
        except (AttributeError, ValueError, TypeError):  # a step without feature names
            names = [f"x{i}" for i in range(inputs.shape[1])]
        return last, inputs, names
    return model, frame, [str(c) for c in frame.columns]


def _kind(estimator: Any) -> str | None:
    module = type(estimator).__module__
    if module.startswith("sklearn.linear_model") and hasattr(estimator, "coef_"):
        return "LinearExplainer"
    if module.startswith(("sklearn.tree", "sklearn.ensemble._forest", "sklearn.ensemble._gb")):
        return "TreeExplainer"
    return None


def _dense(inputs: Any) -> np.ndarray:
    if hasattr(inputs, "toarray"):
        inputs = inputs.toarray()
    return np.asarray(inputs.to_numpy() if hasattr(inputs, "to_numpy") else inputs, dtype=float)


def _one_output(values: np.ndarray, s: Scored) -> np.ndarray:
    """rows x features: a binary classifier's positive class; more classes: the mean |value| over them."""
    if values.ndim == 3:
        if s.task == "binary" and values.shape[2] == 2:
            return values[:, :, 1]
        return values[:, :, 0] if values.shape[2] == 1 else np.abs(values).mean(axis=2)
    return values


def shap_values(model: Any, frame: Any, s: Scored) -> tuple[Shap | None, list[Skipped]]:
    """SHAP values of ``model`` on the rows of ``frame``; (None, why) when shap is missing or fails."""
    try:
        import shap
    except ImportError:
        return None, [{"part": "shap", "reason": f"shap is not installed: {INSTALL}"}]
    try:
        estimator, inputs, names = _final_step(model, frame)
        kind = _kind(estimator)
        if kind is not None:
            dense = _dense(inputs)
            rows = _sample(len(dense), SHAP_ROWS)
            if kind == "LinearExplainer":
                explainer = shap.LinearExplainer(estimator, shap.maskers.Independent(dense, max_samples=100))
            else:
                explainer = shap.TreeExplainer(estimator)
            extra = {"check_additivity": False} if kind == "TreeExplainer" else {}
            values = np.asarray(explainer(dense[rows], **extra).values)
            return _summary(kind, _one_output(values, s), dense[rows], names), []
        rows = _sample(len(frame), PERMUTATION_ROWS)
        values = _permutation_shap(model, frame, s, rows)
        inputs = _dense_or_codes(frame.iloc[rows])
        return _summary("PermutationExplainer", _one_output(values, s), inputs, [str(c) for c in frame.columns]), []
    except Exception as e:  # noqa: BLE001 - any explainer failure is reported as a skipped part, never raised
        return None, [{"part": "shap", "reason": f"{type(e).__name__}: {str(e).strip()[:300]}"}]


def _outputs(model: Any, s: Scored, inputs: Any) -> np.ndarray:
    """rows x outputs: class probabilities of a classifier, the prediction of a regressor."""
    if s.proba is not None:
        return np.asarray(model.predict_proba(inputs), dtype=float)
    return np.asarray(model.predict(inputs), dtype=float).reshape(len(inputs), -1)


def _permutation_shap(model: Any, frame: Any, s: Scored, rows: np.ndarray) -> np.ndarray:
    """SHAP values by permutation sampling (the estimator of shap's PermutationExplainer), in one ``predict``.

    For each explained row, ``PERMUTATIONS`` random orders of the columns and ``BACKGROUND_ROWS`` background
    rows: starting from the background row, the columns take the explained row's values one by one in that
    order, and each column is credited with the change of the output its step makes. So the values of a row
    add up exactly to its output minus the background's mean output. Returns rows x columns (x outputs).
    """
    import pandas as pd

    rng = np.random.default_rng(SEED)
    background = _sample(len(frame), BACKGROUND_ROWS, SEED + 1)
    n_rows, n_perm, n_back, n_cols = len(rows), PERMUTATIONS, len(background), frame.shape[1]
    orders = np.array([rng.permutation(n_cols) for _ in range(n_rows * n_perm)]).reshape(n_rows, n_perm, n_cols)
    # rank[r, p, c]: the step at which column c takes the explained row's value
    rank = np.argsort(orders, axis=2)
    steps = np.arange(n_cols + 1)
    # from_row[r, p, k, c]: at step k, column c already has the explained row's value
    from_row = rank[:, :, None, :] < steps[None, None, :, None]
    shape = (n_rows, n_perm, n_back, n_cols + 1)
    row_index = np.broadcast_to(rows[:, None, None, None], shape).reshape(-1)
    back_index = np.broadcast_to(background[None, None, :, None], shape).reshape(-1)
    columns = {}
    for c, column in enumerate(frame.columns):
        mask = np.broadcast_to(from_row[:, :, None, :, c], shape).reshape(-1)
        values = frame[column].to_numpy()
        columns[column] = np.where(mask, values[row_index], values[back_index])
    stacked = pd.DataFrame(columns).astype(frame.dtypes.to_dict())
    out = _outputs(model, s, model_input(model, stacked))
    out = out.reshape(n_rows, n_perm, n_back, n_cols + 1, -1)
    change = np.diff(out, axis=3).mean(axis=2)  # rows x perms x steps x outputs
    found = np.zeros((n_rows, n_cols, out.shape[-1]))
    for r in range(n_rows):
        for p in range(n_perm):
            found[r, orders[r, p]] += change[r, p]
    found /= n_perm
    return found[:, :, 0] if found.shape[2] == 1 else found


def _dense_or_codes(frame: Any) -> np.ndarray:
    """The inputs as numbers for a beeswarm's colour: numeric columns as they are, others as category codes."""
    import pandas as pd

    return np.column_stack(
        [
            frame[c].to_numpy(dtype=float) if frame[c].dtype.kind in "iufb" else pd.factorize(frame[c])[0]
            for c in frame.columns
        ]
    ).astype(float)


def _summary(kind: str, values: np.ndarray, inputs: np.ndarray, names: list[str]) -> Shap:
    mean_abs = np.abs(values).mean(axis=0)
    order = np.argsort(-mean_abs, kind="mergesort")
    features: list[ShapFeature] = [{"feature": names[i], "mean_abs": float(mean_abs[i])} for i in order]
    keep = _sample(len(values), BEESWARM_ROWS)
    return Shap({"explainer": kind, "rows": len(values), "features": features}, values[keep], inputs[keep], names)
