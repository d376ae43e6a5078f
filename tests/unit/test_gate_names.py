"""Requirements on an evaluation's dotted names: short names spelled out as MLflow's, bounds as logged."""

from __future__ import annotations

from mlops_nb.gates import canonical, parse_requirement

LOGGED = {"cv.accuracy_score.low": 0.91, "worst_slice.recall_score": 0.75, "accuracy": 0.95, "roc_auc": 0.99}


def test_short_names_read_mlflows_names() -> None:
    assert canonical("cv.accuracy.low") == "cv.accuracy_score.low"
    assert canonical("cv.accuracy.lower") == "cv.accuracy_score.low"
    assert canonical("worst_slice.recall") == "worst_slice.recall_score"
    assert parse_requirement("cv.accuracy.low >= 0.9").check(LOGGED).ok
    assert parse_requirement("cv.accuracy.lower >= 0.9").check(LOGGED).ok


def test_a_weak_slice_fails_with_the_margin_and_a_name_logged_as_is_wins() -> None:
    result = parse_requirement("worst_slice.recall >= 0.8").check(LOGGED)
    assert not result.ok and result.actual == 0.75
    assert "worst_slice.recall = 0.75, 0.05 below the threshold" in result.message
    assert parse_requirement("accuracy >= 0.9").check(LOGGED).actual == 0.95  # the notebook's own "accuracy"
    missing = parse_requirement("cv.f1.low >= 0.9").check(LOGGED)
    assert not missing.ok and "was not logged" in missing.message
