"""Promotion gates on evaluations: dotted names (cv.accuracy.low, worst_slice.recall) and the paired must-beat."""

from __future__ import annotations

import json
from pathlib import Path

from mlops_nb.registry.promote import promote
from mlops_nb.tracking.evaluations import find_result
from tests.conftest import embedded_client, python
from tests.integration.test_evaluate import cancer

JOB = """
import mlops_nb as mnb
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

train, test = pd.read_parquet("train.parquet"), pd.read_parquet("test.parquet")
X, y = train.drop(columns=["target"]), train["target"]
with mnb.start_run("job", kind="job") as job:
    with mnb.stage("train"):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C_VALUE, max_iter=1000)).fit(X, y)
        mnb.log_model(model, "model", input_example=X[:5])
    with mnb.stage("evaluate"):
        mnb.evaluate(model, test.drop(columns=["target"]), test["target"], cv=3, baseline="champion",
                     registered_model="cancer", slices=["mean radius:quantile(4)"], explain=False)
assert mnb.flush(120)
print(job.run_id)
"""


def job(project: Path, c: float) -> str:
    done = python(JOB.replace("C_VALUE", repr(c)), cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()[-1]


def test_gates_read_the_evaluation_and_must_beat_uses_the_paired_comparison(project: Path) -> None:
    X_train, y_train, X_test, y_test = cancer()
    X_train.assign(target=y_train).to_parquet(project / "train.parquet")
    X_test.assign(target=y_test).to_parquet(project / "test.parquet")
    first = job(project, 1.0)
    done = promote(first, "cancer", require=["cv.accuracy.low >= 0.5", "worst_slice.recall >= 0.3"])
    assert done.promoted, [g.message for g in done.gates]
    assert "cv.accuracy.low >= 0.5: cv.accuracy.low = " in done.gates[0].message
    tags = embedded_client(project).get_model_version("cancer", done.version).tags
    assert tags["mlops_nb.promotion.evaluation"].endswith("/evaluation/report.html")

    # A much more regularised model, evaluated against that champion on the same rows
    worse = job(project, 0.0003)
    refused = promote(worse, "cancer", must_beat="champion", metric="roc_auc")
    assert not refused.promoted
    (gate,) = refused.failed
    assert "paired bootstrap" in gate.message and f"version {done.version}" in gate.message
    refusal = json.loads(embedded_client(project).get_run(worse).data.tags["mlops_nb.promotion.refused_gates"])
    assert json.loads(refusal["paired_delta"])["low"] <= 0

    # A gate on a slice refuses a model that is worse on that slice, and lets the better one through
    good = find_result(first)["worst_slice"]["accuracy_score"]
    bad = find_result(worse)["worst_slice"]["accuracy_score"]
    assert bad < good
    gate = f"worst_slice.accuracy >= {(good + bad) / 2}"
    refused = promote(worse, "cancer", require=[gate])
    assert not refused.promoted and "worst_slice.accuracy = " in refused.failed[0].message
    assert promote(first, "cancer", alias="candidate", require=[gate]).promoted
