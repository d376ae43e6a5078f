"""The stage graph in the sidebar's Stages view, as a user sees it: real JupyterLab, real jobs, Chromium.

``branches.ipynb`` loads data, then two independent branches (``left`` reads the parameter ``rate``), then a
``report`` stage joining them. It was run twice by ``mlops-nb run``, the second time with another ``rate``:
the graph shows every stage with its state (``left`` and ``report`` ran again, ``load`` and ``right`` were
cache hits), the edges labelled with the names they carry, the parameters and the pre-flight verdict. A
notebook whose stage reads a name nobody provides shows the problem in words.
Screenshot: reports/screenshots/lab-graph.png (docs/images/lab-graph.png is a copy of one).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import lab
from tests.notebooks import mlops_nb, write_notebook

pytestmark = [pytest.mark.slow, pytest.mark.skipif(lab.missing() is not None, reason=str(lab.missing()))]
SHOTS = lab.REPO / "reports" / "screenshots"

BRANCHES = (
    "%load_ext mlops_nb",
    "%%track load\nvalues = list(range(n))",
    "%%track left\nscaled = [v * rate for v in values]",
    "%%track right\nsquares = [v * v for v in values]",
    "%%track report\nimport mlops_nb as mnb\nmnb.log_metric('total', sum(scaled) + sum(squares))",
)


def test_the_stages_view_draws_the_graph_with_states_edges_and_preflight(project: Path, tmp_path_factory) -> None:
    write_notebook(project / "branches.ipynb", *BRANCHES, parameters="n = 5\nrate = 1.5")
    write_notebook(project / "broken.ipynb", "%load_ext mlops_nb", "%%track a\nx = 1", "%%track b\ny = x + missing")
    for extra in ([], ["-p", "rate", "2.0"]):
        done = mlops_nb("run", "branches.ipynb", "--experiment", "branches", *extra, cwd=project)
        assert done.returncode == 0, done.stderr

    with lab.running_lab(project, tmp_path_factory.mktemp("jupyter")) as server, lab.chromium() as page:
        try:
            lab.open_notebook(page, server, "branches.ipynb")
            graph = "#mlops-nb-sidebar .mlops-nb-graph"
            page.wait_for_selector(f"{graph}[data-drawn='true']", timeout=60_000)
            node = f"{graph} g.mlops-nb-graph-node"
            # the states come from the notebook's latest run, as the Stages table shows them
            page.wait_for_selector(f"{node}[data-stage='load'][data-cache-hit='true']", timeout=60_000)
            nodes = page.eval_on_selector_all(
                node,
                "els => Object.fromEntries(els.map(e => [e.dataset.stage, [e.dataset.status, e.dataset.cacheHit,"
                " e.querySelector('.mlops-nb-graph-state').textContent]]))",
            )
            assert nodes == {
                "load": ["FINISHED", "true", "✓ cache hit"],
                "left": ["FINISHED", "false", "✓ ran"],
                "right": ["FINISHED", "true", "✓ cache hit"],
                "report": ["FINISHED", "false", "✓ ran"],
            }
            assert "params: rate" in page.text_content(f"{node}[data-stage='left']")
            edges = page.eval_on_selector_all(
                f"{graph} g.mlops-nb-graph-edge", "els => els.map(e => [e.dataset.from, e.dataset.to, e.dataset.names])"
            )
            assert sorted(edges) == [
                ["left", "report", "scaled"],
                ["load", "left", "values"],
                ["load", "right", "values"],
                ["right", "report", "squares"],
            ]
            labels = page.eval_on_selector_all(f"{graph} text.mlops-nb-graph-label", "ls => ls.map(e => e.textContent)")
            assert sorted(labels) == ["scaled", "squares", "values", "values"]
            # the two branches side by side, below load and above report
            box = {s: page.locator(f"{node}[data-stage='{s}'] rect").bounding_box() for s in nodes}
            assert box["left"]["y"] == box["right"]["y"] > box["load"]["y"]
            assert box["report"]["y"] > box["left"]["y"]
            assert box["left"]["x"] + box["left"]["width"] <= box["right"]["x"]
            sidebar = page.locator("#mlops-nb-sidebar").bounding_box()
            assert box["right"]["x"] + box["right"]["width"] <= sidebar["x"] + sidebar["width"]  # no scrolling
            text = page.inner_text(graph)
            assert "rate = 1.5" in text and "n = 5" in text
            assert "The pre-flight check found no problem" in text
            assert not page.console_errors, page.console_errors
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.locator("#mlops-nb-sidebar").screenshot(path=str(SHOTS / "lab-graph.png"))

            lab.open_notebook(page, server, "broken.ipynb")
            page.wait_for_selector(f"{graph} .mlops-nb-preflight[data-problems='1']", timeout=60_000)
            problem = page.inner_text(f"{graph} .mlops-nb-preflight li[data-stage='b']")
            assert "missing" in problem and "no stage" in problem
            assert page.get_attribute(f"{node}[data-stage='b']", "data-status") == "NONE"
        except BaseException:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "graph-failed.png"))
            raise
