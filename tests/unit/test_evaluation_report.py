"""The evaluation's result and report: every task renders, hostile names stay text, nothing is fetched."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.svm import LinearSVC

from mlops_nb.evaluation.report import evaluate_model
from mlops_nb.exceptions import UsageError

HOSTILE = '<img src=x onerror="alert(1)">'


def _frame(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({HOSTILE: rng.normal(size=rows), "b": rng.normal(size=rows), "c": rng.uniform(size=rows)})


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_every_task_gives_a_json_result_and_an_offline_report(task: str) -> None:
    X = _frame()
    if task == "regression":
        y = 3 * X[HOSTILE] + X["b"]
        model = LinearRegression().fit(X, y)
    else:
        classes = ["no", HOSTILE] if task == "binary" else ["a", "b", HOSTILE]
        y = pd.Series(np.array(classes)[(X[HOSTILE] > 0).astype(int) + (task == "multiclass") * (X["b"] > 1)])
        model = LogisticRegression().fit(X, y)
    evaluation = evaluate_model(model, X, y, slices=["c:quantile(3)"], cv=3, explain=True)
    result = json.loads(json.dumps(evaluation.result, allow_nan=False))  # plain JSON: no NaN anywhere
    assert result["task"] == task and len(result["slices"]) == 3 and result["cv"]
    names = {c.name for c in evaluation.charts}
    expected = {"residuals_plot", "predicted_vs_actual_plot"} if task == "regression" else {"confusion_matrix"}
    assert expected <= names and "permutation_importance_plot" in names
    assert ("calibration_curve_plot" in names) == (task == "binary")
    page = evaluation.html(page=True)
    assert HOSTILE not in page and "&lt;img src=x" in page
    assert "<script" not in page and not re.search(r'(src|href)="https?:', page)
    assert page.count("<svg") == len(evaluation.charts)
    for chart in evaluation.charts:
        assert json.loads(json.dumps(chart.spec()))["$schema"].endswith("v5.json")


def test_a_model_without_probabilities_says_what_it_could_not_do() -> None:
    X = _frame()
    y = (X["b"] > 0).astype(int)
    evaluation = evaluate_model(LinearSVC().fit(X, y), X, y, explain=False)
    (skipped,) = [s for s in evaluation.skipped if s["part"] == "probabilities"]
    assert "no predict_proba" in skipped["reason"] and "roc_auc" not in evaluation.metrics
    assert "Not computed" in evaluation.html() and "roc_curve_plot" not in {c.name for c in evaluation.charts}


def test_a_baseline_of_another_task_is_refused() -> None:
    X = _frame()
    y = (X["b"] > 0).astype(int)
    with pytest.raises(UsageError, match="compare like with like"):
        evaluate_model(LogisticRegression().fit(X, y), X, y, baseline=LinearRegression().fit(X, X["b"]), explain=False)
