"""The comparison chart's metric picker in JupyterLab: real JupyterLab, real MLflow store, Chromium.

Two runs of ``eval.ipynb`` evaluated a model each (``mnb.evaluate``: its metrics, worst slices,
cross-validation): more metrics than the chart's 12 axes. The user compares them from the sidebar's Runs view;
the chart says what it left out, ``worst_slice.recall_score`` among them. The user ticks it in the picker
above the chart, and the chart is drawn again with it as an axis. Screenshot:
reports/screenshots/compare-metrics.png (docs/images/ holds a copy of one).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mlops_nb as mnb
from tests import lab
from tests.integration.test_evaluate import cancer

pytestmark = [pytest.mark.slow, pytest.mark.skipif(lab.missing() is not None, reason=str(lab.missing()))]
SHOTS = lab.REPO / "reports" / "screenshots"
DOC_SHOT = lab.REPO / "reports" / "screenshots" / "compare-metrics.png"  # docs/images/ holds a copy of one
PICKED = "worst_slice.recall_score"


def record(project: Path) -> list[str]:
    """Two notebook runs of eval.ipynb, C = 1 and 0.01, each evaluated with declared slices and 3-fold CV."""
    notebook = project / "eval.ipynb"
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Two")], metadata=kernel), notebook)
    X_train, y_train, X_test, y_test = cancer()
    ids = []
    for c in (1.0, 0.01):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)).fit(X_train, y_train)
        with mnb.start_run(f"C={c}", kind="notebook", tags={"mlops_nb.notebook": str(notebook)}) as run:
            mnb.log_params({"C": c})
            mnb.evaluate(model, X_test, y_test, slices=["mean radius:quantile(3)"], cv=3, explain=False)
        ids.append(run.run_id)
    assert mnb.flush(120)
    return ids


def axis_names(page, drawn: str) -> set[str]:
    return set(page.eval_on_selector_all(f"{drawn} svg text", "els => els.map(e => e.textContent)"))


def lab_left(page) -> float:
    """Where the main area starts (right of the sidebar)."""
    return page.eval_on_selector("#jp-main-dock-panel", "e => e.getBoundingClientRect().left")


def test_a_user_picks_a_worst_slice_metric_and_the_chart_draws_it(project: Path, tmp_path_factory) -> None:
    run_ids = record(project)
    with lab.running_lab(project, tmp_path_factory.mktemp("jupyter")) as server, lab.chromium(1400, 1000) as page:
        try:
            lab.open_notebook(page, server, "eval.ipynb")
            page.click("#mlops-nb-sidebar .mlops-nb-tab[data-view='runs']")
            for run_id in run_ids:
                row = f"#mlops-nb-sidebar table.mlops-nb-runs tr[data-run-id='{run_id}']"
                page.wait_for_selector(row, timeout=30_000)
                page.check(f"{row} input[type=checkbox]")
            page.click("#mlops-nb-sidebar .mlops-nb-compare")

            panel = "#jp-main-dock-panel #mlops-nb-comparison"
            drawn = f"{panel} .mlops-nb-chart[data-drawn='true']"
            page.wait_for_selector(f"{drawn} svg", timeout=60_000)
            picker = f"{panel} fieldset.mlops-nb-metric-picker"
            choice = page.locator(f"{picker} label[data-metric='{PICKED}']")
            # by default the chart is full (12 axes) and says what it left out; the slice metric is not drawn
            assert choice.get_attribute("data-drawn") == "false" and not choice.locator("input").is_checked()
            before = axis_names(page, drawn)
            assert PICKED not in before and "accuracy_score" in before and "C" in before
            assert any(t.endswith("more metrics: choose them above") for t in before), before
            listed = page.eval_on_selector_all(f"{picker} label", "els => els.map(e => e.dataset.metric)")
            assert listed[0] == "accuracy_score" and PICKED in listed and len(listed) > 12

            choice.locator("input").check()
            page.wait_for_selector(f"{picker} label[data-metric='{PICKED}'][data-drawn='true']", timeout=30_000)
            page.wait_for_selector(f"{drawn} svg", timeout=30_000)
            after = axis_names(page, drawn)
            assert PICKED in after and "C" in after  # the picked metric is an axis now, the parameter still
            # the chart was full: the last of the others is left out, and both the chart and the picker say so
            assert any(t.endswith("more metrics: choose them above") for t in after), after
            assert page.locator(f"{picker} .mlops-nb-left-out").count() == 1
            assert "left out: untick some" in page.inner_text(f"{picker} .mlops-nb-metric-count")
            assert not page.console_errors, page.console_errors
            # the picture for the docs: the comparison widened over the notebook, the picker and the chart in view
            handle = page.locator("#jp-main-dock-panel > .lm-DockPanel-handle:visible").first.bounding_box()
            y = handle["y"] + handle["height"] / 2
            page.mouse.move(handle["x"] + handle["width"] / 2, y)
            page.mouse.down()
            page.mouse.move(lab_left(page) + 40, y, steps=5)
            page.mouse.up()
            page.evaluate(f"document.querySelector({picker!r}).scrollIntoView({{block: 'start'}})")
            page.eval_on_selector(f"{picker} .mlops-nb-metric-choices", "e => (e.scrollTop = 0)")
            page.wait_for_timeout(500)  # the chart host is redrawn at the new width
            page.locator(panel).screenshot(path=str(DOC_SHOT))
        except BaseException:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "compare-metrics-failed.png"))
            raise
