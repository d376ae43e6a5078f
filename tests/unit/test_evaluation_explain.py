"""Explanations: SHAP values equal to shap's own explainers' (also through a pipeline), permutation importance."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_nb.evaluation import explain
from mlops_nb.evaluation import metrics as m


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :8]
    return X.iloc[:300], y.iloc[:300], X.iloc[300:420], y.iloc[300:420]


def test_linear_shap_of_a_pipeline_equals_shaps_explainer_under_the_transformed_names(cancer) -> None:
    X, y, X_test, y_test = cancer
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    s, _ = m.score(model, X_test, y_test)
    found, skipped = explain.shap_values(model, X_test, s)
    assert skipped == [] and found is not None
    inputs = model[:-1].transform(X_test)
    expected = shap.LinearExplainer(model[-1], shap.maskers.Independent(inputs, max_samples=100))(inputs).values
    assert found.summary["explainer"] == "LinearExplainer"
    by_name = {f["feature"]: f["mean_abs"] for f in found.summary["features"]}
    assert set(by_name) == set(X.columns)
    for i, column in enumerate(X.columns):
        assert by_name[column] == pytest.approx(np.abs(expected[:, i]).mean(), abs=1e-12)


def test_tree_shap_of_a_forest_equals_shaps_tree_explainer(cancer) -> None:
    X, y, X_test, y_test = cancer
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    s, _ = m.score(model, X_test, y_test)
    found, _ = explain.shap_values(model, X_test, s)
    expected = shap.TreeExplainer(model)(X_test.to_numpy(dtype=float), check_additivity=False).values[:, :, 1]
    assert found.summary["explainer"] == "TreeExplainer"
    top = found.summary["features"][0]
    column = list(X.columns).index(top["feature"])
    assert top["mean_abs"] == pytest.approx(np.abs(expected[:, column]).mean(), abs=1e-12)
    assert top["mean_abs"] == pytest.approx(np.abs(expected).mean(axis=0).max(), abs=1e-12)


def test_one_hot_columns_keep_their_transformed_names() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"colour": rng.choice(["red", "blue"], 200), "size": rng.normal(size=200)})
    y = ((X["colour"] == "red") ^ (X["size"] > 0)).astype(int)
    pre = ColumnTransformer([("cat", OneHotEncoder(), ["colour"]), ("num", StandardScaler(), ["size"])])
    model = make_pipeline(pre, LogisticRegression()).fit(X, y)
    found, _ = explain.shap_values(model, X, m.score(model, X, y)[0])
    assert {f["feature"] for f in found.summary["features"]} == {"cat__colour_blue", "cat__colour_red", "num__size"}


def test_the_permutation_explainer_adds_up_to_each_rows_output_minus_the_background() -> None:
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"a": rng.normal(size=150), "b": rng.normal(size=150), "c": rng.normal(size=150)})
    y = ((X["a"] + X["b"] * X["c"]) > 0).astype(int)
    knn = KNeighborsClassifier().fit(X, y)
    s = m.score(knn, X, y)[0]
    rows = np.arange(10)
    values = explain._permutation_shap(knn, X, s, rows)  # rows x columns x classes
    background = explain._sample(len(X), explain.BACKGROUND_ROWS, explain.SEED + 1)
    expected = knn.predict_proba(X.iloc[rows]) - knn.predict_proba(X.iloc[background]).mean(axis=0)
    np.testing.assert_allclose(values.sum(axis=1), expected, atol=1e-12)
    found, skipped = explain.shap_values(knn, X, s)
    assert skipped == [] and found.summary["explainer"] == "PermutationExplainer"
    assert found.summary["rows"] == explain.PERMUTATION_ROWS
    assert found.summary["features"][0]["feature"] == "a"


def test_without_shap_the_part_is_skipped_with_the_pip_command(cancer, monkeypatch) -> None:
    X, y, X_test, y_test = cancer
    model = LogisticRegression(max_iter=1000).fit(X, y)
    monkeypatch.setitem(sys.modules, "shap", None)  # what Python does when shap is not installed
    found, skipped = explain.shap_values(model, X_test, m.score(model, X_test, y_test)[0])
    assert found is None
    assert skipped == [{"part": "shap", "reason": "shap is not installed: pip install 'mlops-nb[explain]'"}]


def test_permutation_importance_ranks_the_informative_column_first() -> None:
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"noise": rng.normal(size=300), "signal": rng.normal(size=300)})
    y = (X["signal"] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    found = explain.permutation_importance(model, X, m.score(model, X, y)[0])
    assert [f["feature"] for f in found] == ["signal", "noise"]
    signal, noise = found
    assert signal["low"] <= signal["mean"] <= signal["high"] and signal["low"] > 0.3
    assert abs(noise["mean"]) < 0.05
