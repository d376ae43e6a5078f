"""The Runs tab of ``%mlops panel``, for front ends without the JupyterLab extension (VS Code, Notebook 7,
Colab): this notebook's runs; select two or more to compare them with the comparison chart of
``charts.py`` (the same Vega-Lite spec as the sidebar) and, for two, why they differ (``diff.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlops_nb.tracking.records import RunDetail, RunSummary
from mlops_nb.widgets.charts import compare_spec, first_metrics

VEGALITE = "application/vnd.vegalite.v5+json"
PAGE = 100


def with_stage_params(run: RunSummary, detail: Callable[[str], RunDetail]) -> RunSummary:
    """``run`` with the parameters its stages recorded (a notebook run keeps ``C`` on the stage that read it,
    not on itself); a run that has parameters of its own (a job) is returned as it is."""
    if run["params"]:
        return run
    params = dict(run["params"])
    for stage in sorted(detail(run["run_id"])["stages"], key=lambda s: s["start_time"], reverse=True):
        for name, value in stage["params"].items():
            params.setdefault(name, value)
    return RunSummary(**{**run, "params": params})


def comparison(runs: list[RunSummary], detail: Callable[[str], RunDetail]) -> list[Any]:
    """What the Compare button shows: the chart as a Vega-Lite output, then for two runs their diff."""
    from mlops_nb.config import load_settings
    from mlops_nb.widgets.diff import diff

    if len(runs) < 2:
        return ["Select two or more runs to compare them."]
    compared = [with_stage_params(r, detail) for r in runs]
    shown: list[Any] = [{VEGALITE: compare_spec(compared, first=first_metrics(load_settings()))}]
    if len(runs) == 2:
        shown.append(diff(runs[1]["run_id"], runs[0]["run_id"]))  # newest first in the list: a is the older
    return shown


def _label(run: RunSummary) -> str:
    from datetime import datetime

    when = datetime.fromtimestamp(run["start_time"] / 1000).strftime("%Y-%m-%d %H:%M:%S")
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(run["metrics"].items())[:3])
    return f"{when}  {run['run_id'][:8]}  {run['status'].lower()}  {metrics}"


class RunsPanel:
    """This notebook's runs, newest first (``PAGE`` of them), a Compare button and where the comparison shows."""

    def __init__(self, notebook: Callable[[], str | None]) -> None:
        import ipywidgets

        self._notebook = notebook
        self._runs: dict[str, RunSummary] = {}
        self.select = ipywidgets.SelectMultiple(rows=8, layout=ipywidgets.Layout(width="100%"))
        refresh = ipywidgets.Button(description="Refresh", icon="refresh")
        compare = ipywidgets.Button(description="Compare", button_style="primary")
        self.output = ipywidgets.Output()
        refresh.on_click(lambda _: self.refresh())
        compare.on_click(lambda _: self.compare())
        self.widget = ipywidgets.VBox([ipywidgets.HBox([refresh, compare]), self.select, self.output])

    def refresh(self) -> None:
        from mlops_nb.tracking.reading import list_runs
        from mlops_nb.tracking.recorder import get_recorder

        get_recorder().flush(timeout=15)  # this session's runs are in MLflow before they are listed
        notebook = self._notebook()
        page = list_runs(notebook, max_results=PAGE)
        self._runs = {r["run_id"]: r for r in page["runs"]}
        self.select.options = [(_label(r), r["run_id"]) for r in page["runs"]]

    def compare(self) -> None:
        from IPython.display import clear_output, display

        from mlops_nb.tracking.reading import run_detail

        runs = [self._runs[run_id] for run_id in self.select.value]
        with self.output:
            clear_output()
            for shown in comparison(runs, run_detail):
                display(shown, raw=isinstance(shown, dict))


def panel(runner: Any, notebook: Callable[[], str | None]) -> Any:
    """``%mlops panel``: the live stage table, the Runs tab (the runs of ``notebook()``) and the Registry tab."""
    import ipywidgets

    from mlops_nb.widgets.registry import RegistryPanel
    from mlops_nb.widgets.stages import StagePanel

    runs, registry = RunsPanel(notebook), RegistryPanel()
    tabs = ipywidgets.Tab(children=[StagePanel(runner).widget, runs.widget, registry.widget])
    for index, title in enumerate(("Stages", "Runs", "Registry")):
        tabs.set_title(index, title)
    refresh = {1: runs.refresh, 2: registry.refresh}
    tabs.observe(lambda change: change["new"] in refresh and refresh[change["new"]](), names="selected_index")
    return tabs
