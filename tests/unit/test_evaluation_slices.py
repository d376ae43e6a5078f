"""Slices, the worst-segment search, cross-validation and the paired bootstrap of mlops_nb.evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

from mlops_nb.evaluation import cv as cv_mod
from mlops_nb.evaluation import metrics as m
from mlops_nb.evaluation import resampling, slices
from mlops_nb.exceptions import UsageError


def _data(rows: int = 600, seed: int = 0):
    """A label the model gets right except where cat0 == 'c' and num1 is high (labels flipped there)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "num0": rng.normal(size=rows),
            "num1": rng.uniform(size=rows),
            "cat0": rng.choice(["a", "b", "c"], size=rows),
        }
    )
    y = (frame["num0"] > 0).astype(int).to_numpy().copy()
    weak = (frame["cat0"] == "c").to_numpy() & (frame["num1"] > 0.5).to_numpy()
    y[weak] = 1 - y[weak]
    X = frame[["num0", "num1"]].assign(c=(frame["cat0"] == "c").astype(float))
    model = LogisticRegression().fit(X.to_numpy()[: rows // 2], y[: rows // 2])
    return model, frame, X.to_numpy(), y, weak


def test_declared_slices_have_scikit_learns_metrics_on_their_rows() -> None:
    model, frame, X, y, _ = _data()
    s, _ = m.score(model, X, y)
    overall = m.evaluate(s)[0]["accuracy_score"]
    found = slices.declared_slices(s, frame, ["cat0", "num1:quantile(4)"], overall)
    by_name = {f["slice"]: f for f in found}
    pred = model.predict(X)
    rows = (frame["cat0"] == "a").to_numpy()
    assert by_name["cat0 == 'a'"]["rows"] == rows.sum()
    assert by_name["cat0 == 'a'"]["metrics"]["accuracy_score"] == pytest.approx(
        sk.accuracy_score(y[rows], pred[rows]), abs=1e-12
    )
    bins = [f for f in found if "num1" in f["slice"]]
    assert len(bins) == 4 and sum(b["rows"] for b in bins) == len(y)
    for f in found:
        i = f["intervals"]["accuracy_score"]
        assert i["low"] <= f["metrics"]["accuracy_score"] <= i["high"]


def test_the_search_finds_the_planted_weak_segment_with_two_conditions() -> None:
    model, frame, X, y, weak = _data()
    s, _ = m.score(model, X, y)
    overall = m.evaluate(s)[0]["accuracy_score"]
    worst = slices.worst_slices(s, frame, overall, support=30)
    assert worst, "no weak segment found"
    top = worst[0]
    assert "cat0 == 'c'" in top["slice"] and "num1" in top["slice"] and " and " in top["slice"]
    assert top["gap"] > 0.3 and 30 <= top["rows"] <= weak.sum() + 30
    assert [w["gap"] for w in worst] == sorted((w["gap"] for w in worst), reverse=True)
    assert slices.worst_of(worst)["accuracy_score"] == top["metrics"]["accuracy_score"]


def test_a_bad_slice_names_the_columns() -> None:
    _, frame, *_ = _data(rows=60)
    with pytest.raises(UsageError, match=r"no column 'colour'.*num0, num1, cat0"):
        slices.declared(frame, ["colour"])
    with pytest.raises(UsageError, match="not numeric"):
        slices.declared(frame, ["cat0:quantile(4)"])


def test_cv_means_equal_scikit_learns_cross_val_score() -> None:
    model, _, X, y, _ = _data(rows=300)
    summary, skipped = cv_mod.cross_validate(model, X, y, 5)
    folds = cross_val_score(model, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), scoring="accuracy")
    assert skipped == []
    acc = summary["accuracy_score"]
    assert acc["mean"] == pytest.approx(folds.mean(), abs=1e-12)
    assert acc["low"] < acc["mean"] < acc["high"] and "example_count" not in summary
    with pytest.raises(UsageError, match="from 2 to 300 folds"):
        cv_mod.cross_validate(model, X, y, 1)


def test_paired_deltas_are_zero_against_itself_and_clear_against_a_worse_model() -> None:
    model, _, X, y, _ = _data()
    s, _ = m.score(model, X, y)
    same = resampling.paired_deltas(s, s, resamples=100)
    assert all(d["delta"] == 0 and d["low"] == 0 and d["high"] == 0 for d in same.values())
    dummy = DummyClassifier(strategy="most_frequent").fit(X, y)
    deltas = resampling.paired_deltas(s, m.score(dummy, X, y)[0], resamples=200)
    acc = deltas["accuracy_score"]
    assert acc["delta"] == pytest.approx(
        sk.accuracy_score(y, model.predict(X)) - sk.accuracy_score(y, dummy.predict(X))
    )
    assert 0 < acc["low"] < acc["delta"] < acc["high"]
