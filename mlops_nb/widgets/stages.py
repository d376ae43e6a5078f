"""The stage table of a kernel session: ``%mlops stages`` (a DataFrame) and ``%mlops panel`` (a live widget)."""

from __future__ import annotations

import html
import urllib.parse
from typing import Any

from mlops_nb.redaction import redact_uri
from mlops_nb.stages.stage import StageRecord, StageRunner
from mlops_nb.tracking.recorder import get_recorder

COLUMNS = ["stage", "status", "duration_s", "cache_hit", "run_id", "note"]


# A kernel run by ``mlops-nb run`` only journals: the job's process creates the MLflow runs, so the kernel
# never learns their ids (they are the job run's child runs in MLflow).
IN_JOB = "in the job's run"


def _run_id(record: StageRecord) -> str:
    return record.run_id or (IN_JOB if get_recorder().sender is None else "")


def _row(record: StageRecord) -> dict[str, Any]:
    return {
        "stage": record.name,
        "status": record.status,
        "duration_s": round(record.duration, 3),
        "cache_hit": record.cache_hit,
        "run_id": _run_id(record),
        "note": record.note,
    }


def stage_table(records: list[StageRecord]) -> Any:
    """This session's stages as a pandas DataFrame, one row per execution."""
    import pandas as pd

    return pd.DataFrame([_row(r) for r in records], columns=COLUMNS)


def _run_link(run_id: str) -> str:
    if not run_id:
        return "<i>sending…</i>"
    if run_id == IN_JOB:
        return f"<i>{IN_JOB}</i>"
    # The id comes from the tracking server: as hostile as any other value it sends.
    shown = f"<code>{html.escape(run_id)}</code>"
    uri = redact_uri(get_recorder().settings.tracking_uri)  # the link lands in the saved notebook
    if uri.startswith(("http://", "https://")):
        href = f"{uri.rstrip('/')}/#/runs/{urllib.parse.quote(run_id, safe='')}"
        return f'<a href="{html.escape(href)}" target="_blank">{shown}</a>'
    return shown


_STATUS_COLOURS = {"RUNNING": "#1f6feb", "FINISHED": "#1a7f37", "FAILED": "#cf222e"}


class StagePanel:
    """An ipywidgets panel of the stage table that re-renders whenever a stage starts or ends."""

    def __init__(self, runner: StageRunner) -> None:
        import ipywidgets

        self.runner = runner
        self.widget = ipywidgets.HTML(layout=ipywidgets.Layout(width="100%"))
        runner.listeners.append(self._render)
        self._render()

    def _render(self, _record: StageRecord | None = None) -> None:
        rows = []
        for r in self.runner.records:
            colour = _STATUS_COLOURS.get(r.status, "#57606a")
            hit = "⟳ cache" if r.cache_hit else ""
            rows.append(
                f"<tr><td><b>{html.escape(r.name)}</b></td>"
                f'<td style="color:{colour}">{r.status}</td><td>{r.duration:.2f} s</td><td>{hit}</td>'
                f"<td>{_run_link(_run_id(r))}</td><td>{html.escape(r.note)}</td></tr>"
            )
        body = "".join(rows) or '<tr><td colspan="6"><i>no stage has run in this session yet</i></td></tr>'
        self.widget.value = (
            '<table class="mlops-nb-stages"><thead><tr><th>stage</th><th>status</th><th>duration</th>'
            f"<th>cache</th><th>MLflow run</th><th></th></tr></thead><tbody>{body}</tbody></table>"
        )
