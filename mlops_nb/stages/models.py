"""``mnb.log_model``: a scikit-learn model under the current stage, with its signature and the reference
profile of its training data."""

from __future__ import annotations

from typing import Any

from mlops_nb.exceptions import InvalidRecordError
from mlops_nb.monitoring.profile import profile
from mlops_nb.tracking.runs import current_run


def log_model(model: Any, name: str = "model", input_example: Any = None, reference: Any = None) -> None:
    """Log a scikit-learn model (estimator or pipeline) under the current stage, without waiting for MLflow.

    The model is pickled into the journal at once (later changes to it are not recorded) and saved into
    MLflow by the background sender: ``runs:/<stage run>/<name>``, with its signature inferred from
    ``input_example``, pinned requirements, and ``reference_profile.json`` beside it.

    Args:
        model: a fitted scikit-learn estimator or pipeline (anything with ``predict``).
        name: the artifact path of the model in the run.
        input_example: a few rows of model input (a DataFrame or array); gives the signature.
        reference: the training frame to profile for validation and drift (default: ``input_example``).
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
    current_run().log_model(model, name, input_example, profile(data) if data is not None else None)
