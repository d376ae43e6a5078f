"""``mnb.log_model``: a scikit-learn model under the current stage, with its signature and, for monitoring,
the reference of its training data (profile, sample rows, labelled scores) beside it."""

from __future__ import annotations

from typing import Any

from mlops_nb.exceptions import InvalidRecordError, UsageError
from mlops_nb.monitoring.profile import profile
from mlops_nb.monitoring.stored import reference_sample, scores_table
from mlops_nb.tracking.models import SAMPLE_FILE, SCORES_FILE
from mlops_nb.tracking.runs import current_run


def log_model(
    model: Any, name: str = "model", input_example: Any = None, reference: Any = None, reference_y: Any = None
) -> None:
    """Log a scikit-learn model (estimator or pipeline) under the current stage, without waiting for MLflow.

    The model is pickled into the journal at once (later changes to it are not recorded) and saved into
    MLflow by the background sender: ``runs:/<stage run>/<name>``, with its signature inferred from
    ``input_example``, pinned requirements, and beside it ``reference_profile.json`` and
    ``reference_sample.parquet`` (the reference rows, up to 100,000, with the model's predictions).

    Args:
        model: a fitted scikit-learn estimator or pipeline (anything with ``predict``).
        name: the artifact path of the model in the run.
        input_example: a few rows of model input (a DataFrame or array); gives the signature.
        reference: the training frame to profile for validation and drift (default: ``input_example``).
        reference_y: labels of ``reference`` (held-out rows): the classifier's ``predict_proba`` scores on
            ``reference`` are stored with them as ``reference_scores.parquet``.
    """
    if not callable(getattr(model, "predict", None)):
        raise InvalidRecordError(
            f"mnb.log_model takes a fitted scikit-learn estimator or pipeline (with .predict), got "
            f"{type(model).__name__}."
        )
    data = reference if reference is not None else input_example
    if input_example is not None:
        try:
            model.predict(input_example)
        except Exception as e:
            raise InvalidRecordError(
                f"model.predict(input_example) fails, so no signature can be inferred: {e!r}"
            ) from e
    tables = {}
    if data is not None:
        tables[SAMPLE_FILE] = reference_sample(data, model)
    if reference_y is not None:
        if reference is None:
            raise InvalidRecordError("reference_y= labels the rows of reference=: give reference= too.")
        try:
            tables[SCORES_FILE] = scores_table(model, reference, reference_y)
        except UsageError as e:
            raise InvalidRecordError(str(e)) from e
    current_run().log_model(model, name, input_example, profile(data) if data is not None else None, tables)
