"""Realised performance when the data comes with its true labels (``--labels COL``).

The model's predictions are the data's ``prediction`` column when it has one (a prediction log joined with
the labels that came later), else the model's own predictions of the rows, chunk by chunk. Classification
(labels of a binary or multiclass target, compared as text, so ``1`` and ``"1"`` agree) gives ``accuracy``
and ``f1_macro``; regression ``mae``, ``rmse`` and ``r2``. The same metrics on the stored
``reference_scores.parquet`` (labels and predictions of held-out rows at training) are the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring.stored import LABEL, PREDICTION


class Labelled:
    """Gathers labels and predictions chunk by chunk.

    Args:
        label: the label column.
        predict: the model's predictions of a chunk's rows (an Arrow table without the label), for data without
            a ``prediction`` column; None when there is no model to ask.
    """

    def __init__(self, label: str, predict: Callable[[Any], Any] | None) -> None:
        self.label = label
        self._predict = predict
        self._labels: list[Any] = []
        self._predictions: list[Any] = []

    def fresh(self) -> Labelled:
        """An empty gatherer of the same labels, predicting the same way (one per window)."""
        return Labelled(self.label, self._predict)

    def add(self, chunk: Any) -> None:
        import numpy as np

        names = chunk.schema.names
        if self.label not in names:
            raise UsageError(f"--labels {self.label}: the data has no such column. Columns: {', '.join(names[:20])}.")
        labels = chunk.column(self.label).to_pylist()
        if PREDICTION in names and self.label != PREDICTION:
            predictions = chunk.column(PREDICTION).to_pylist()
        elif self._predict is not None:
            predictions = list(np.asarray(self._predict(chunk.select([n for n in names if n != self.label]))))
        else:
            raise UsageError(
                f"--labels {self.label} needs the model's predictions: a 'prediction' column in the data, or a "
                "MODEL_URI to predict the rows with."
            )
        for label, prediction in zip(labels, predictions, strict=True):
            if label is not None and label == label:  # NaN: not labelled yet
                self._labels.append(label)
                self._predictions.append(prediction)

    def performance(self, reference: Any | None = None) -> dict[str, Any]:
        """``{"source", "label", "rows", "task", "metrics", "reference"}``; ``reference`` is the stored scores
        table (``label`` and ``prediction`` columns), or None."""
        task = _task(self._labels)
        metrics = _metrics(task, self._labels, self._predictions) if self._labels else {}
        at_training = None
        if reference is not None and {LABEL, PREDICTION} <= set(reference.column_names):
            labels = reference.column(LABEL).to_pylist()
            at_training = _metrics(task, labels, reference.column(PREDICTION).to_pylist()) if labels else None
        return {
            "source": "labels",
            "label": self.label,
            "rows": len(self._labels),
            "task": task,
            "metrics": metrics,
            "reference": at_training,
        }


def _task(labels: list[Any]) -> str:
    from sklearn.utils.multiclass import type_of_target

    if not labels:
        return "classification"
    if any(isinstance(v, (str, bool)) for v in labels[:1000]):
        return "classification"
    return "classification" if type_of_target(labels) in ("binary", "multiclass") else "regression"


def _metrics(task: str, labels: list[Any], predictions: list[Any]) -> dict[str, float | None]:
    import numpy as np
    from sklearn import metrics

    if task == "classification":
        y, p = [str(v) for v in labels], [str(v) for v in predictions]
        return {
            "accuracy": float(metrics.accuracy_score(y, p)),
            "f1_macro": float(metrics.f1_score(y, p, average="macro")),
        }
    y_true, y_pred = np.asarray(labels, dtype=float), np.asarray(predictions, dtype=float)
    return {
        "mae": float(metrics.mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(metrics.mean_squared_error(y_true, y_pred))),
        "r2": float(metrics.r2_score(y_true, y_pred)) if len(y_true) > 1 else None,
    }
