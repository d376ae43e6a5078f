"""Every metric of mlops_nb.evaluation.metrics equals scikit-learn's (and MLflow's evaluator's names), to 1e-12."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from mlops_nb.evaluation import metrics as m
from mlops_nb.exceptions import UsageError


def _binary(seed: int = 0, rows: int = 300):
    X, y = make_classification(n_samples=rows, n_features=6, random_state=seed)
    labels = np.where(y == 1, "yes", "no")
    model = LogisticRegression().fit(X, labels)
    return model, X, labels


def test_binary_metrics_equal_scikit_learns_under_mlflows_names() -> None:
    model, X, y = _binary()
    scored, skipped = m.score(model, X, y)
    found, undefined = m.evaluate(scored)
    pred, proba = model.predict(X), model.predict_proba(X)[:, 1]
    tn, fp, fn, tp = sk.confusion_matrix(y, pred, labels=model.classes_).ravel()
    expected = {
        "example_count": len(y),
        "accuracy_score": sk.accuracy_score(y, pred),
        "precision_score": sk.precision_score(y, pred, pos_label="yes"),
        "recall_score": sk.recall_score(y, pred, pos_label="yes"),
        "f1_score": sk.f1_score(y, pred, pos_label="yes"),
        "log_loss": sk.log_loss(y, model.predict_proba(X), labels=model.classes_),
        "roc_auc": sk.roc_auc_score(y == "yes", proba),
        "precision_recall_auc": sk.average_precision_score(y == "yes", proba),
        "true_negatives": tn,
        "false_positives": fp,
        "false_negatives": fn,
        "true_positives": tp,
    }
    assert skipped == [] and undefined == []
    assert set(found) == set(expected)
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, abs=1e-12, rel=0), name


def test_ties_and_weights_match_scikit_learn() -> None:
    """Tied scores (a shallow tree) and bootstrap counts as sample weights."""
    X, y = make_classification(n_samples=200, n_features=5, random_state=3)
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
    scored, _ = m.score(model, X, y)
    weights = np.random.default_rng(0).multinomial(200, np.full(200, 1 / 200), size=3).astype(float)
    values = m.compute(scored, weights)
    proba, pred = model.predict_proba(X)[:, 1], model.predict(X)
    for i, w in enumerate(weights):
        assert values["roc_auc"][i] == pytest.approx(sk.roc_auc_score(y, proba, sample_weight=w), abs=1e-12)
        ap = sk.average_precision_score(y, proba, sample_weight=w)
        assert values["precision_recall_auc"][i] == pytest.approx(ap, abs=1e-12)
        assert values["f1_score"][i] == pytest.approx(sk.f1_score(y, pred, sample_weight=w), abs=1e-12)
        loss = sk.log_loss(y, model.predict_proba(X), sample_weight=w)
        assert values["log_loss"][i] == pytest.approx(loss, abs=1e-12)


def test_multiclass_metrics_weighted_as_mlflow() -> None:
    X, y = make_classification(n_samples=400, n_features=8, n_informative=5, n_classes=3, random_state=1)
    model = LogisticRegression(max_iter=500).fit(X[:200], y[:200])
    found, undefined = m.evaluate(m.score(model, X[200:], y[200:])[0])
    pred, proba, truth = model.predict(X[200:]), model.predict_proba(X[200:]), y[200:]
    assert undefined == []
    assert found["accuracy_score"] == pytest.approx(sk.accuracy_score(truth, pred), abs=1e-12)
    for name, fn in (("precision_score", sk.precision_score), ("recall_score", sk.recall_score)):
        assert found[name] == pytest.approx(fn(truth, pred, average="weighted"), abs=1e-12)
    assert found["f1_score"] == pytest.approx(sk.f1_score(truth, pred, average="weighted"), abs=1e-12)
    assert found["log_loss"] == pytest.approx(sk.log_loss(truth, proba, labels=model.classes_), abs=1e-12)
    auc = sk.roc_auc_score(truth, proba, multi_class="ovr", average="weighted")
    assert found["roc_auc"] == pytest.approx(auc, abs=1e-12)
    assert "precision_recall_auc" not in found and "true_positives" not in found


def test_regressor_metrics_equal_scikit_learns() -> None:
    X, y = make_regression(n_samples=250, n_features=4, noise=5.0, random_state=2)
    model = LinearRegression().fit(X, y)
    found, undefined = m.evaluate(m.score(model, pd.DataFrame(X), pd.Series(y))[0])
    pred = model.predict(X)
    expected = {
        "example_count": len(y),
        "mean_absolute_error": sk.mean_absolute_error(y, pred),
        "mean_squared_error": sk.mean_squared_error(y, pred),
        "root_mean_squared_error": sk.root_mean_squared_error(y, pred),
        "r2_score": sk.r2_score(y, pred),
        "max_error": sk.max_error(y, pred),
        "mean_absolute_percentage_error": sk.mean_absolute_percentage_error(y, pred),
        "sum_on_target": float(np.sum(y)),
        "mean_on_target": float(np.mean(y)),
    }
    assert undefined == [] and set(found) == set(expected)
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, abs=1e-12, rel=1e-12), name


def test_undefined_metrics_are_named_with_the_reason_not_reported_as_numbers() -> None:
    model, X, _ = _binary()
    never_positive = np.full(len(X), "no")  # every label "no": one class only
    found, undefined = m.evaluate(m.score(model, X, never_positive)[0])
    parts = {u["part"]: u["reason"] for u in undefined}
    assert "metrics.recall_score" in parts and "labelled 'yes'" in parts["metrics.recall_score"]
    assert "metrics.roc_auc" in parts and "one class" in parts["metrics.roc_auc"]
    assert "recall_score" not in found and "roc_auc" not in found
    assert found["accuracy_score"] == pytest.approx(sk.accuracy_score(never_positive, model.predict(X)))


def test_missing_labels_and_inputs_are_left_out_and_said() -> None:
    model, X, y = _binary()
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame.iloc[:5, 0] = np.nan
    labels = pd.Series(y, dtype=object)
    labels.iloc[10:13] = None
    scored, skipped = m.score(model, frame.to_numpy(), labels)
    assert scored.rows == len(y) - 8
    reasons = " ".join(s["reason"] for s in skipped)
    assert "3 rows have no label" in reasons and "5 rows have missing inputs" in reasons


def test_bad_input_names_the_fix() -> None:
    model, X, y = _binary()
    with pytest.raises(UsageError, match="X has 300 rows but y has 299"):
        m.score(model, X, y[:-1])
    with pytest.raises(UsageError, match="labels the model never saw"):
        m.score(model, X, np.where(y == "yes", "maybe", y))
    from sklearn.cluster import KMeans

    with pytest.raises(UsageError, match="neither a classifier nor a regressor"):
        m.score(KMeans(n_clusters=2, n_init=1).fit(X), X, y)


def test_the_primary_metric_alone_equals_the_full_computations() -> None:
    """Slices and permutation importance judge by ``primary``: it must be the same number as ``compute``'s."""
    X, y = make_regression(n_samples=120, n_features=3, noise=3.0, random_state=4)
    regression = m.score(LinearRegression().fit(X, y), X, y)[0]
    model, Xb, yb = _binary(rows=120)
    binary = m.score(model, Xb, yb)[0]
    W = np.random.default_rng(1).integers(0, 2, size=(7, 120)).astype(float)
    for scored in (regression, binary):
        expected = m.compute(scored, W)[m.PRIMARY[scored.task]]
        np.testing.assert_allclose(m.primary(scored, W), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("classes", "values", "codes"),
    [
        (np.array(["no", "yes"]), np.array(["yes", "maybe", "no"]), [1, -1, 0]),
        (np.array([0, 1, 2]), np.array([2, 7, 0]), [2, -1, 0]),
        (np.array([0.5, 1.5]), np.array([1.5, 0.5]), [1, 0]),
        (np.array(["a", 1], dtype=object), np.array([1, "b", "a"], dtype=object), [1, -1, 0]),
        (np.array([0, 1]), np.array([True, False]), [1, 0]),  # a bool is the int it equals, as in Python
    ],
)
def test_encode_finds_each_label_of_any_dtype_and_marks_the_unknown(classes, values, codes) -> None:
    found, unknown = m.encode(classes, values)
    assert found.tolist() == codes and unknown.tolist() == [c < 0 for c in codes]
