"""A study of ``mlops-nb tune`` seen from JupyterLab: real kernels, real MLflow store, real JupyterLab, Chromium.

``fit.ipynb`` is tuned (8 trials, random sampler, a median pruner fed by ``mnb.report``): some trials
complete, some are pruned. The REST route behind the Studies view lists the study and answers its trials,
their fANOVA importances and the chart's Vega-Lite spec (built in Python: ``widgets/study_charts.py``); it
refuses a run that is not a study. In the browser the user opens the Studies view in the left sidebar,
clicks the study, and the main area shows the best trial, the charts (best so far, parallel coordinates,
importances) and the trials with the pruned ones marked. Screenshot: reports/screenshots/lab-study.png.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import lab
from tests.notebooks import mlops_nb, write_notebook

pytestmark = [pytest.mark.slow, pytest.mark.skipif(lab.missing() is not None, reason=str(lab.missing()))]
SHOTS = lab.REPO / "reports" / "screenshots"
FIT = (
    "%load_ext mlops_nb",
    "%%track fit\nimport math\nimport mlops_nb as mnb\nfor step in range(4):\n"
    "    loss = (math.log10(lr) + 1.5) ** 2 + (0.3 if kind == 'b' else 0.0) + 1 / (step + 1)\n"
    "    mnb.report(loss, step)\nmnb.log_metric('loss', loss)",
)


def tuned(project: Path) -> dict:
    write_notebook(project / "fit.ipynb", *FIT, parameters="lr = 0.1\nkind = 'a'")
    done = mlops_nb(
        "tune", "fit.ipynb", "--space", "lr=loguniform(1e-3,1)", "--space", "kind=choice(a,b)", "--sampler",
        "random", "--seed", "0", "--trials", "8", "--metric", "loss", "--direction", "minimize", "--pruner",
        "median(n_startup_trials=3)", "--parallel", "2", "--json", "study.json", cwd=project,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads((project / "study.json").read_text())


def test_the_studies_view_shows_a_studys_charts_and_its_pruned_trials(project: Path, tmp_path_factory) -> None:
    result = tuned(project)
    states = {t["trial"]: t["state"] for t in result["trials"]}
    assert "COMPLETE" in states.values() and "PRUNED" in states.values(), states
    study_id, best = result["run_id"], result["best"]
    with lab.running_lab(project, tmp_path_factory.mktemp("jupyter")) as server, lab.chromium() as page:
        try:
            code, listed = lab.status_of(server, "mlops-nb/api/studies")
            assert code == 200, listed
            assert [r["run_id"] for r in listed["runs"]] == [study_id]
            code, view = lab.status_of(server, f"mlops-nb/api/studies/{study_id}")
            assert code == 200, view
            assert (view["metric"], view["direction"]) == ("loss", "minimize")
            assert {t["trial"]: t["state"] for t in view["trials"]} == states
            assert [t["trial"] for t in view["trials"] if t["best"]] == [best["trial"]]
            assert set(view["importances"]) == {"lr", "kind"}
            assert sum(view["importances"].values()) == pytest.approx(1.0)
            progress, parallel, importance = view["spec"]["vconcat"]
            rows = {r["trial"]: r for r in progress["data"]["values"]}
            assert rows[max(rows)]["best"] == pytest.approx(best["value"])  # the best so far ends at the best
            assert all(rows[n]["mark"] is not None for n, s in states.items() if s == "PRUNED")  # marked
            assert {r["axis"] for r in parallel["data"]["values"]} == {"lr", "kind", "loss"}
            assert {r["param"] for r in importance["data"]["values"]} == {"lr", "kind"}
            trial_run = next(t["run_id"] for t in view["trials"])
            code, answer = lab.status_of(server, f"mlops-nb/api/studies/{trial_run}")
            assert code == 404 and "is not a study run" in answer["message"]
            assert lab.status_of(server, "mlops-nb/api/studies/no-such-run")[0] == 404

            lab.open_notebook(page, server, "fit.ipynb")
            page.click("li[data-id='mlops-nb-studies']")
            item = page.locator(f"#mlops-nb-studies button.mlops-nb-study-item[data-run-id='{study_id}']")
            item.wait_for(timeout=30_000)
            assert f"best loss {best['value']:.4g}" in item.inner_text()
            item.click()
            panel = "#jp-main-dock-panel #mlops-nb-study"
            drawn = f"{panel} .mlops-nb-chart[data-drawn='true']"
            page.wait_for_selector(f"{drawn} svg, {drawn} canvas", timeout=30_000)
            top = page.inner_text(f"{panel} .mlops-nb-study-top")
            assert top.startswith(f"Best: trial {best['trial']}, loss = {best['value']:.4g}")
            shown = page.eval_on_selector_all(
                f"{panel} tr[data-trial]", "els => Object.fromEntries(els.map(e => [e.dataset.trial, e.dataset.state]))"
            )
            assert {int(k): v for k, v in shown.items()} == states
            pruned = page.locator(f"{panel} tr[data-state='PRUNED'] td.mlops-nb-trial-pruned").first
            assert pruned.inner_text() == "pruned"
            assert "★" in page.inner_text(f"{panel} tr[data-trial='{best['trial']}']")
            height = page.eval_on_selector(f"{drawn} .vega-embed", "e => e.getBoundingClientRect().height")
            assert height > 450  # three charts: best so far, parallel coordinates, importances
            assert not [e for e in page.console_errors if "mlops" in e.lower()]
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "lab-study.png"))
            page.locator(panel).screenshot(path=str(SHOTS / "lab-study-panel.png"))
        except BaseException:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "lab-study-failed.png"))
            raise
