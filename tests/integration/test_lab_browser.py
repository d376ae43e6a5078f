"""The JupyterLab extension as a user sees it: real JupyterLab, real kernel, real MLflow store, Debian Chromium.

notebooks/train.ipynb is run three times (each in a fresh kernel, so three notebook runs): every stage shows
in the sidebar and on its cell's badge; the second run is all cache hits; after changing ``C`` only the stages
that read it re-run. Then two runs are compared (chart and stage diff, in the main area) and one is promoted
from the Registry view, once refused by a gate and once accepted. All at JupyterLab's default sidebar width.
Screenshots go to reports/screenshots/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import lab

pytestmark = [pytest.mark.slow, pytest.mark.skipif(lab.missing() is not None, reason=str(lab.missing()))]

STAGES = ["load", "clean", "split", "train", "evaluate"]
SHOTS = lab.REPO / "reports" / "screenshots"
RUN_TIMEOUT = 180_000  # ms: a cold kernel imports scikit-learn and MLflow


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def states(page, selector: str) -> dict[str, tuple[str, str]]:
    return page.eval_on_selector_all(
        selector, "els => Object.fromEntries(els.map(e => [e.dataset.stage, [e.dataset.status, e.dataset.cacheHit]]))"
    )


def wait_for_stages(page, expected: dict[str, tuple[str, str]]) -> None:
    """Until every badge and every sidebar row shows ``expected`` {stage: (status, cache hit)}."""
    checks = " && ".join(
        f"document.querySelector(`{sel}[data-stage='{stage}'][data-status='{status}'][data-cache-hit='{hit}']`)"
        for stage, (status, hit) in expected.items()
        for sel in (".mlops-nb-cell-badge", "#mlops-nb-sidebar tr.mlops-nb-stage-row")
    )
    try:
        page.wait_for_function(f"() => !!({checks})", timeout=RUN_TIMEOUT)
    except Exception:
        shot(page, "failed-wait")
        raise AssertionError(
            f"expected {expected}\nbadges: {states(page, '.mlops-nb-cell-badge')}\n"
            f"rows: {states(page, '#mlops-nb-sidebar tr.mlops-nb-stage-row')}"
        ) from None


def wait_idle(page) -> None:
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=RUN_TIMEOUT)


def set_c(page, value: str) -> None:
    """Type a new parameters cell, as a user would."""
    editor = page.locator(".jp-Notebook .jp-Cell").nth(2).locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.type(f"C = {value}\ntest_size = 0.25\nseed = 0\n")
    page.keyboard.press("Escape")


def test_sidebar_badges_compare_and_promote(project: Path, tmp_path_factory):
    lab.copy_notebook(project)
    with lab.running_lab(project, tmp_path_factory.mktemp("jupyter")) as server, lab.chromium() as page:
        try:
            check_the_whole_story(page, server)
        except BaseException:
            shot(page, "failed")
            raise


def check_the_whole_story(page, server) -> None:
    lab.open_notebook(page, server, "train.ipynb")
    sidebar_width = page.eval_on_selector("#mlops-nb-sidebar", "e => e.getBoundingClientRect().width")
    assert sidebar_width < 320  # JupyterLab's default: everything below must read at this width
    # Before any run: every %%track cell has a badge saying so.
    page.wait_for_function("() => document.querySelectorAll('.mlops-nb-cell-badge').length === 5")
    assert states(page, ".mlops-nb-cell-badge") == {s: ["NONE", "false"] for s in STAGES}
    status = page.inner_text(".mlops-nb-status-item")
    assert status.startswith("MLflow: train @ sqlite:///")  # the notebook's experiment and the store

    lab.run_command(page, "Run", "Run All Cells")
    wait_for_stages(page, {s: ("FINISHED", "false") for s in STAGES})
    wait_idle(page)
    shot(page, "1-first-run")
    rows = page.locator("#mlops-nb-sidebar tr.mlops-nb-stage-row")
    assert rows.count() == len(STAGES)
    evaluate = page.inner_text("#mlops-nb-sidebar tr[data-stage='evaluate']")
    assert "accuracy 0.91" in evaluate  # the headline metric, as the notebook prints it

    # A fresh kernel, same code and parameters: every stage is served from the cache.
    lab.run_command(page, "Run", "Restart Kernel and Run All", confirm=True)
    wait_for_stages(page, {s: ("FINISHED", "true") for s in STAGES})
    wait_idle(page)
    shot(page, "2-cache-hits")
    assert "cache hit" in page.inner_text(".mlops-nb-cell-badge[data-stage='train']")

    # Change C: the stages that read it (train) and those downstream (evaluate) re-run, the others hit.
    set_c(page, "0.1")
    lab.run_command(page, "Run", "Restart Kernel and Run All", confirm=True)
    wait_for_stages(
        page,
        {"load": ("FINISHED", "true"), "clean": ("FINISHED", "true"), "split": ("FINISHED", "true")}
        | {"train": ("FINISHED", "false"), "evaluate": ("FINISHED", "false")},
    )
    wait_idle(page)
    shot(page, "3-changed-c")
    # The kernel is idle: its run is open (RUNNING in MLflow until the kernel stops), not "running".
    page.wait_for_function(
        "() => document.querySelector('#mlops-nb-sidebar .mlops-nb-caption')?.textContent.includes('kernel idle')"
    )
    assert "running" not in page.inner_text("#mlops-nb-sidebar .mlops-nb-caption")

    # Runs: three runs of this notebook; compare the last two.
    page.click("#mlops-nb-sidebar .mlops-nb-tab[data-view='runs']")
    page.wait_for_function(
        "() => document.querySelectorAll('#mlops-nb-sidebar table.mlops-nb-runs tbody tr').length === 3",
        timeout=30_000,
    )
    rows = "#mlops-nb-sidebar table.mlops-nb-runs tbody tr"
    # Readable in the narrow list: each row has its headline metric; the idle kernel's run is not "●".
    assert page.inner_text("#mlops-nb-sidebar table.mlops-nb-runs th.mlops-nb-metric") == "accuracy"
    for _ in range(30):  # the open run's metrics reach MLflow from the kernel's sender: ⟳ until they are there
        shown = page.eval_on_selector_all(f"{rows} td.mlops-nb-metric", "els => els.map(e => e.textContent)")
        if "—" not in shown:
            break
        page.click("#mlops-nb-sidebar .mlops-nb-refresh")
        page.wait_for_timeout(1000)
    assert shown == ["0.9333", "0.9111", "0.9111"]
    assert page.get_attribute(f"{rows}:first-child", "data-state") == "idle"
    assert "●" not in page.inner_text(f"{rows}:first-child")
    names = page.eval_on_selector_all(
        f"{rows} input[type=checkbox]", "els => els.map(e => e.getAttribute('aria-label'))"
    )
    assert len(set(names)) == 3 and all(name.startswith("Select run ") for name in names), names
    blank = "els => els.filter(e => !e.textContent.trim()).length"
    assert page.eval_on_selector_all("#mlops-nb-sidebar th", blank) == 0  # every header has a name
    compare = page.locator("#mlops-nb-sidebar .mlops-nb-compare")
    assert compare.is_disabled()
    boxes = page.locator(f"{rows} input[type=checkbox]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    compare.click()
    # The comparison opens in the main area, beside the notebook, where the chart has room.
    panel = "#jp-main-dock-panel #mlops-nb-comparison"
    drawn = f"{panel} .mlops-nb-chart[data-drawn='true']"
    page.wait_for_selector(f"{drawn} svg, {drawn} canvas", timeout=30_000)
    page.wait_for_selector(f"{panel} .mlops-nb-diff-view", timeout=30_000)
    changed = page.eval_on_selector_all(
        f"{panel} tr.mlops-nb-stage-diff",
        "els => Object.fromEntries(els.map(e => [e.dataset.stage, e.dataset.changed]))",
    )
    assert changed == {"load": "false", "clean": "false", "split": "false", "train": "true", "evaluate": "true"}
    assert "params: C" in page.inner_text(f"{panel} tr.mlops-nb-stage-diff[data-stage='train']")
    # The notebook runs carry the C their train stage read: the diff says 1.0 -> 0.1, not "1.0 -> —".
    assert page.inner_text(f"{panel} .mlops-nb-diff-view tr[data-param='C']").split() == ["C", "1.0", "→", "0.1"]
    # parallel coordinates (200 px) above the metric-vs-parameter grid, there because C is a parameter
    height = page.eval_on_selector(f"{drawn} .vega-embed", "e => e.getBoundingClientRect().height")
    assert height > 350
    assert page.locator(f"{panel} .mlops-nb-metric-table tr[data-metric='accuracy']").count() == 1
    assert page.locator(f"{panel} .mlops-nb-metric-table tr[data-param='C']").count() == 1
    assert page.eval_on_selector_all(f"{panel} th", blank) == 0
    box = page.eval_on_selector(panel, "e => e.getBoundingClientRect().width")
    assert box > 2 * sidebar_width
    shot(page, "4-compare")

    # Registry: a gate that fails refuses the promotion and says which; then an accepted one.
    page.click("#mlops-nb-sidebar .mlops-nb-tab[data-view='registry']")
    page.wait_for_selector("#mlops-nb-sidebar form.mlops-nb-promote")
    empty = page.wait_for_selector("#mlops-nb-sidebar .mlops-nb-model-list .mlops-nb-empty")
    assert "No registered model yet" in empty.inner_text()
    run_id = page.input_value("#mlops-nb-sidebar input[name=run_id]")
    assert len(run_id) == 32  # the notebook's latest run, filled in
    page.fill("#mlops-nb-sidebar input[name=name]", "wine")
    page.fill("#mlops-nb-sidebar textarea[name=require]", "accuracy >= 0.999")
    page.click("#mlops-nb-sidebar form.mlops-nb-promote button[type=submit]")
    page.wait_for_selector("#mlops-nb-sidebar .mlops-nb-promote-result[data-outcome='refused'] li[data-ok='false']")
    assert "accuracy >= 0.999" in page.inner_text("#mlops-nb-sidebar .mlops-nb-promote-result")
    page.fill("#mlops-nb-sidebar textarea[name=require]", "accuracy >= 0.8")
    page.click("#mlops-nb-sidebar form.mlops-nb-promote button[type=submit]")
    page.wait_for_selector("#mlops-nb-sidebar .mlops-nb-promote-result[data-outcome='promoted']", timeout=60_000)
    page.wait_for_selector("#mlops-nb-sidebar .mlops-nb-versions tr[data-version='1'][data-aliases='champion']")
    shot(page, "5-registry")
    assert server.api("mlops-nb/api/models/wine")["aliases"] == {"champion": "1"}

    # The palette command moves the keyboard focus into the sidebar.
    page.locator(".jp-Notebook .jp-Cell").nth(1).click()
    page.keyboard.press("Escape")  # command mode: the focus is on the notebook
    page.keyboard.press("Control+Shift+c")
    page.wait_for_selector(".lm-CommandPalette-input")
    page.keyboard.type("Show the MLOps sidebar")
    page.keyboard.press("Enter")
    page.wait_for_function("() => !!document.activeElement?.closest('#mlops-nb-sidebar')")

    # A new browser session (a reload, another tab): nothing ran here yet, so each badge says which run it is from.
    other = page.context.browser.new_page(viewport={"width": 1500, "height": 950})
    lab.open_notebook(other, server, "train.ipynb")
    earlier = ".mlops-nb-cell-badge[data-stage='train'][data-earlier='true']"
    other.wait_for_selector(earlier, timeout=30_000)
    assert "earlier notebook run " in other.inner_text(earlier)
    other.close()

    # "Track this cell" from the cell's context menu: a new cell becomes a stage, with its badge.
    page.locator(".jp-Notebook .jp-Cell").last.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.type("report = len(predictions)")
    page.keyboard.press("Escape")
    page.locator(".jp-Notebook .jp-Cell").last.click(button="right")
    page.click(".lm-Menu-itemLabel:text-is('Track this cell')")
    page.wait_for_selector(".mlops-nb-cell-badge[data-stage='report'][data-status='NONE']")
    source = page.locator(".jp-Notebook .jp-Cell").last.locator(".cm-content").inner_text()
    assert source.splitlines() == ["%%track report", "report = len(predictions)"]

    # The dark theme: the sidebar and badges use JupyterLab's theme variables.
    page.click("li.lm-MenuBar-item:has-text('Settings')")
    page.hover(".lm-Menu-itemLabel:text-is('Theme')")
    page.click(".lm-Menu-itemLabel:text-is('JupyterLab Dark')")
    page.wait_for_selector("body[data-jp-theme-light='false']", state="attached")
    page.click("#mlops-nb-sidebar .mlops-nb-tab[data-view='stages']")
    page.wait_for_selector("#mlops-nb-sidebar tr.mlops-nb-stage-row[data-stage='train']")
    shot(page, "6-dark")

    # Chromium logs every non-2xx answer: the refused promotion's 409 is the point of that step
    expected = "409 (Conflict) @ " + server.url + "/mlops-nb/api/models/wine/promote"
    assert [e for e in page.console_errors if expected not in e] == []
