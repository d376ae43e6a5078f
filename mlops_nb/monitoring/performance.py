"""A classifier's performance on current data: estimated without labels (confidence-based), realised with them.

Label-free estimation follows NannyML's CBPE (confidence-based performance estimation). The model's scores
(``predict_proba``) on held-out reference data, whose labels are known, calibrate each class's score with an
isotonic regression (one-vs-rest, renormalised to sum to 1 per row). On current data, the calibrated
probability of each class is the expected value of "the label is this class", so every count a metric is
made of has an expected value:

- accuracy: the mean calibrated probability of the predicted class;
- F1 (binary: of the second class, as scikit-learn's ``pos_label`` default for 0/1; more classes: macro):
  expected true positives, false positives and false negatives per class, then F1 from them;
- ROC AUC (binary; more classes: one-vs-rest macro): the ROC curve where each row counts as a positive with
  weight p and as a negative with weight 1 - p.

The estimate holds while P(label | scores) stays what the reference saw: under covariate shift (inputs move,
the relation to the label does not) the calibrated scores stay calibrated. Under concept drift (the relation
itself changes) no label-free method can see the change: only realised performance, with labels, does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from mlops_nb.exceptions import UsageError

SCORE_PREFIX = "score_"
METRICS = ("accuracy", "f1", "roc_auc")
MIN_REFERENCE_ROWS = 100


class Performance(TypedDict):
    """The ``performance`` part of a monitoring result."""

    method: str  # "cbpe"
    rows: int
    reference_rows: int
    classes: list[str]
    reference: dict[str, float | None]  # realised on the held-out reference
    estimated: dict[str, float | None]
    realised: dict[str, float | None] | None  # with labels (--labels COLUMN), else None


@dataclass
class Calibration:
    """Per-class isotonic calibrations of a classifier's scores, fitted on held-out reference scores and labels."""

    classes: list[str]
    models: list[Any]  # sklearn IsotonicRegression, one per class
    reference: dict[str, float | None]
    rows: int

    def probabilities(self, scores: Any) -> Any:
        """Calibrated class probabilities (rows sum to 1) of an (n, classes) array of scores."""
        import numpy as np

        scores = _matrix(scores, len(self.classes), "current scores")
        calibrated = np.column_stack([m.predict(scores[:, i]) for i, m in enumerate(self.models)])
        total = calibrated.sum(axis=1, keepdims=True)
        uniform = np.full_like(calibrated, 1.0 / len(self.classes))
        return np.where(total > 0, calibrated / np.where(total > 0, total, 1.0), uniform)


def _matrix(scores: Any, classes: int, what: str) -> Any:
    import numpy as np

    array = np.asarray(scores, dtype=float)
    if array.ndim == 1 and classes == 2:  # a binary classifier's score of the positive class
        array = np.column_stack([1 - array, array])
    if array.ndim != 2 or array.shape[1] != classes:
        raise UsageError(f"The {what} have shape {array.shape}: expected one column per class ({classes}).")
    if not np.isfinite(array).all():
        raise UsageError(f"The {what} hold NaN or infinite values: give the model's predict_proba output.")
    return array


def _labels(labels: Any, classes: list[str], what: str) -> Any:
    """Label indices into ``classes`` (labels compared as text, so 1 matches class "1")."""
    import numpy as np

    index = {c: i for i, c in enumerate(classes)}
    texts = [None if v is None or v != v else str(v) for v in np.asarray(labels, dtype=object).tolist()]
    unknown = sorted({t for t in texts if t not in index}, key=str)
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        raise UsageError(
            f"The {what} hold values that are not classes of the model ({shown}; classes: {', '.join(classes)}). "
            "Give the column of true labels, with no missing values."
        )
    return np.array([index[t] for t in texts], dtype=np.int64)


def classes_of(columns: Sequence[str]) -> list[str]:
    """The classes named by ``score_<class>`` columns (the layout of ``reference_scores.parquet``)."""
    return [c[len(SCORE_PREFIX) :] for c in columns if c.startswith(SCORE_PREFIX)]


def scores_table(table: Any) -> tuple[list[str], Any, Any]:
    """(classes, scores, labels) of a reference scores table (columns ``score_<class>``..., ``label``)."""
    import numpy as np

    from mlops_nb.monitoring import columns as cols

    table = cols.to_arrow_table(table)
    classes = classes_of(table.column_names)
    if len(classes) < 2 or "label" not in table.column_names:
        raise UsageError(
            "The reference scores need a score_<class> column per class and a label column: log the model with "
            "mnb.log_model(model, name, reference_X=..., reference_y=...) on held-out data."
        )
    scores = np.column_stack([table.column(SCORE_PREFIX + c).to_numpy(zero_copy_only=False) for c in classes])
    return classes, scores, table.column("label").to_numpy(zero_copy_only=False)


def calibrate(scores: Any, labels: Any, classes: Sequence[str]) -> Calibration:
    """Fit the per-class isotonic calibrations on held-out reference ``scores`` (n, classes) and ``labels``.

    Raises:
        UsageError: too few rows, a class never seen, labels that are no class, or scores of the wrong shape.
    """
    from sklearn.isotonic import IsotonicRegression

    classes = [str(c) for c in classes]
    scores = _matrix(scores, len(classes), "reference scores")
    y = _labels(labels, classes, "reference labels")
    if len(y) < MIN_REFERENCE_ROWS:
        raise UsageError(
            f"Only {len(y)} reference rows with scores and labels: label-free estimation needs at least "
            f"{MIN_REFERENCE_ROWS}. Log the model with more held-out data."
        )
    missing = [c for i, c in enumerate(classes) if not (y == i).any()]
    if missing:
        raise UsageError(f"The reference labels never show class {missing[0]!r}: give held-out data with every class.")
    models = [
        IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores[:, i], (y == i).astype(float))
        for i in range(len(classes))
    ]
    reference = _realised(y, scores)
    return Calibration(classes, models, reference, len(y))


def _predicted(scores: Any) -> Any:
    return scores.argmax(axis=1)


def realised(labels: Any, scores: Any, classes: Sequence[str]) -> dict[str, float | None]:
    """Accuracy, F1 and ROC AUC of ``scores`` against the true ``labels`` (class values, compared as text)."""
    classes = [str(c) for c in classes]
    return _realised(_labels(labels, classes, "labels"), _matrix(scores, len(classes), "scores"))


def _realised(y: Any, scores: Any) -> dict[str, float | None]:
    import numpy as np
    from sklearn import metrics

    n = scores.shape[1]
    predicted = _predicted(scores)
    f1 = metrics.f1_score(y, predicted, average="binary" if n == 2 else "macro", labels=list(range(n)))
    if len(np.unique(y)) < 2:
        auc = None  # undefined with one class
    elif n == 2:
        auc = float(metrics.roc_auc_score(y, scores[:, 1]))
    else:
        auc = _macro_auc([(y == i).astype(float) for i in range(n)], scores)
    return {"accuracy": float((predicted == y).mean()), "f1": float(f1), "roc_auc": auc}


def _macro_auc(expected: list[Any], scores: Any) -> float | None:
    values = [_auc(e, scores[:, i]) for i, e in enumerate(expected)]
    values = [v for v in values if v is not None]
    return float(sum(values) / len(values)) if values else None


def _auc(positive: Any, score: Any) -> float | None:
    """ROC AUC where row i is a positive with weight positive[i] and a negative with weight 1 - positive[i]
    (0/1 weights: the ordinary AUC, ties counted half as scikit-learn does)."""
    import numpy as np
    from sklearn import metrics

    negative = 1.0 - positive
    if positive.sum() <= 0 or negative.sum() <= 0:
        return None
    y = np.concatenate([np.ones(len(score)), np.zeros(len(score))])
    return float(
        metrics.roc_auc_score(y, np.concatenate([score, score]), sample_weight=np.concatenate([positive, negative]))
    )


def estimate(calibration: Calibration, scores: Any) -> dict[str, float | None]:
    """Accuracy, F1 and ROC AUC expected on current data from its ``scores`` alone (no labels)."""
    import numpy as np

    scores = _matrix(scores, len(calibration.classes), "current scores")
    p = calibration.probabilities(scores)
    predicted = _predicted(scores)
    rows = np.arange(len(p))
    accuracy = float(p[rows, predicted].mean()) if len(p) else None
    f1s = []
    for i in range(len(calibration.classes)):
        chosen = predicted == i
        tp = p[chosen, i].sum()
        fp = (1 - p[chosen, i]).sum()
        fn = p[~chosen, i].sum()
        f1s.append(float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn > 0 else 0.0)
    f1 = f1s[1] if len(f1s) == 2 else float(sum(f1s) / len(f1s))
    if len(calibration.classes) == 2:
        auc = _auc(p[:, 1], scores[:, 1])
    else:
        auc = _macro_auc([p[:, i] for i in range(len(calibration.classes))], scores)
    return {"accuracy": accuracy, "f1": f1, "roc_auc": auc}


def performance(calibration: Calibration, scores: Any, labels: Any | None = None) -> Performance:
    """The ``performance`` result: estimated from ``scores``, realised beside it when ``labels`` are given."""
    scores = _matrix(scores, len(calibration.classes), "current scores")
    if not len(scores):
        raise UsageError("No current rows to estimate performance on.")
    if labels is not None and len(labels) != len(scores):
        raise UsageError(f"{len(labels)} labels for {len(scores)} rows of scores: give one label per row.")
    return {
        "method": "cbpe",
        "rows": len(scores),
        "reference_rows": calibration.rows,
        "classes": list(calibration.classes),
        "reference": calibration.reference,
        "estimated": estimate(calibration, scores),
        "realised": None if labels is None else realised(labels, scores, calibration.classes),
    }
