"""``mnb.diff(a, b)`` in a notebook: why two runs differ, shown as HTML (the same record as ``mlops-nb diff``)."""

from __future__ import annotations

import html
import math
from typing import Any

from mlops_nb.tracking.diff import changes
from mlops_nb.tracking.records import RunDiff

_STYLE = (
    "<style>.mnb-diff table{border-collapse:collapse;margin:4px 0 10px}"
    ".mnb-diff td,.mnb-diff th{padding:2px 10px;text-align:left;border-bottom:1px solid #8884}"
    ".mnb-diff .up{color:#1a7f37}.mnb-diff .down{color:#cf222e}.mnb-diff .why{font-weight:600}"
    ".mnb-diff pre{margin:2px 0 6px;padding:4px;background:#8881;font-size:12px}"
    ".mnb-diff .add{color:#1a7f37}.mnb-diff .del{color:#cf222e}</style>"
)


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return "nan" if isinstance(value, float) and math.isnan(value) else f"{value:.4g}"


def _delta(value: float | None) -> str:
    if value is None:
        return ""
    css = "up" if value > 0 else "down" if value < 0 else ""
    return f'<span class="{css}">{value:+.4g}</span>'


def _code(diff: str) -> str:
    lines = []
    for line in diff.splitlines():
        css = "add" if line.startswith("+") else "del" if line.startswith("-") else ""
        lines.append(f'<span class="{css}">{html.escape(line)}</span>')
    return "<pre>" + "\n".join(lines) + "</pre>"


class RunDiffView:
    """The differences between two runs; displays as HTML, ``.record`` is the ``mlops-nb diff --json`` record."""

    def __init__(self, record: RunDiff) -> None:
        self.record = record

    def __repr__(self) -> str:
        changed = [s["stage"] for s in self.record["stages"] if changes(s) != "unchanged"]
        return f"<RunDiff {self.record['a']} -> {self.record['b']}: stages changed: {', '.join(changed) or 'none'}>"

    def _repr_html_(self) -> str:
        r = self.record
        e = html.escape
        parts = [
            _STYLE,
            '<div class="mnb-diff">',
            f"<div>a = <code>{e(r['a'])}</code>, b = <code>{e(r['b'])}</code></div>",
        ]
        if r["params"]:
            rows = "".join(
                f"<tr><td>{e(k)}</td><td>{e(str(a))} → {e(str(b))}</td></tr>" for k, (a, b) in r["params"].items()
            )
            parts.append(f"<b>params</b><table><tr><th>name</th><th>a → b</th></tr>{rows}</table>")
        if r["metrics"]:
            rows = "".join(
                f"<tr><td>{e(k)}</td><td>{_num(a)}</td><td>{_num(b)}</td><td>{_delta(d)}</td></tr>"
                for k, (a, b, d) in r["metrics"].items()
            )
            parts.append(f"<b>metrics</b><table><tr><th>name</th><th>a</th><th>b</th><th>b - a</th></tr>{rows}</table>")
        rows = []
        for s in r["stages"]:
            hits = " / ".join("—" if h is None else "hit" if h else "ran" for h in s["cache_hit"])
            moved = ", ".join(f"{e(k)} {_num(v[0])} → {_num(v[1])}" for k, v in s["metrics"].items() if v[0] != v[1])
            code = _code(s["code_diff"]) if s["code_diff"] else ""
            rows.append(
                f"<tr><td><b>{e(s['stage'])}</b></td><td class='why'>{e(changes(s))}{code}</td>"
                f"<td>{hits}</td><td>{moved}</td></tr>"
            )
        parts.append(
            "<b>stages</b><table><tr><th>stage</th><th>what changed</th><th>cache a / b</th><th>metrics</th></tr>"
            + "".join(rows)
            + "</table></div>"
        )
        return "".join(parts)


def diff(a: Any, b: Any) -> RunDiffView:
    """Why run ``b`` differs from run ``a`` (run ids, or runs of this session)."""
    from mlops_nb.tracking.diff import diff_runs
    from mlops_nb.tracking.reading import run_detail, stage_code
    from mlops_nb.tracking.recorder import get_recorder

    get_recorder().flush()  # this session's runs are in MLflow before they are read back
    ids = [x.run_id if hasattr(x, "run_id") else str(x) for x in (a, b)]
    return RunDiffView(diff_runs(run_detail(ids[0]), run_detail(ids[1]), stage_code))
