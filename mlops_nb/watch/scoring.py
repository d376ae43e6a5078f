"""The ``performance`` of a monitored classifier: its scores on the current data, against its stored held-out
scores (``reference_scores.parquet``, logged with ``mnb.log_model(..., reference_y=...)``).

The model is fetched and loaded the way ``mlops-nb export`` loads it (skops, only inert or default-trusted
types), scored chunk by chunk on the current data (``predict_proba``), and
:func:`mlops_nb.monitoring.performance.performance` estimates accuracy, F1 and ROC AUC without labels and,
with ``labels`` (a column of the data), gives the realised figures beside them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring import performance as perf
from mlops_nb.monitoring.profile import feed


def load_classifier(model_uri: str, dst: Path) -> Any:
    """The scikit-learn model at ``model_uri`` (a pinned ``models:/NAME/VERSION`` or ``runs:/`` URI), loaded
    from its skops file with the trust ``mlops-nb export`` gives (no pickle, no type that can run code).

    Raises:
        UsageError: no sklearn flavor, a pickled model, or types nobody trusted (the message names the fix).
    """
    import skops.io

    from mlops_nb.serving.export import sklearn_flavor, trusted_model_file
    from mlops_nb.tracking import query

    folder = query.download_model(model_uri, dst)
    flavor = sklearn_flavor(query.mlmodel(folder))
    if flavor.get("serialization_format", "cloudpickle") != "skops":
        raise UsageError(
            f"{model_uri} is saved as a pickle: mlops-nb loads only skops files to score it. Log it again with "
            "mnb.log_model (skops), or leave performance out."
        )
    model_file, trusted, _ = trusted_model_file(folder, flavor, (), (), False)
    return skops.io.load(str(model_file), trusted=list(trusted))


def score(classifier: Any, chunks: Iterable[Any], features: list[str], labels: str | None) -> tuple[Any, Any]:
    """(predict_proba scores, labels or None) of every row of the Arrow ``chunks``, one chunk at a time."""
    import numpy as np

    scores: list[Any] = []
    truth: list[Any] = []

    def add(chunk: Any) -> None:
        names = set(chunk.schema.names)
        missing = [f for f in features if f not in names]
        if missing:
            raise UsageError(f"The data lacks the model's input column {missing[0]!r}: performance needs every one.")
        if labels is not None and labels not in names:
            raise UsageError(f"--labels {labels}: the data has no such column (columns: {', '.join(sorted(names))}).")
        frame = chunk.select(features).to_pandas()
        scores.append(np.asarray(classifier.predict_proba(frame), dtype=float))
        if labels is not None:
            truth.append(chunk.column(labels).to_numpy(zero_copy_only=False))

    feed(add, chunks)
    if not scores:
        raise UsageError("No current rows to score.")
    return np.concatenate(scores), np.concatenate(truth) if labels is not None else None


def performance(
    model_uri: str, stored: Any, chunks: Iterable[Any], features: list[str], labels: str | None, tmp: Path
) -> perf.Performance:
    """Estimated (and with ``labels``, realised) performance of the classifier on the current ``chunks``;
    ``stored``: the model's ``reference_scores.parquet`` table."""
    classes, ref_scores, ref_labels = perf.scores_table(stored)
    calibration = perf.calibrate(ref_scores, ref_labels, classes)
    classifier = load_classifier(model_uri, tmp / "model")
    known = [str(c) for c in getattr(classifier, "classes_", [])]
    if known != classes:
        raise UsageError(
            f"{model_uri}'s classes {known} are not those of its stored scores {classes}: log the model again."
        )
    scores, truth = score(classifier, chunks, features, labels)
    return perf.performance(calibration, scores, truth)
