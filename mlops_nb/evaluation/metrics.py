"""A model's metrics on labelled rows, under MLflow's default evaluator's names, equal to scikit-learn's.

The metrics are computed here with NumPy from the model's predictions once, for many weightings of the rows
at once: a weight matrix ``W`` of shape (weightings, rows) gives one value per weighting. One row of ones is
the plain evaluation; 0/1 rows are slices (``slices.py``); bootstrap counts are resamples (``resampling.py``).
So a thousand resamples or segments cost one matrix product per metric, not a thousand scikit-learn calls.
``tests/unit/test_evaluation_metrics.py`` checks every metric against scikit-learn's to 1e-12.

Names (MLflow's ``default`` evaluator): classifiers ``example_count``, ``accuracy_score``,
``precision_score``, ``recall_score``, ``f1_score`` (binary: of the second class, ``classes_[1]``; more
classes: weighted by support), ``log_loss``, ``roc_auc`` (more classes: one-vs-rest, weighted by support),
``precision_recall_auc`` (binary: average precision), and for binary ``true_negatives``,
``false_positives``, ``false_negatives``, ``true_positives``; regressors ``example_count``,
``mean_absolute_error``, ``mean_squared_error``, ``root_mean_squared_error``, ``r2_score``, ``max_error``,
``mean_absolute_percentage_error``, ``sum_on_target``, ``mean_on_target``.

A metric undefined on the rows (precision when nothing is predicted positive, ROC AUC of one class, R² of a
constant target) is NaN here; :func:`evaluate` leaves it out and names it in ``skipped`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

from mlops_nb.exceptions import UsageError

BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"
LOWER_IS_BETTER = frozenset(
    {
        "log_loss",
        "mean_absolute_error",
        "mean_squared_error",
        "root_mean_squared_error",
        "max_error",
        "mean_absolute_percentage_error",
        "false_positives",
        "false_negatives",
    }
)
COUNTS = frozenset(
    {"example_count", "true_negatives", "false_positives", "false_negatives", "true_positives", "sum_on_target"}
)
BOUNDED = frozenset(
    {"accuracy_score", "precision_score", "recall_score", "f1_score", "roc_auc", "precision_recall_auc"}
)  # within [0, 1]
# The metric a slice, a worst segment or a permutation is judged by, per task (scikit-learn's score()).
PRIMARY = {BINARY: "accuracy_score", MULTICLASS: "accuracy_score", REGRESSION: "r2_score"}


class Skipped(TypedDict):
    """A part of the evaluation that was not computed (or not fully), and why."""

    part: str
    reason: str


@dataclass(frozen=True)
class Scored:
    """A model's predictions on labelled rows, encoded for the metrics.

    Attributes:
        task: ``binary``, ``multiclass`` or ``regression``.
        y: classifiers: the index of each row's label in ``classes``; regressors: the target as floats.
        pred: the predictions, encoded as ``y``.
        proba: classifiers' ``predict_proba`` (rows x classes), None without it.
        classes: the model's classes (JSON values), empty for regressors.
        kept: which of the given rows were scored (rows with a missing label or input are left out), None: all.
    """

    task: str
    y: np.ndarray
    pred: np.ndarray
    proba: np.ndarray | None
    classes: tuple[Any, ...]
    kept: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return len(self.y)

    @property
    def positive(self) -> Any:
        """The positive class of a binary classifier (``classes_[1]``, scikit-learn's ``pos_label`` for 0/1)."""
        return self.classes[1] if self.task == BINARY else None


def jsonable(value: Any) -> Any:
    """A label as JSON takes it (numpy scalars become Python's)."""
    return value.item() if hasattr(value, "item") else value


def task_of(model: Any) -> str:
    """``binary``, ``multiclass`` or ``regression`` for a fitted scikit-learn estimator or pipeline.

    Raises:
        UsageError: neither a classifier nor a regressor (a clusterer, a transformer, multi-output).
    """
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(model):
        classes = getattr(model, "classes_", None)
        if classes is None or np.ndim(classes) != 1:
            raise UsageError(
                f"{type(model).__name__} is a classifier without one set of classes_ (unfitted, or multi-output): "
                "evaluate a fitted single-output classifier."
            )
        return BINARY if len(classes) == 2 else MULTICLASS
    if is_regressor(model):
        return REGRESSION
    raise UsageError(
        f"{type(model).__name__} is neither a classifier nor a regressor: mnb.evaluate takes fitted scikit-learn "
        "classifiers and regressors (pipelines ending in one too)."
    )


def score(model: Any, X: Any, y: Any) -> tuple[Scored, list[Skipped]]:
    """Predict ``X`` with ``model`` and encode the labels ``y``.

    Rows whose label is missing are left out, and so are rows with a missing input when the model cannot
    predict them; each is named in the returned ``skipped``.

    Raises:
        UsageError: X and y of different lengths, labels the classifier does not know, a model that fails.
    """
    task = task_of(model)
    labels = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    if labels.ndim != 1:
        raise UsageError(f"y has shape {labels.shape}: give one label per row (a Series or 1-d array).")
    if len(labels) != _length(X):
        raise UsageError(f"X has {_length(X)} rows but y has {len(labels)}: give one label per row of X.")
    if len(labels) == 0:
        raise UsageError("X and y have no rows: evaluate on at least one labelled row.")
    skipped: list[Skipped] = []
    keep = ~_missing(labels)
    if not keep.all():
        skipped.append({"part": "rows", "reason": f"{int((~keep).sum())} rows have no label (missing y): left out"})
    kept = None if keep.all() else keep
    rows = X if kept is None else _take(X, keep)
    try:
        pred = model.predict(rows)
    except ValueError as e:
        inputs = _missing_inputs(rows)
        if inputs is None or not inputs.any():
            raise UsageError(f"{type(model).__name__}.predict fails on X: {e}") from e
        within = ~inputs
        skipped.append(
            {
                "part": "rows",
                "reason": f"{int(inputs.sum())} rows have missing inputs, which {type(model).__name__} cannot take "
                f"({_first_line(e)}): left out",
            }
        )
        keep = keep.copy()
        keep[np.flatnonzero(keep)[inputs]] = False
        kept = keep
        rows = _take(rows, within)
        if not within.any():
            raise UsageError("Every row of X has a missing input the model cannot take: nothing to evaluate.") from e
        pred = model.predict(rows)
    labels = labels[keep]
    if task == REGRESSION:
        try:
            truth = labels.astype(float)
        except (TypeError, ValueError) as e:
            raise UsageError(f"y of a regressor must be numbers: {_first_line(e)}") from e
        return Scored(task, truth, np.asarray(pred, dtype=float).reshape(-1), None, (), kept), skipped
    classes = np.asarray(model.classes_)
    truth, unknown = encode(classes, labels)
    if unknown.any():
        strange = sorted({str(v) for v in labels[unknown]})[:10]
        raise UsageError(
            f"y has labels the model never saw ({', '.join(strange)}); its classes are "
            f"{', '.join(str(c) for c in classes)}. Evaluate on rows labelled with the model's classes."
        )
    predicted, _ = encode(classes, np.asarray(pred))
    proba = None
    if callable(getattr(model, "predict_proba", None)):
        try:
            proba = np.asarray(model.predict_proba(rows), dtype=float)
        except (AttributeError, ValueError, NotImplementedError) as e:  # SVC(probability=False) raises so
            skipped.append({"part": "probabilities", "reason": f"predict_proba fails ({_first_line(e)})"})
    else:
        skipped.append(
            {
                "part": "probabilities",
                "reason": f"{type(model).__name__} has no predict_proba: no log_loss, roc_auc, "
                "precision_recall_auc, ROC, precision-recall, calibration or lift",
            }
        )
    return Scored(task, truth, predicted, proba, tuple(jsonable(c) for c in classes), kept), skipped


def frame_of(X: Any) -> Any:
    """``X`` as a DataFrame: its own columns, or ``x0``, ``x1`` ... for an array."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        return X
    values = np.asarray(X)
    if values.ndim != 2:
        raise UsageError(f"X has shape {values.shape}: give a table (a DataFrame or a 2-d array).")
    return pd.DataFrame(values, columns=[f"x{i}" for i in range(values.shape[1])])


def model_input(model: Any, frame: Any) -> Any:
    """What ``model`` was fitted on: the frame for a model that knows its feature names, else its values."""
    return frame if hasattr(model, "feature_names_in_") else frame.to_numpy()


def _length(X: Any) -> int:
    return int(X.shape[0]) if hasattr(X, "shape") else len(X)


def _take(X: Any, mask: np.ndarray) -> Any:
    return X.loc[mask] if hasattr(X, "loc") else np.asarray(X)[mask]


def _missing(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool).reshape(len(values), -1).any(axis=1)


def _missing_inputs(X: Any) -> np.ndarray | None:
    import pandas as pd

    try:
        return np.asarray(pd.DataFrame(X).isna().any(axis=1))
    except (TypeError, ValueError):
        return None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def encode(classes: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the index of each value in ``classes``, -1 where it is none of them; the mask of those)."""
    classes, values = np.asarray(classes), np.asarray(values)
    if classes.dtype.kind == values.dtype.kind and classes.dtype.kind in "biufUS":
        # predictions have the classes' own dtype: a hash lookup in C (the loop below costs ~5 us a row)
        import pandas as pd

        codes = np.asarray(pd.Index(classes).get_indexer(values), dtype=np.int64)
        return codes, codes < 0
    index = {jsonable(c): i for i, c in enumerate(classes)}
    codes = np.fromiter((index.get(jsonable(v), -1) for v in values), dtype=np.int64, count=len(values))
    return codes, codes < 0


def compute(s: Scored, W: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of ``s`` for each row of the weight matrix ``W`` (weightings x rows): name -> values.

    A value is NaN where the metric is undefined for that weighting.
    """
    W = np.asarray(W, dtype=float)
    if W.ndim == 1:
        W = W[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        if s.task == REGRESSION:
            return _regression(s, W)
        out = _labels(s, W)
        if s.proba is not None:
            out.update(_probabilities(s, W))
        return out


def primary(s: Scored, W: np.ndarray) -> np.ndarray:
    """The primary metric (``PRIMARY``) of ``s`` for each row of ``W``, without the others.

    Slices and permutation importance judge by it alone: thousands of weightings, and the ranking metrics'
    sorts would cost most of the time.
    """
    W = np.asarray(W, dtype=float)
    if W.ndim == 1:
        W = W[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        if s.task == REGRESSION:
            return _regression(s, W)[PRIMARY[REGRESSION]]
        return _accuracy(s, W, W.sum(axis=1))  # PRIMARY of both classifier tasks


def _accuracy(s: Scored, W: np.ndarray, total: np.ndarray) -> np.ndarray:
    return _ratio(W @ (s.y == s.pred).astype(float), total)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def _labels(s: Scored, W: np.ndarray) -> dict[str, np.ndarray]:
    total = W.sum(axis=1)
    out = {"example_count": total, "accuracy_score": _accuracy(s, W, total)}
    if s.task == BINARY:
        t, p = s.y == 1, s.pred == 1
        tp, fp = W @ (t & p).astype(float), W @ (~t & p).astype(float)
        fn, tn = W @ (t & ~p).astype(float), W @ (~t & ~p).astype(float)
        out.update(
            {
                "true_negatives": tn,
                "false_positives": fp,
                "false_negatives": fn,
                "true_positives": tp,
                "precision_score": _ratio(tp, tp + fp),
                "recall_score": _ratio(tp, tp + fn),
                "f1_score": _ratio(2 * tp, 2 * tp + fp + fn),
            }
        )
        return out
    k = len(s.classes)
    truth, predicted = np.eye(k)[s.y], np.eye(k)[s.pred]
    support, guessed, hits = W @ truth, W @ predicted, W @ (truth * predicted)
    # scikit-learn's zero_division: a class never predicted has precision 0 (its weight is its support)
    precision = np.where(guessed > 0, hits / np.where(guessed > 0, guessed, 1.0), 0.0)
    recall = np.where(support > 0, hits / np.where(support > 0, support, 1.0), 0.0)
    both = support + guessed
    f1 = np.where(both > 0, 2 * hits / np.where(both > 0, both, 1.0), 0.0)
    weight = support.sum(axis=1)
    out["precision_score"] = _ratio((precision * support).sum(axis=1), weight)
    out["recall_score"] = _ratio((recall * support).sum(axis=1), weight)
    out["f1_score"] = _ratio((f1 * support).sum(axis=1), weight)
    return out


def _probabilities(s: Scored, W: np.ndarray) -> dict[str, np.ndarray]:
    assert s.proba is not None
    eps = np.finfo(s.proba.dtype).eps
    true_proba = np.clip(s.proba, eps, 1 - eps)[np.arange(s.rows), s.y]
    out = {"log_loss": _ratio(W @ -np.log(true_proba), W.sum(axis=1))}
    if s.task == BINARY:
        auc, ap = binary_curve_areas(s.y == 1, s.proba[:, 1], W)
        out["roc_auc"], out["precision_recall_auc"] = auc, ap
        return out
    support = W @ np.eye(len(s.classes))[s.y]
    aucs = np.column_stack([binary_curve_areas(s.y == c, s.proba[:, c], W)[0] for c in range(len(s.classes))])
    # one-vs-rest weighted by support; undefined when a class is missing (as scikit-learn refuses then)
    present = (support > 0).all(axis=1)
    out["roc_auc"] = np.where(present, _ratio((aucs * support).sum(axis=1), support.sum(axis=1)), np.nan)
    return out


def binary_curve_areas(positive: np.ndarray, scores: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ROC AUC, average precision) of ``scores`` for the boolean ``positive`` labels, per weighting.

    As scikit-learn's ``roc_curve`` + ``auc`` and ``average_precision_score``: thresholds at the distinct
    scores, tied scores counted together.
    """
    order = np.argsort(-scores, kind="mergesort")
    ranked = scores[order]
    ends = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # the last row of each distinct score
    Wo = W[:, order]
    pos = positive[order].astype(float)
    tps = np.cumsum(Wo * pos, axis=1)[:, ends]
    fps = np.cumsum(Wo * (1 - pos), axis=1)[:, ends]
    P, N = tps[:, -1], fps[:, -1]
    zero = np.zeros((W.shape[0], 1))
    tps0, fps0 = np.hstack([zero, tps]), np.hstack([zero, fps])
    area = (np.diff(fps0, axis=1) * (tps0[:, 1:] + tps0[:, :-1]) / 2).sum(axis=1)
    auc = np.where((P > 0) & (N > 0), area / np.where((P > 0) & (N > 0), P * N, 1.0), np.nan)
    called = tps + fps
    precision = np.where(called > 0, tps / np.where(called > 0, called, 1.0), 0.0)
    recall_steps = np.diff(tps0, axis=1) / np.where(P > 0, P, 1.0)[:, None]
    ap = np.where(P > 0, (recall_steps * precision).sum(axis=1), np.nan)
    return auc, ap


def _regression(s: Scored, W: np.ndarray) -> dict[str, np.ndarray]:
    total = W.sum(axis=1)
    error = s.pred - s.y
    mse = _ratio(W @ error**2, total)
    mean = _ratio(W @ s.y, total)
    spread = (W * (s.y[None, :] - np.nan_to_num(mean)[:, None]) ** 2).sum(axis=1)
    scale = np.maximum(np.abs(s.y), np.finfo(np.float64).eps)
    return {
        "example_count": total,
        "mean_absolute_error": _ratio(W @ np.abs(error), total),
        "mean_squared_error": mse,
        "root_mean_squared_error": np.sqrt(mse),
        "sum_on_target": W @ s.y,
        "mean_on_target": mean,
        "r2_score": np.where(spread > 0, 1 - (W @ error**2) / np.where(spread > 0, spread, 1.0), np.nan),
        "max_error": np.where(total > 0, np.where(W > 0, np.abs(error)[None, :], -np.inf).max(axis=1), np.nan),
        "mean_absolute_percentage_error": _ratio(W @ (np.abs(error) / scale), total),
    }


def evaluate(s: Scored) -> tuple[dict[str, float], list[Skipped]]:
    """The metrics of every row of ``s`` (name -> value), and the metrics undefined on them, with why."""
    values = {name: float(v[0]) for name, v in compute(s, np.ones((1, s.rows))).items()}
    found = {name: v for name, v in values.items() if not np.isnan(v)}
    skipped = [{"part": f"metrics.{name}", "reason": _why_undefined(s, name)} for name in values if name not in found]
    return found, skipped  # type: ignore[return-value]


def _why_undefined(s: Scored, name: str) -> str:
    pos = s.positive
    if name == "precision_score":
        return f"no row was predicted {pos!r}, so precision is undefined"
    if name == "recall_score":
        return f"no row is labelled {pos!r}, so recall is undefined"
    if name == "f1_score":
        return f"no row is labelled or predicted {pos!r}, so F1 is undefined"
    if name in ("roc_auc", "precision_recall_auc"):
        if s.task == MULTICLASS:
            missing = [str(c) for i, c in enumerate(s.classes) if not (s.y == i).any()]
            return f"y has no row of class {', '.join(missing)}: one-vs-rest ROC AUC needs every class"
        return "y holds one class only: ranking metrics need both"
    if name == "r2_score":
        return "y is constant, so R² is undefined"
    return "undefined on these rows"
