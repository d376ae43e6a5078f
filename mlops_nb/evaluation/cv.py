"""Cross-validation: clones of the model refitted on K folds of the data, every metric as mean and interval.

Classifiers get stratified folds (plain ones when a class has fewer rows than folds), regressors shuffled
folds, both seeded. The interval is Student's t interval of the fold values' mean at ``LEVEL``: with K folds
it is ``mean ± t(K-1) · sd / √K``.
"""

from __future__ import annotations

from typing import Any, TypedDict

import numpy as np

from mlops_nb.evaluation.metrics import BOUNDED, COUNTS, REGRESSION, Skipped, evaluate, score, task_of
from mlops_nb.evaluation.resampling import LEVEL, SEED
from mlops_nb.exceptions import UsageError


class FoldSummary(TypedDict):
    mean: float
    low: float
    high: float
    std: float


def splitter(model: Any, y: Any, cv: Any) -> Any:
    """The scikit-learn splitter for ``cv`` (a number of folds, or a splitter, used as given).

    Raises:
        UsageError: a number of folds below 2 or above the rows.
    """
    if not isinstance(cv, int) or isinstance(cv, bool):
        if callable(getattr(cv, "split", None)):
            return cv
        raise UsageError(f"cv={cv!r}: give the number of folds (cv=5) or a scikit-learn splitter.")
    from sklearn.model_selection import KFold, StratifiedKFold

    rows = len(y)
    if not 2 <= cv <= rows:
        raise UsageError(f"cv={cv}: give from 2 to {rows} folds (the rows of X).")
    if task_of(model) == REGRESSION:
        return KFold(cv, shuffle=True, random_state=SEED)
    _, counts = np.unique(np.asarray(y).astype(str), return_counts=True)
    if counts.min() >= cv:
        return StratifiedKFold(cv, shuffle=True, random_state=SEED)
    return KFold(cv, shuffle=True, random_state=SEED)


def _rows(X: Any, index: np.ndarray) -> Any:
    return X.iloc[index] if hasattr(X, "iloc") else np.asarray(X)[index]


def cross_validate(model: Any, X: Any, y: Any, cv: Any) -> tuple[dict[str, FoldSummary], list[Skipped]]:
    """Every metric over the folds of ``cv`` as ``{name: {mean, low, high, std}}``, and what was skipped.

    A fold whose fit or scoring fails is named in ``skipped`` and left out; a metric undefined in a fold is
    summarised over the folds where it is defined (and that is said).
    """
    from scipy import stats
    from sklearn.base import clone

    split = splitter(model, y, cv)
    labels = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    folds: list[dict[str, float]] = []
    skipped: list[Skipped] = []
    for number, (train, test) in enumerate(split.split(_rows(X, np.arange(len(labels))), labels), start=1):
        try:
            fitted = clone(model).fit(_rows(X, train), labels[train])
            found, _ = evaluate(score(fitted, _rows(X, test), labels[test])[0])
        except (ValueError, UsageError) as e:
            skipped.append({"part": f"cv.fold{number}", "reason": f"{type(e).__name__}: {str(e)[:200]}"})
            continue
        folds.append(found)
    if len(folds) < 2:
        skipped.append({"part": "cv", "reason": f"only {len(folds)} fold(s) could be scored: no interval"})
        return {}, skipped
    summary: dict[str, FoldSummary] = {}
    names = sorted({n for f in folds for n in f if n not in COUNTS})
    for name in names:
        values = np.array([f[name] for f in folds if name in f])
        if len(values) < len(folds):
            skipped.append(
                {"part": f"cv.{name}", "reason": f"undefined in {len(folds) - len(values)} of {len(folds)} folds"}
            )
        if len(values) < 2:
            continue
        mean, sd = float(values.mean()), float(values.std(ddof=1))
        half = float(stats.t.ppf((1 + LEVEL) / 2, len(values) - 1)) * sd / np.sqrt(len(values))
        low, high = mean - half, mean + half
        if name in BOUNDED:  # a t interval can pass the metric's range; the metric cannot
            low, high = max(low, 0.0), min(high, 1.0)
        summary[name] = {"mean": mean, "low": float(low), "high": float(high), "std": sd}
    return summary, skipped
