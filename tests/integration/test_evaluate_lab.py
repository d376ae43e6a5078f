"""An evaluation's report seen from JupyterLab's MLOps sidebar: real JupyterLab, real MLflow store, Chromium.

A run of ``eval.ipynb`` evaluated a model in its stage ``evaluate`` (with a baseline and a skipped part). In the
sidebar's Runs view the user selects it and clicks "Evaluation": the main area shows its headline (metrics with
intervals, the baseline's paired deltas, the worst slices, what was skipped) and the report in a sandboxed
frame. The REST routes behind it refuse a bad name (400) and an evaluation the run never logged (404).
Screenshot: reports/screenshots/evaluation-panel.png.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mlops_nb as mnb
from tests import lab
from tests.integration.test_evaluate import cancer

pytestmark = [pytest.mark.slow, pytest.mark.skipif(lab.missing() is not None, reason=str(lab.missing()))]
SHOTS = lab.REPO / "reports" / "screenshots"


def record(project: Path) -> tuple[str, str]:
    """A notebook run of eval.ipynb whose stage evaluate ran mnb.evaluate: (the run, the stage run)."""
    notebook = project / "eval.ipynb"
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Evaluated")], metadata=kernel), notebook
    )
    X_train, y_train, X_test, y_test = cancer()
    good = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X_train, y_train)
    weak = make_pipeline(StandardScaler(), LogisticRegression(C=1e-3)).fit(X_train, y_train)
    labels = y_test.astype(float)
    labels.iloc[0] = np.nan
    tags = {"mlops_nb.notebook": str(notebook)}
    with mnb.start_run("eval", kind="notebook", tags=tags) as run, mnb.stage("evaluate"):
        evaluation = mnb.evaluate(weak, X_test, labels, baseline=good, explain=False)
    assert mnb.flush(120)
    return run.run_id, evaluation.result["run_id"]


def test_the_runs_view_opens_an_evaluations_headline_and_report(project: Path, tmp_path_factory) -> None:
    run_id, stage_run = record(project)
    with lab.running_lab(project, tmp_path_factory.mktemp("jupyter")) as server, lab.chromium() as page:
        try:
            code, found = lab.status_of(server, f"mlops-nb/api/runs/{run_id}/evaluations")
            assert code == 200, found
            assert [(e["name"], e["stage"], e["run_id"]) for e in found["evaluations"]] == [
                ("evaluation", "evaluate", stage_run)
            ]
            assert lab.status_of(server, f"mlops-nb/api/runs/{stage_run}/report?name=..%2Fsecret")[0] == 400
            code, answer = lab.status_of(server, f"mlops-nb/api/runs/{stage_run}/report?name=holdout")
            assert code == 404 and "logged no evaluation 'holdout'" in answer["message"]

            lab.open_notebook(page, server, "eval.ipynb")
            page.click("#mlops-nb-sidebar .mlops-nb-tab[data-view='runs']")
            row = f"#mlops-nb-sidebar table.mlops-nb-runs tr[data-run-id='{run_id}']"
            page.wait_for_selector(row, timeout=30_000)
            button = page.locator("#mlops-nb-sidebar button.mlops-nb-evaluate")
            assert button.is_disabled()  # nothing selected yet
            page.check(f"{row} input[type=checkbox]")
            button.click()

            item = page.locator("#mlops-nb-evaluation .mlops-nb-evaluation-item[data-name='evaluation']")
            item.wait_for(timeout=30_000)
            text = item.inner_text()
            assert "(stage evaluate)" in text and "vs baseline Pipeline" in text and "paired interval" in text
            assert "1 rows have no label" in text and "Worst slices" in text
            accuracy = item.locator("tr[data-metric='accuracy_score']").inner_text()
            assert accuracy.split("\t")[1] == f"{found['evaluations'][0]['metrics']['accuracy_score']:.4g}"
            frame = page.frame_locator("#mlops-nb-evaluation iframe.mlops-nb-report")
            frame.locator("h1").wait_for(timeout=30_000)
            assert frame.locator("h1").inner_text() == "Evaluation evaluation of Pipeline"
            assert frame.locator("svg").count() >= 4  # the plots, drawn inline
            assert page.get_attribute("#mlops-nb-evaluation iframe.mlops-nb-report", "sandbox") == ""
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "evaluation-panel.png"))
        except BaseException:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "evaluation-panel-failed.png"))
            raise
