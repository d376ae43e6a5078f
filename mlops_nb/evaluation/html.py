"""The evaluation's HTML report: one self-contained file (``evaluation/report.html``), also the cell's display.

The charts (``plots.py``) are drawn with Matplotlib as inline SVG, as the monitor's report draws its plots:
no JavaScript, nothing fetched (a Content-Security-Policy forbids it), so the file opens offline and reads the
same later. Every name and value from the data goes through Jinja's autoescaping and Matplotlib's XML
escaping (mathtext off, so a ``$`` in a column name is a dollar).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mlops_nb.evaluation.plots import Chart
    from mlops_nb.evaluation.report import Evaluation

MAX_LABEL = 40
COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "mlops-nb",
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title></head>
<body>{{ body }}</body></html>
"""
CSS = """
.mnb-eval { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; max-width: 1200px;
  margin: 0 auto; padding: 8px 16px; }
.mnb-eval h1 { font-size: 1.4em; margin: 0.4em 0; } .mnb-eval h2 { font-size: 1.15em; margin: 1.2em 0 0.4em; }
.mnb-eval table { border-collapse: collapse; font-size: 0.9em; margin: 4px 0; }
.mnb-eval th, .mnb-eval td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; }
.mnb-eval td.num { text-align: right; font-variant-numeric: tabular-nums; }
.mnb-eval .worse { color: #a1262c; font-weight: 600; } .mnb-eval .better { color: #1d5e2a; font-weight: 600; }
.mnb-eval .grid { display: flex; flex-wrap: wrap; gap: 8px; }
.mnb-eval .plot { border: 1px solid #eee; border-radius: 4px; padding: 2px; }
.mnb-eval .plot svg { display: block; max-width: 100%; height: auto; }
.mnb-eval .meta { color: #666; font-size: 0.9em; }
.mnb-eval .skipped { background: #fff4e0; border-left: 4px solid #e0a030; padding: 6px 10px; }
"""
BODY = """<div class="mnb-eval"><style>{{ css }}</style>
<h1>Evaluation {{ r.name }} of {{ r.model }}</h1>
<p class="meta">{{ r.task }} &middot; {{ r.rows }} rows
{% if r.classes %} &middot; classes {{ r.classes|join(", ") }}{% endif %}
{% if r.run_id %} &middot; MLflow run {{ r.run_id }}{% endif %}</p>
{% if r.skipped %}<div class="skipped"><b>Not computed, or not fully ({{ r.skipped|length }}):</b><ul>
{% for s in r.skipped %}<li><code>{{ s.part }}</code>: {{ s.reason }}</li>{% endfor %}</ul></div>{% endif %}
<h2>Metrics</h2>
<table><tr><th>metric</th><th>value</th><th>95% interval</th>
{% if cv %}<th>cross-validation mean [interval]</th>{% endif %}
{% if base %}<th>{{ r.baseline.model }}</th><th>difference [paired interval]</th>{% endif %}</tr>
{% for row in metric_rows %}<tr><td>{{ row.name }}</td><td class="num">{{ row.value }}</td>
<td class="num">{{ row.interval }}</td>
{% if cv %}<td class="num">{{ row.cv }}</td>{% endif %}{% if base %}<td class="num">{{ row.baseline }}</td>
<td class="num {{ row.verdict }}">{{ row.delta }}</td>{% endif %}</tr>{% endfor %}</table>
{% for title, rows in slice_tables %}<h2>{{ title }}</h2>{% if rows %}
<table><tr><th>slice</th><th>rows</th><th>{{ primary }}</th><th>95% interval</th><th>below overall</th></tr>
{% for s in rows %}<tr><td>{{ s.slice }}</td><td class="num">{{ s.rows }}</td><td class="num">{{ s.value }}</td>
<td class="num">{{ s.interval }}</td>
<td class="num {{ 'worse' if s.gap_value > 0 else '' }}">{{ s.gap }}</td></tr>{% endfor %}
</table>{% else %}<p>None{% if title.startswith("Worst") %}: no segment of enough rows falls below the overall value
{% endif %}.</p>{% endif %}
{% endfor %}
{% if r.importance %}<h2>Permutation importance</h2>
<table><tr><th>feature</th><th>mean fall</th><th>95% interval</th></tr>
{% for f in r.importance[:15] %}<tr><td>{{ f.feature }}</td><td class="num">{{ fmt(f.mean) }}</td>
<td class="num">[{{ fmt(f.low) }}, {{ fmt(f.high) }}]</td></tr>{% endfor %}</table>{% endif %}
{% if r.shap %}<p class="meta">SHAP: {{ r.shap.explainer }} on {{ r.shap.rows }} rows.</p>{% endif %}
<h2>Plots</h2><div class="grid">{% for svg in svgs %}<div class="plot">{{ svg }}</div>{% endfor %}</div>
</div>"""


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _interval(i: dict[str, float] | None) -> str:
    return "" if not i else f"[{fmt(i['low'])}, {fmt(i['high'])}]"


def _label(text: Any) -> str:
    text = str(text)
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "\u2026"


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata=_NO_METADATA)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # no XML prolog or DOCTYPE (which names a DTD URL) inside HTML


def draw(chart: Chart) -> str:
    """One chart as an SVG element."""
    from matplotlib.figure import Figure

    tall = chart.kind in ("bars", "strips")
    height = 0.6 + 0.22 * len({r["feature"] for r in chart.rows}) if tall else 2.6
    figure = Figure(figsize=(3.8 if not tall else 4.6, max(height, 1.6)), layout="constrained")
    ax = figure.add_subplot()
    ax.set_title(_label(chart.title), fontsize=9)
    if chart.kind in ("lines", "points"):
        series = list(dict.fromkeys(r["series"] for r in chart.rows))
        for i, name in enumerate(series[:8]):
            xs = [r["x"] for r in chart.rows if r["series"] == name]
            ys = [r["y"] for r in chart.rows if r["series"] == name]
            colour = COLOURS[i % len(COLOURS)]
            if chart.kind == "lines":
                ax.plot(xs, ys, color=colour, linewidth=1.4, label=_label(name))
            else:
                ax.scatter(xs, ys, s=6, color=colour, alpha=0.6)
        if chart.diagonal and chart.rows:
            low = min(min(r["x"], r["y"]) for r in chart.rows)
            high = max(max(r["x"], r["y"]) for r in chart.rows)
            ax.plot([low, high], [low, high], color="#999", linestyle="--", linewidth=0.8)
        if chart.kind == "lines" and len(series) > 1:
            ax.legend(fontsize=7, frameon=False)
        ax.set_xlabel(chart.x)
        ax.set_ylabel(chart.y)
    elif chart.kind == "heatmap":
        labels = list(dict.fromkeys(r["actual"] for r in chart.rows))
        size = len(labels)
        counts = np.zeros((size, size))
        for r in chart.rows:
            counts[labels.index(r["actual"]), labels.index(r["predicted"])] = r["count"]
        ax.imshow(counts, cmap="Blues")
        for a in range(size):
            for p in range(size):
                dark = counts[a, p] > counts.max() / 2
                ax.text(p, a, f"{int(counts[a, p])}", ha="center", va="center", color="white" if dark else "#222")
        ax.set_xticks(range(size), [_label(v) for v in labels])
        ax.set_yticks(range(size), [_label(v) for v in labels])
        ax.set_xlabel(chart.x)
        ax.set_ylabel(chart.y)
    elif chart.kind == "bars":
        names = [_label(r["feature"]) for r in chart.rows][::-1]
        values = [r["value"] for r in chart.rows][::-1]
        ax.barh(names, values, color=COLOURS[0])
        if chart.rows and "low" in chart.rows[0]:
            low = np.array([r["low"] for r in chart.rows][::-1])
            high = np.array([r["high"] for r in chart.rows][::-1])
            ax.errorbar(values, names, xerr=[np.array(values) - low, high - np.array(values)], fmt="none", color="#222")
        ax.set_xlabel(chart.x)
    else:  # strips
        features = list(dict.fromkeys(r["feature"] for r in chart.rows))
        for i, name in enumerate(features[::-1]):
            rows = [r for r in chart.rows if r["feature"] == name]
            ax.scatter(
                [r["value"] for r in rows],
                [i + r["jitter"] / 30 for r in rows],
                c=[r["level"] for r in rows],
                cmap="coolwarm",
                s=5,
                vmin=0,
                vmax=1,
            )
        ax.set_yticks(range(len(features)), [_label(f) for f in features[::-1]])
        ax.axvline(0, color="#999", linewidth=0.8)
        ax.set_xlabel(chart.x)
    return _svg(figure)


def _metric_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    from mlops_nb.evaluation.metrics import LOWER_IS_BETTER

    rows = []
    cv = r["cv"] or {}
    base = r["baseline"] or {}
    for name, value in r["metrics"].items():
        delta = (base.get("deltas") or {}).get(name)
        verdict = ""
        if delta is not None:
            better = delta["low"] > 0 if name not in LOWER_IS_BETTER else delta["high"] < 0
            worse = delta["high"] < 0 if name not in LOWER_IS_BETTER else delta["low"] > 0
            verdict = "better" if better else "worse" if worse else ""
        fold = cv.get(name)
        rows.append(
            {
                "name": name,
                "value": fmt(value),
                "interval": _interval(r["intervals"].get(name)),
                "cv": f"{fmt(fold['mean'])} {_interval(fold)}" if fold else "",
                "baseline": fmt((base.get("metrics") or {}).get(name)),
                "delta": f"{delta['delta']:+.4g} {_interval(delta)}" if delta else "",
                "verdict": verdict,
            }
        )
    return rows


def _slice_rows(slices: list[dict[str, Any]] | None, primary: str) -> list[dict[str, Any]]:
    return [
        {
            "slice": s["slice"],
            "rows": s["rows"],
            "value": fmt(s["metrics"].get(primary)),
            "interval": _interval(s["intervals"].get(primary)),
            "gap": fmt(s["gap"]),
            "gap_value": s["gap"],
        }
        for s in slices or []
    ]


def fragment(evaluation: Evaluation) -> str:
    """The report as an HTML fragment (a notebook cell's display)."""
    import jinja2
    from markupsafe import Markup
    from matplotlib import rc_context

    from mlops_nb.evaluation.metrics import PRIMARY

    r = evaluation.result
    primary = PRIMARY[r["task"]]
    with rc_context(_RC):
        svgs = [Markup(draw(c)) for c in evaluation.charts]
    tables = [("Worst segments (found)", _slice_rows(r["worst_slices"], primary))]
    if r["slices"] is not None:
        tables.insert(0, ("Declared slices", _slice_rows(r["slices"], primary)))
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(BODY).render(
        r=r,
        css=Markup(CSS),
        cv=bool(r["cv"]),
        base=r["baseline"] is not None,
        metric_rows=_metric_rows(dict(r)),
        slice_tables=tables,
        primary=primary,
        svgs=svgs,
        fmt=fmt,
    )


def page(evaluation: Evaluation) -> str:
    """The report as one self-contained HTML document."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(autoescape=True)
    title = f"mlops-nb evaluation: {evaluation.result['name']} of {evaluation.result['model']}"
    return env.from_string(TEMPLATE).render(title=title, body=Markup(fragment(evaluation)))
