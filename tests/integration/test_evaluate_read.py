"""``mlops-nb show`` and ``mlops-nb diff`` on runs that evaluated models: real runs in a real SQLite store."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mlops_nb as mnb
from mlops_nb.cli import main
from tests.conftest import embedded_client
from tests.integration.test_evaluate import cancer


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def two_runs() -> tuple[Any, Any, Any, Any]:
    """Run a: a good model; run b: a weaker one (strongly regularised) with run a's model as its baseline, and
    a row without a label (a skipped part). Each evaluates in a stage ``evaluate`` of a notebook run."""
    X_train, y_train, X_test, y_test = cancer()
    good = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X_train, y_train)
    weak = make_pipeline(StandardScaler(), LogisticRegression(C=1e-3)).fit(X_train, y_train)
    with mnb.start_run("nb-a", kind="notebook") as a, mnb.stage("evaluate"):
        first = mnb.evaluate(good, X_test, y_test, slices=["mean radius:quantile(2)"], explain=False)
    labels = y_test.astype(float)
    labels.iloc[0] = np.nan
    with mnb.start_run("nb-b", kind="notebook") as b, mnb.stage("evaluate"):
        second = mnb.evaluate(weak, X_test, labels, baseline=good, explain=False)
    assert mnb.flush(120)
    return a, b, first, second


def test_show_gives_each_evaluations_headline_and_diff_its_deltas_with_intervals(project: Path) -> None:
    a, b, first, second = two_runs()
    shown = cli("show", b.run_id, "--json")
    assert shown.exit_code == 0, shown.output
    (headline,) = json.loads(shown.output)["evaluations"]
    assert headline["name"] == "evaluation" and headline["stage"] == "evaluate" and headline["error"] is None
    assert headline["run_id"] == second.result["run_id"] != b.run_id  # the stage run holds it
    assert headline["metrics"] == second.result["metrics"] and headline["report"] == "evaluation/report.html"
    assert headline["worst_slice"] == second.result["worst_slice"]
    assert [s["slice"] for s in headline["worst_slices"]] == [s["slice"] for s in second.result["worst_slices"][:3]]
    deltas = headline["baseline"]["deltas"]
    assert deltas["accuracy_score"] == second.result["baseline"]["deltas"]["accuracy_score"]
    assert deltas["accuracy_score"]["low"] <= deltas["accuracy_score"]["delta"] <= deltas["accuracy_score"]["high"]
    assert {"part": "rows", "reason": "1 rows have no label (missing y): left out"} in headline["skipped"]

    text = cli("show", b.run_id)
    assert text.exit_code == 0, text.output
    assert f"evaluation evaluation  (stage evaluate, run {headline['run_id']})" in text.output
    assert "vs baseline Pipeline" in text.output and "paired interval" in text.output
    assert "skipped rows: 1 rows have no label" in text.output
    assert "report: evaluation/report.html" in text.output
    if second.result["worst_slices"]:
        assert f"worst slice: {second.result['worst_slices'][0]['slice']}" in text.output

    compared = cli("diff", a.run_id, b.run_id, "--json")
    assert compared.exit_code == 0, compared.output
    (evaluation,) = json.loads(compared.output)["evaluations"]
    assert evaluation["in"] == "both" and evaluation["run_ids"] == [first.result["run_id"], second.result["run_id"]]
    before, after = first.result["metrics"]["accuracy_score"], second.result["metrics"]["accuracy_score"]
    assert evaluation["metrics"]["accuracy_score"] == [before, after, pytest.approx(after - before, abs=1e-15)]
    delta = evaluation["deltas"]["accuracy_score"]
    halves = [
        (r["intervals"]["accuracy_score"]["high"] - r["intervals"]["accuracy_score"]["low"]) / 2
        for r in (first.result, second.result)
    ]
    assert delta["high"] - delta["delta"] == pytest.approx(math.hypot(*halves), abs=1e-12)
    assert delta["low"] < delta["delta"] < delta["high"] and delta["delta"] < 0  # the weaker model
    assert "example_count" not in evaluation["deltas"]  # a count has no interval
    assert evaluation["primary"] == "accuracy_score"
    text = cli("diff", a.run_id, b.run_id)
    assert text.exit_code == 0, text.output
    assert "evaluation evaluation" in text.output and "95% interval of b - a" in text.output


def test_an_evaluation_whose_result_is_missing_is_listed_with_the_reason_and_one_run_only_is_said(
    project: Path,
) -> None:
    _, b, _, _ = two_runs()
    with mnb.start_run("nb-c", kind="notebook") as c:
        mnb.log_metric("accuracy_score", 0.5)
    assert mnb.flush(120)
    embedded_client(project).set_tag(c.run_id, "mlops_nb.evaluation", "ghost")  # named, never logged
    shown = cli("show", c.run_id, "--json")
    assert shown.exit_code == 0, shown.output
    (ghost,) = json.loads(shown.output)["evaluations"]
    assert ghost["name"] == "ghost" and ghost["stage"] is None and ghost["metrics"] == {}
    assert "ghost/result.json is not in MLflow" in ghost["error"]
    assert ghost["skipped"] == [{"part": "result", "reason": ghost["error"]}]
    text = cli("show", c.run_id)
    assert "not readable: its ghost/result.json is not in MLflow" in text.output
    compared = json.loads(cli("diff", b.run_id, c.run_id, "--json").output)["evaluations"]
    assert [(e["name"], e["in"]) for e in compared] == [("evaluation", "a"), ("ghost", "b")]
    assert compared[0]["deltas"] == {} and compared[0]["metrics"]["accuracy_score"][1] is None
