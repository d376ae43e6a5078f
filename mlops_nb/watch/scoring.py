"""The ``performance`` of a monitored classifier: its scores on the current data, against its stored held-out
scores (``reference_scores.parquet``, logged with ``mnb.log_model(..., reference_y=...)``).

The model is fetched and loaded by ``mlops_nb.loading.model.TrustedModels`` (skops, only inert or
default-trusted types; once per command), scored chunk by chunk on the current data (``predict_proba``, as
the drift pass reads it), and
:func:`mlops_nb.monitoring.performance.performance` estimates accuracy, F1 and ROC AUC without labels and,
with ``labels`` (a column of the data), gives the realised figures beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring import performance as perf

if TYPE_CHECKING:
    from mlops_nb.loading.model import TrustedModels


class Scorer:
    """Scores Arrow chunks as they are read (``predict_proba``), keeping the labels of ``labels`` beside."""

    def __init__(self, classifier: Any, features: list[str], labels: str | None) -> None:
        self.classifier = classifier
        self.features = features
        self.labels = labels
        self.scores: list[Any] = []
        self.truth: list[Any] = []

    def add(self, chunk: Any) -> None:
        """Score one chunk.

        Raises:
            UsageError: the chunk lacks an input column of the model, or the labels column.
        """
        import numpy as np

        names = set(chunk.schema.names)
        missing = [f for f in self.features if f not in names]
        if missing:
            raise UsageError(f"The data lacks the model's input column {missing[0]!r}: performance needs every one.")
        if self.labels is not None and self.labels not in names:
            raise UsageError(
                f"--labels {self.labels}: the data has no such column (columns: {', '.join(sorted(names))})."
            )
        frame = chunk.select(self.features).to_pandas()
        self.scores.append(np.asarray(self.classifier.predict_proba(frame), dtype=float))
        if self.labels is not None:
            self.truth.append(chunk.column(self.labels).to_numpy(zero_copy_only=False))

    def result(self) -> tuple[Any, Any]:
        """(the scores of every row, its labels or None).

        Raises:
            UsageError: no row was scored.
        """
        import numpy as np

        if not self.scores:
            raise UsageError("No current rows to score.")
        return np.concatenate(self.scores), np.concatenate(self.truth) if self.labels is not None else None


@dataclass
class Scoring:
    """A classifier's label-free estimate under way: the calibration from its held-out scores, and the scorer
    the current chunks go through, as the drift pass reads them. A chunk it cannot score stops the scoring,
    not the pass: :meth:`performance` raises that problem."""

    calibration: Any
    scorer: Scorer
    problem: UsageError | None = None

    def add(self, chunk: Any) -> None:
        """Score one chunk, unless a problem stopped the scoring (then nothing more is kept)."""
        if self.problem is not None:
            return
        try:
            self.scorer.add(chunk)
        except UsageError as e:
            self.problem = e
            self.scorer.scores.clear()
            self.scorer.truth.clear()

    def performance(self) -> perf.Performance:
        """Estimated (and with labels, realised) performance over the chunks scored.

        Raises:
            UsageError: a chunk could not be scored, or no row was.
        """
        if self.problem is not None:
            raise self.problem
        scores, truth = self.scorer.result()
        return perf.performance(self.calibration, scores, truth)


def start(model_uri: str, stored: Any, features: list[str], labels: str | None, models: TrustedModels) -> Scoring:
    """Calibrate on ``stored`` (the model's ``reference_scores.parquet`` table) and load the classifier at
    ``model_uri`` (through ``models``: loaded once per command) to score the current data's ``features``.

    Raises:
        UsageError: the stored scores or the model cannot be used (the message names the fix).
    """
    classes, ref_scores, ref_labels = perf.scores_table(stored)
    calibration = perf.calibrate(ref_scores, ref_labels, classes)
    classifier = models.get(model_uri)
    known = [str(c) for c in getattr(classifier, "classes_", [])]
    if known != classes:
        raise UsageError(
            f"{model_uri}'s classes {known} are not those of its stored scores {classes}: log the model again."
        )
    return Scoring(calibration, Scorer(classifier, features, labels))
