"""The evaluation's HTML report: one self-contained file (``evaluation/report.html``), also the cell's display.

The charts (``plots.py``) are drawn here as inline SVG (lines, points, a heatmap, bars, strips: a few
milliseconds each, where Matplotlib took about half a second a chart on this machine): no JavaScript, nothing
fetched (a Content-Security-Policy forbids it), so the file opens offline and reads the same later. Every
name and value from the data is escaped, by Jinja's autoescaping in the page and ``markupsafe.escape`` in
the SVG text.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from markupsafe import escape

from mlops_nb import pages

if TYPE_CHECKING:
    from mlops_nb.evaluation.plots import Chart

MAX_LABEL = 40
COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]

CSS = (
    pages.base_css(".mnb-eval")
    + """
.mnb-eval .worse { color: #a1262c; font-weight: 600; } .mnb-eval .better { color: #1d5e2a; font-weight: 600; }
.mnb-eval .skipped { background: #fff4e0; border-left: 4px solid #e0a030; padding: 6px 10px; }
"""
)
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


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``low``..``high``."""
    span = high - low
    if not np.isfinite(span) or span <= 0:
        return [low]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 12) for i in range(int((high - first) / step + 1e-9) + 1)]


def _text(x: float, y: float, text: Any, anchor: str = "middle", size: int = 10, extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" {extra}>{escape(str(text))}</text>'


class _Frame:
    """A plot area with axes: data coordinates to SVG ones."""

    def __init__(self, width: float, height: float, left: float, x: tuple[float, float], y: tuple[float, float]):
        self.width, self.height, self.left, self.top, self.bottom = width, height, left, 26.0, height - 34.0
        self.right = width - 12.0
        pad_x = (x[1] - x[0]) * 0.03 or 0.5
        pad_y = (y[1] - y[0]) * 0.05 or 0.5
        self.x0, self.x1, self.y0, self.y1 = x[0] - pad_x, x[1] + pad_x, y[0] - pad_y, y[1] + pad_y

    def sx(self, value: float) -> float:
        return self.left + (value - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def sy(self, value: float) -> float:
        return self.bottom - (value - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

    def axes(self, xlabel: str, ylabel: str, y_ticks: bool = True) -> list[str]:
        out = [
            f'<line x1="{self.left}" y1="{self.bottom}" x2="{self.right}" y2="{self.bottom}" stroke="#444"/>',
            f'<line x1="{self.left}" y1="{self.top}" x2="{self.left}" y2="{self.bottom}" stroke="#444"/>',
            _text((self.left + self.right) / 2, self.height - 6, xlabel),
        ]
        for t in _ticks(self.x0, self.x1):
            out.append(
                f'<line x1="{self.sx(t):.1f}" y1="{self.bottom}" x2="{self.sx(t):.1f}" y2="{self.bottom + 4}" '
                'stroke="#444"/>'
            )
            out.append(_text(self.sx(t), self.bottom + 14, f"{t:.4g}", size=9))
        if y_ticks:
            for t in _ticks(self.y0, self.y1):
                out.append(
                    f'<line x1="{self.left - 4}" y1="{self.sy(t):.1f}" x2="{self.left}" y2="{self.sy(t):.1f}" '
                    'stroke="#444"/>'
                )
                out.append(_text(self.left - 6, self.sy(t) + 3, f"{t:.4g}", anchor="end", size=9))
            middle = (self.top + self.bottom) / 2
            out.append(_text(12, middle, ylabel, extra=f'transform="rotate(-90 12 {middle:.1f})"'))
        return out


def _colour(level: float) -> str:
    """Blue (low) to red (high)."""
    level = min(max(level, 0.0), 1.0)
    low, high = (59, 76, 192), (180, 4, 38)
    return "#" + "".join(f"{round(a + (b - a) * level):02x}" for a, b in zip(low, high, strict=True))


def draw(chart: Chart) -> str:
    """One chart as an inline SVG element (drawn here: no plotting library, a few milliseconds)."""
    rows = chart.rows
    tall = chart.kind in ("bars", "strips")
    labels = list(dict.fromkeys(r["feature"] for r in rows)) if tall else []
    width, height = (460.0, max(130.0, 60.0 + 18.0 * len(labels))) if tall else (380.0, 270.0)
    parts: list[str] = [_text(width / 2, 14, _label(chart.title), size=11, extra='font-weight="600"')]
    if chart.kind in ("lines", "points") and rows:
        xs, ys = [r["x"] for r in rows], [r["y"] for r in rows]
        frame = _Frame(width, height, 52.0, (min(xs), max(xs)), (min(ys), max(ys)))
        parts += frame.axes(chart.x, chart.y)
        if chart.diagonal:
            low, high = max(min(xs), min(ys)), min(max(xs), max(ys))
            parts.append(
                f'<line x1="{frame.sx(low):.1f}" y1="{frame.sy(low):.1f}" x2="{frame.sx(high):.1f}" '
                f'y2="{frame.sy(high):.1f}" stroke="#999" stroke-dasharray="4 4"/>'
            )
        series = list(dict.fromkeys(r["series"] for r in rows))
        for i, name in enumerate(series[: len(COLOURS)]):
            colour = COLOURS[i]
            mine = [r for r in rows if r["series"] == name]
            if chart.kind == "lines":
                points = " ".join(f"{frame.sx(r['x']):.1f},{frame.sy(r['y']):.1f}" for r in mine)
                parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
            else:
                parts += [
                    f'<circle cx="{frame.sx(r["x"]):.1f}" cy="{frame.sy(r["y"]):.1f}" r="2" fill="{colour}" '
                    'fill-opacity="0.6"/>'
                    for r in mine
                ]
            if len(series) > 1:
                parts.append(f'<rect x="{width - 90}" y="{28 + 13 * i}" width="9" height="9" fill="{colour}"/>')
                parts.append(_text(width - 78, 36 + 13 * i, _label(name)[:12], anchor="start", size=9))
    elif chart.kind == "heatmap":
        names = list(dict.fromkeys(r["actual"] for r in rows))
        size = max(len(names), 1)
        most = max((r["count"] for r in rows), default=1) or 1
        cell = min(190.0 / size, 60.0)
        left, top = 90.0, 30.0
        for r in rows:
            a, p = names.index(r["actual"]), names.index(r["predicted"])
            x, y = left + p * cell, top + a * cell
            shade = r["count"] / most
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
                f'fill="#2a5aa8" fill-opacity="{0.08 + 0.85 * shade:.2f}" stroke="#fff"/>'
            )
            fill = "#fff" if shade > 0.5 else "#222"
            parts.append(_text(x + cell / 2, y + cell / 2 + 4, r["count"], extra=f'fill="{fill}"'))
        for i, name in enumerate(names):
            parts.append(_text(left + (i + 0.5) * cell, top + size * cell + 14, _label(name)[:10], size=9))
            parts.append(_text(left - 6, top + (i + 0.5) * cell + 3, _label(name)[:12], anchor="end", size=9))
        parts.append(_text(left + size * cell / 2, top + size * cell + 30, chart.x))
        middle = top + size * cell / 2
        parts.append(_text(14, middle, chart.y, extra=f'transform="rotate(-90 14 {middle:.1f})"'))
        height = max(height, top + size * cell + 40)
    elif tall and rows:
        values = [r["value"] for r in rows] + [r.get("low", r["value"]) for r in rows] + [0.0]
        highs = [r.get("high", r["value"]) for r in rows] + [r["value"] for r in rows] + [0.0]
        frame = _Frame(width, height, 170.0, (min(values), max(highs)), (0.0, float(len(labels))))
        parts += frame.axes(chart.x, "", y_ticks=False)
        step = (frame.bottom - frame.top) / max(len(labels), 1)
        for i, name in enumerate(labels):
            y = frame.top + (i + 0.5) * step
            parts.append(_text(frame.left - 6, y + 3, _label(name), anchor="end", size=9))
        zero = frame.sx(0.0)
        parts.append(f'<line x1="{zero:.1f}" y1="{frame.top}" x2="{zero:.1f}" y2="{frame.bottom}" stroke="#999"/>')
        for r in rows:
            y = frame.top + (labels.index(r["feature"]) + 0.5) * step
            if chart.kind == "bars":
                x0, x1 = sorted((zero, frame.sx(r["value"])))
                parts.append(
                    f'<rect x="{x0:.1f}" y="{y - step * 0.35:.1f}" width="{x1 - x0:.1f}" '
                    f'height="{step * 0.7:.1f}" fill="{COLOURS[0]}"/>'
                )
                if "low" in r:
                    parts.append(
                        f'<line x1="{frame.sx(r["low"]):.1f}" y1="{y:.1f}" x2="{frame.sx(r["high"]):.1f}" '
                        f'y2="{y:.1f}" stroke="#222"/>'
                    )
            else:
                parts.append(
                    f'<circle cx="{frame.sx(r["value"]):.1f}" cy="{y + r["jitter"] * step / 16:.1f}" '
                    f'r="1.8" fill="{_colour(r["level"])}"/>'
                )
    body = "".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" role="img">{body}</svg>'
    )


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


def fragment(evaluation: Any) -> str:  # an evaluation.report.Evaluation (which imports this module)
    """The report as an HTML fragment (a notebook cell's display)."""
    import jinja2
    from markupsafe import Markup

    from mlops_nb.evaluation.metrics import PRIMARY

    r = evaluation.result
    primary = PRIMARY[r["task"]]
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


def page(evaluation: Any) -> str:
    """The report as one self-contained HTML document."""
    title = f"mlops-nb evaluation: {evaluation.result['name']} of {evaluation.result['model']}"
    return pages.page(title, fragment(evaluation))
