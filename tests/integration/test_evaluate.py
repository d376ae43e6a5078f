"""``mnb.evaluate`` and ``mlops-nb evaluate``: real models in a real MLflow store, a real kernel, Chromium."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn import metrics as sk
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mlops_nb as mnb
from mlops_nb.cli import main
from tests.conftest import embedded_client, python

TRAIN = """
import mlops_nb as mnb
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

train = pd.read_parquet("train.parquet")
X, y = train.drop(columns=["target"]), train["target"]
model = make_pipeline(StandardScaler(), LogisticRegression(C=C_VALUE, max_iter=1000)).fit(X, y)
with mnb.start_run("train", kind="job"), mnb.stage("train"):
    mnb.log_model(model, "model", input_example=X[:5])
assert mnb.flush(120)
"""


def cancer() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :10]
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    return X_train, y_train, X_test, y_test


def fitted() -> tuple[Any, pd.DataFrame, pd.Series]:
    X_train, y_train, X_test, y_test = cancer()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X_train, y_train), X_test, y_test


def artifact(project: Path, run_id: str, path: str) -> str:
    local = embedded_client(project).download_artifacts(run_id, path, str(project / "dl"))
    return Path(local).read_text()


def test_in_a_stage_metrics_files_and_tag_are_recorded_and_roll_up(project: Path) -> None:
    model, X, y = fitted()
    with mnb.start_run("nb", kind="notebook") as root, mnb.stage("evaluate") as stage:
        evaluation = mnb.evaluate(model, X, y, slices=["mean radius:quantile(4)"], cv=3)
    assert mnb.flush(120)
    client = embedded_client(project)
    run = client.get_run(stage.run_id)
    accuracy = sk.accuracy_score(y, model.predict(X))
    assert run.data.metrics["accuracy_score"] == pytest.approx(accuracy, abs=1e-12)
    assert run.data.metrics["roc_auc"] == pytest.approx(sk.roc_auc_score(y, model.predict_proba(X)[:, 1]), abs=1e-12)
    for key in ("cv.accuracy_score.low", "cv.roc_auc.mean", "worst_slice.recall_score"):
        assert key in run.data.metrics
        assert client.get_run(root.run_id).data.metrics[key] == run.data.metrics[key]  # rolled up for the gates
    assert run.data.tags["mlops_nb.evaluation"] == "evaluation"
    result = json.loads(artifact(project, stage.run_id, "evaluation/result.json"))
    assert result["run_id"] == stage.run_id == evaluation.result["run_id"]
    assert {"task", "metrics", "cv", "slices", "worst_slices", "importance", "shap", "baseline", "skipped"} <= set(
        result
    )
    assert result["task"] == "binary" and len(result["slices"]) == 4 and result["baseline"] is None
    assert result["shap"]["explainer"] == "LinearExplainer" and result["importance"][0]["feature"] in X.columns
    report = artifact(project, stage.run_id, "evaluation/report.html")
    assert "Content-Security-Policy" in report and "<script" not in report and report.count("<svg") >= 7
    plots = {a.path for a in client.list_artifacts(stage.run_id, "evaluation/plots")}
    for name in ("confusion_matrix", "roc_curve_plot", "precision_recall_curve_plot", "shap_beeswarm_plot"):
        assert f"evaluation/plots/{name}.vl.json" in plots
    spec = json.loads(artifact(project, stage.run_id, "evaluation/plots/roc_curve_plot.vl.json"))
    assert spec["$schema"].endswith("vega-lite/v5.json") and spec["data"]["values"] and spec["layer"]


def test_outside_a_stage_it_records_into_the_processs_run_and_a_second_name_is_prefixed(project: Path) -> None:
    model, X, y = fitted()
    first = mnb.evaluate(model, X, y, explain=False)
    second = mnb.evaluate(model, X.iloc[:60], y.iloc[:60], explain=False, name="holdout")
    assert mnb.flush(120)
    run = embedded_client(project).get_run(first.result["run_id"])
    assert first.result["run_id"] == second.result["run_id"]
    assert run.data.tags["mlops_nb.evaluation"] == "evaluation,holdout"
    assert "accuracy_score" in run.data.metrics and "holdout.accuracy_score" in run.data.metrics
    assert first.result["importance"] is None and first.result["shap"] is None


def test_an_alias_without_a_version_is_a_named_skip_and_bad_input_names_the_fix(project: Path) -> None:
    model, X, y = fitted()
    found = mnb.evaluate(model, X, y, baseline="champion", registered_model="nothing-yet", explain=False, record=False)
    assert found.result["baseline"] is None
    (skip,) = [s for s in found.result["skipped"] if s["part"] == "baseline"]
    assert "models:/nothing-yet@champion" in skip["reason"]
    with pytest.raises(mnb.MlopsNbError, match="registered_model='churn'"):
        mnb.evaluate(model, X, y, baseline="champion", record=False)
    with pytest.raises(mnb.MlopsNbError, match="no column 'age'"):
        mnb.evaluate(model, X, y, slices=["age"], record=False)
    with pytest.raises(mnb.MlopsNbError, match="name='oh no'"):
        mnb.evaluate(model, X, y, name="oh no", record=False)


def register(project: Path, name: str, c: float) -> str:
    """Train in a fresh interpreter, log the model with mnb.log_model (skops), register it: the new version."""
    X_train, y_train, X_test, y_test = cancer()
    X_train.assign(target=y_train).to_parquet(project / "train.parquet")
    X_test.assign(target=y_test).to_parquet(project / "test.parquet")
    done = python(TRAIN.replace("C_VALUE", repr(c)), cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    client = embedded_client(project)
    (run, *_) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "tags.`mlops_nb.stage` = 'train'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    return client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version


def evaluate_cli(*args: Any) -> Any:
    return CliRunner().invoke(main, ["evaluate", *map(str, args)])


def test_cli_evaluates_a_registered_version_against_the_champion(project: Path) -> None:
    client = embedded_client(project)
    champion = register(project, "cancer", 0.001)
    client.set_registered_model_alias("cancer", "champion", champion)
    challenger = register(project, "cancer", 1.0)
    done = evaluate_cli(
        f"models:/cancer/{challenger}", "--data", "test.parquet", "--label", "target", "--baseline", "champion",
        "--slices", "mean radius:quantile(4)", "--json", "out.json", "--report", "out.html",
    )  # fmt: skip
    assert done.exit_code == 0, done.output + str(done.exception)
    result = json.loads((project / "out.json").read_text())
    assert result["baseline"]["model"] == f"models:/cancer/{champion}"
    delta = result["baseline"]["deltas"]["accuracy_score"]
    assert delta["low"] <= delta["delta"] <= delta["high"]
    assert result["metrics"]["accuracy_score"] - result["baseline"]["metrics"]["accuracy_score"] == pytest.approx(
        delta["delta"]
    )
    assert "<svg" in (project / "out.html").read_text()
    run = client.get_run(result["run_id"])
    assert run.data.tags["mlops_nb.kind"] == "evaluation" and run.data.tags["mlops_nb.model"] == f"cancer/{challenger}"
    assert run.data.metrics["delta.accuracy_score"] == pytest.approx(delta["delta"])
    last = json.loads(client.get_model_version("cancer", challenger).tags["mlops_nb.evaluation.last"])
    assert last["run_id"] == result["run_id"]


def test_cli_bad_input_exits_2_naming_the_fix(project: Path) -> None:
    version = register(project, "cancer", 1.0)
    uri = f"models:/cancer/{version}"
    cases = [
        ((uri, "--data", "test.parquet", "--label", "y"), "no such column"),
        ((uri, "--data", "missing.parquet", "--label", "target"), "missing.parquet"),
        ((uri, "--data", "test.parquet", "--label", "target", "--slices", "age"), "no column 'age'"),
        ((uri, "--data", "test.parquet", "--label", "target", "--baseline", "champion"), "Promote a version"),
        (("models:/nope/1", "--data", "test.parquet", "--label", "target"), "nope"),
        ((uri, "--data", "test.parquet", "--label", "target", "--json", "no/such/dir/x.json"), "does not exist"),
    ]
    for args, expected in cases:
        done = evaluate_cli(*args)
        assert done.exit_code == 2, (args, done.output)
        assert expected in done.output, (args, done.output)
        assert "Traceback" not in done.output
    # nothing half-recorded: no evaluation run was opened for any of them
    client = embedded_client(project)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`mlops_nb.kind` = 'evaluation'"
    )
    assert runs == []


@pytest.mark.slow  # a kernel and Chromium: 25-100 s on this machine
def test_in_a_notebook_stage_the_report_displays_and_renders_offline_in_chromium(project: Path) -> None:
    import nbformat
    from nbclient import NotebookClient
    from playwright.sync_api import sync_playwright

    from tests.notebooks import write_notebook

    X_train, y_train, X_test, y_test = cancer()
    X_test.assign(target=y_test).to_parquet(project / "test.parquet")
    X_train.assign(target=y_train).to_parquet(project / "train.parquet")
    path = write_notebook(
        project / "evaluate.ipynb",
        "%load_ext mlops_nb\nimport mlops_nb as mnb, pandas as pd\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "train, test = pd.read_parquet('train.parquet'), pd.read_parquet('test.parquet')",
        "%%track evaluate\nmodel = LogisticRegression(max_iter=5000).fit(train.drop(columns='target'), train.target)\n"
        "evaluation = mnb.evaluate(model, test.drop(columns='target'), test.target,\n"
        "                          slices=['mean radius:quantile(4)'])\n"
        "evaluation",
        "open('report.html', 'w').write(evaluation.html(page=True)); print(evaluation.result['run_id'])",
    )
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(project)}}).execute()
    (shown,) = [o for o in nb.cells[1].outputs if o.output_type == "execute_result"]
    html = shown.data["text/html"]
    assert "Evaluation evaluation of LogisticRegression" in html and html.count("<svg") >= 7
    run_id = nb.cells[2].outputs[-1].text.split()[-1]
    assert embedded_client(project).get_run(run_id).data.tags["mlops_nb.stage"] == "evaluate"

    report = project / "report.html"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1250, "height": 900})
        requests: list[str] = []
        seen: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: seen.append(m.text) if m.type in ("error", "warning") else None)
        page.goto(report.as_uri())
        sizes = page.eval_on_selector_all("svg", "els => els.map(e => e.getBoundingClientRect().width)")
        page.screenshot(path=str(project / "report.png"), full_page=True)
        browser.close()
    assert requests == [report.as_uri()] and seen == []
    assert len(sizes) >= 7 and min(sizes) > 200
    assert np.isfinite(sizes).all()
