"""The reference stored beside a logged model: built at training time, read back by the monitor.

Beside ``reference_profile.json`` (:mod:`mlops_nb.monitoring.profile`), a model logged with a reference
keeps:

- ``reference_sample.parquet``: the reference rows themselves, every row up to :data:`SAMPLE_ROWS`, beyond
  that a seeded uniform sample (the same rows the profile's quantiles and PSI bins were taken from), plus a
  ``prediction`` column (the model's prediction for each row) when the model could predict them. It gives the
  monitor the values KS and Wasserstein need, and the reference of prediction drift;
- ``reference_scores.parquet`` (with ``reference_y=``): for held-out rows with known labels, the model's
  ``predict_proba`` scores (``score_<class>``, one column per class, in ``classes_`` order), the ``label``
  and the ``prediction``: what label-free performance estimation calibrates on.
"""

from __future__ import annotations

from typing import Any

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring import columns as cols
from mlops_nb.monitoring.profile import SAMPLE_ROWS, Profile, Reference, reference_of
from mlops_nb.monitoring.sample import SEED

PREDICTION = "prediction"  # the model's output, as the serving package's prediction log names it
LABEL = "label"
SCORE_PREFIX = "score_"


def reference_sample(frame: Any, model: Any = None, cap: int = SAMPLE_ROWS, seed: int = SEED) -> Any:
    """The rows of ``frame`` (a DataFrame, array, Arrow table...) as an Arrow table: all of them up to ``cap``,
    else the ``cap`` rows with the smallest seeded keys, in row order (the rows
    :class:`~mlops_nb.monitoring.sample.RowSample` keeps of the same data); with ``model``, plus a
    ``prediction`` column, left out when the model cannot predict these rows (a reference holding more columns
    than the model takes, several outputs per row)."""
    import numpy as np
    import pyarrow as pa

    rows = frame if hasattr(frame, "iloc") or isinstance(frame, (np.ndarray, pa.Table)) else cols.to_arrow_table(frame)
    if len(rows) > cap:
        keys = np.random.default_rng(seed).random(len(rows))
        index = np.sort(np.argpartition(keys, cap - 1)[:cap])
        rows = (
            rows.iloc[index]
            if hasattr(rows, "iloc")
            else rows[index]
            if isinstance(rows, np.ndarray)
            else rows.take(index)
        )
    table = cols.to_arrow_table(rows)
    if model is None or PREDICTION in table.column_names:
        return table
    try:
        predicted = np.asarray(model.predict(rows))
    except Exception:  # noqa: BLE001 - any failure means: no prediction reference, the rest still stands
        return table
    if predicted.ndim != 1 or len(predicted) != table.num_rows:
        return table
    labels = pa.array(predicted.tolist())
    if getattr(model, "classes_", None) is not None:  # a classifier predicts classes: categorical, not numbers
        labels = labels.dictionary_encode()
    return table.append_column(PREDICTION, labels)


def scores_table(model: Any, frame: Any, labels: Any) -> Any:
    """``score_<class>`` (``predict_proba``), ``label`` and ``prediction`` of the labelled rows ``frame``.

    Raises:
        UsageError: the model has no ``predict_proba`` or ``classes_``, or labels and rows differ in number.
    """
    import numpy as np
    import pyarrow as pa

    classes = getattr(model, "classes_", None)
    if not callable(getattr(model, "predict_proba", None)) or classes is None:
        raise UsageError(
            f"reference_y= needs a classifier with predict_proba and classes_; {type(model).__name__} has not: "
            "leave reference_y out."
        )
    labels = np.asarray(labels)
    data = frame.to_pandas() if hasattr(frame, "to_pandas") else frame
    if labels.ndim != 1 or len(labels) != len(data):
        raise UsageError(
            f"reference_y= has {len(labels)} labels for {len(data)} rows of reference=: give one label per row."
        )
    proba = np.asarray(model.predict_proba(data), dtype=float)
    columns = {f"{SCORE_PREFIX}{c}": pa.array(proba[:, i]) for i, c in enumerate(classes)}
    columns[LABEL] = pa.array(labels.tolist())
    columns[PREDICTION] = pa.array(np.asarray(model.predict(data)).tolist())
    return pa.table(columns)


def model_reference(profile: Profile, sample: Any | None, with_prediction: bool = False) -> Reference:
    """The reference to monitor a model with: its stored profile, and from its stored sample (an Arrow table,
    or None for models logged before samples were stored) the sorted values KS and Wasserstein need.

    ``with_prediction`` adds the sample's ``prediction`` column as a monitored column (prediction drift).
    """
    import numpy as np

    reference = Reference(profile, {})
    if sample is None:
        return reference
    for name, spec in profile["columns"].items():
        if spec.get("kind") == cols.NUMERIC and name in sample.column_names:
            values = cols.numbers(sample.column(name))
            cols.drop_infinite(values)
            values = values[~np.isnan(values)]
            values.sort()
            reference.samples[name] = values
    if with_prediction and PREDICTION in sample.column_names and PREDICTION not in profile["columns"]:
        predicted = reference_of(sample.select([PREDICTION]), max(sample.num_rows, 1))
        columns = {**profile["columns"], PREDICTION: predicted.profile["columns"][PREDICTION]}
        reference = Reference({**profile, "columns": columns}, {**reference.samples, **predicted.samples})
    return reference
