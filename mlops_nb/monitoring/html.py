"""The HTML report of a monitoring pass: one self-contained file (``--report``), also a notebook's display.

Plots are drawn with Matplotlib as inline SVG: no JavaScript, no fonts, images or scripts fetched from
anywhere, so the file opens offline, in a mail client, or as a CI artifact, and reads the same in ten years.
A Content-Security-Policy forbids the page any fetch at all. Every name and value from the data goes through
Jinja's autoescaping in the page and Matplotlib's XML escaping in the plots (with mathtext off, so a ``$`` in
a column name is just a dollar).

Shown: the verdict, the data problems, a table of features, how far each feature's deciding score lies from
its threshold, the time series of drift when windowed, and per feature the reference and current
distributions (numeric: the reference's 20 histogram bins; categorical: the most common categories).
"""

from __future__ import annotations

import io
import math
from typing import Any

from mlops_nb import pages
from mlops_nb.monitoring import columns as cols
from mlops_nb.monitoring.current import CurrentData
from mlops_nb.monitoring.drift import preset
from mlops_nb.monitoring.report import rows as table_rows

MAX_PLOTS = 60  # distribution plots (drifted features first); the table lists every feature
MAX_CATEGORIES = 12
MAX_SERIES = 10  # features drawn in the time series
MAX_LABEL = 40
REFERENCE_COLOUR, CURRENT_COLOUR, DRIFT_COLOUR, OK_COLOUR = "#4c72b0", "#dd8452", "#c44e52", "#55a868"
_RC = {
    "svg.fonttype": "none",  # text stays text (small files); the browser's sans-serif draws it
    "svg.hashsalt": "mlops-nb",  # the same data gives the same file
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}

CSS = (
    pages.base_css(".mnb-monitor")
    + """
.mnb-monitor .verdict { font-size: 1.1em; padding: 8px 12px; border-radius: 6px; display: inline-block; }
.mnb-monitor .drift { background: #fbe3e4; color: #8a1f24; }
.mnb-monitor .nodrift { background: #e3f4e6; color: #1d5e2a; }
.mnb-monitor tr.is-drift td { color: #a1262c; font-weight: 600; }
.mnb-monitor .warning { background: #fff8c5; border-left: 4px solid #bf8700; padding: 4px 8px; }
"""
)
BODY = """<div class="mnb-monitor">
<h1>Monitoring {{ subject }}</h1>
<p class="meta">{{ rows }} rows &middot; preset {{ result.preset }}{% if result.run_id %} &middot; MLflow run
 {{ result.run_id }}{% endif %}{% if source %} &middot; {{ source }}{% endif %}</p>
<p class="verdict {{ 'drift' if result.dataset_drift else 'nodrift' }}">{{ verdict }}</p>
{% for warning in result.get('warnings', []) %}<p class="warning">{{ warning }}</p>
{% endfor %}{% if performance %}<h2>Performance on {{ labelled }} labelled rows</h2>
<table><tr><th>metric</th><th>now</th><th>at training</th></tr>{% for k, now, then in performance %}
<tr><td>{{ k }}</td><td class="num">{{ now }}</td><td class="num">{{ then }}</td></tr>{% endfor %}</table>{% endif %}
{% if label_free %}<h2>Estimated performance (no labels needed)</h2><table><tr><th>metric</th>
<th>reference (held out)</th><th>estimated</th><th>realised (labels)</th></tr>{% for k, ref, est, real in label_free %}
<tr><th>{{ k }}</th><td class="num">{{ ref }}</td><td class="num">{{ est }}</td><td class="num">{{ real }}</td></tr>
{% endfor %}</table>{% endif %}
<h2>Data checks</h2>
{% if problems %}<table><tr><th>column</th><th>check</th><th>detail</th></tr>
{% for p in problems %}<tr><td>{{ p.column }}</td><td>{{ p.check }}</td><td>{{ p.detail }}</td></tr>{% endfor %}
</table>{% else %}<p>Every check passed.</p>{% endif %}
<h2>Features</h2>
<table><tr>{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr>
{% for r in table %}<tr class="{{ 'is-drift' if r[-1] == 'DRIFT' else '' }}">{% for c in r %}
<td class="{{ 'num' if loop.index0 >= 3 else '' }}">{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>
{% if scores %}<h2>Scores against thresholds</h2><div class="plot">{{ scores }}</div>{% endif %}
{% if series %}<h2>Over time</h2><div class="plot">{{ series }}</div>{% endif %}
{% if plots %}<h2>Distributions: reference and current</h2>
<div class="grid">{% for p in plots %}<div class="plot">{{ p }}</div>{% endfor %}</div>
{% if hidden %}<p class="meta">{{ hidden }} more features are in the table above.</p>{% endif %}{% endif %}
</div>"""


def _label(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "\u2026"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata=_NO_METADATA)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # no XML prolog or DOCTYPE (which names a DTD URL) inside HTML


def _figure(width: float, height: float, layout: str | None = "constrained") -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout=layout)


def distributions(current: CurrentData, names: list[str]) -> dict[str, dict[str, Any]]:
    """Per feature, the reference and current shares to draw: numeric features on the reference histogram's
    bins (current values beyond them counted apart), categorical features over their most common categories."""
    import numpy as np

    found: dict[str, dict[str, Any]] = {}
    for name in names:
        state = current.states.get(name)
        spec = current.reference.profile["columns"].get(name, {})
        if state is None:
            continue
        if state.kind == cols.NUMERIC and spec.get("histogram") and state.readable:
            edges = np.asarray(spec["histogram"]["edges"], dtype=float)
            ref = np.asarray(spec["histogram"]["counts"], dtype=float)
            values = current.sorted_sample(name)
            if values is None or not len(values):
                continue
            cur = np.histogram(values, edges)[0].astype(float)  # the last bin is closed, as the profile's
            outside = int(np.count_nonzero((values < edges[0]) | (values > edges[-1])))
            found[name] = {
                "kind": cols.NUMERIC,
                "edges": edges,
                "reference": ref / max(ref.sum(), 1),
                "current": cur / len(values),
                "outside": outside / len(values),
            }
        elif state.kind == cols.CATEGORICAL and spec.get("frequencies") and state.categories:
            ref_share = dict(spec["frequencies"])
            total = sum(state.categories.values())
            cur_share = {k: v / total for k, v in state.categories.items()}
            top = sorted(set(ref_share) | set(cur_share), key=lambda k: -max(ref_share.get(k, 0), cur_share.get(k, 0)))
            shown = top[:MAX_CATEGORIES]
            found[name] = {
                "kind": cols.CATEGORICAL,
                "categories": shown,
                "reference": [ref_share.get(k, 0.0) for k in shown],
                "current": [cur_share.get(k, 0.0) for k in shown],
                "hidden": len(top) - len(shown),
            }
    return found


def _distribution_plot(name: str, feature: dict[str, Any], drawn: dict[str, Any]) -> str:
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    # Fixed margins: a layout engine would take 4/5 of the time of each of these small, same-shaped plots.
    figure = _figure(3.9, 2.6, layout=None)
    figure.subplots_adjust(left=0.19, right=0.97, top=0.8, bottom=0.27 if drawn["kind"] == cols.CATEGORICAL else 0.13)
    axes = figure.subplots()
    drift = feature.get("drift")
    status = {True: "drift", False: "no drift", None: "not decided"}[drift]
    axes.set_title(f"{_label(name)}: {status}", color=DRIFT_COLOUR if drift else "#222", loc="left")
    if drawn["kind"] == cols.NUMERIC:
        edges = drawn["edges"]
        axes.stairs(drawn["reference"], edges, fill=True, alpha=0.45, color=REFERENCE_COLOUR, label="reference")
        axes.stairs(drawn["current"], edges, linewidth=1.8, color=CURRENT_COLOUR, label="current")
        if drawn["outside"]:
            axes.text(0.99, 0.97, f"{drawn['outside']:.1%} outside", transform=axes.transAxes, ha="right", va="top")
        axes.set_ylabel("share of rows")
        axes.xaxis.set_major_locator(MaxNLocator(5))
    else:
        position = np.arange(len(drawn["categories"]))
        axes.bar(position - 0.2, drawn["reference"], 0.4, color=REFERENCE_COLOUR, label="reference")
        axes.bar(position + 0.2, drawn["current"], 0.4, color=CURRENT_COLOUR, label="current")
        axes.set_xticks(position, [_label(str(c))[:14] for c in drawn["categories"]], rotation=35, ha="right")
        if drawn["hidden"]:
            axes.text(0.99, 0.97, f"+{drawn['hidden']} categories", transform=axes.transAxes, ha="right", va="top")
        axes.set_ylabel("share of values")
    figure.legend(loc="upper right", ncols=2, frameon=False, fontsize=8)  # above the plot: never over the bars
    return _svg(figure)


def _margin(score: dict[str, Any]) -> float | None:
    """How far past its threshold a score is, as a ratio (1: on the threshold, above: drift), for any method:
    statistic / threshold for distances, threshold / p-value for tests."""
    threshold = score.get("threshold")
    if not threshold:
        return None
    if score.get("p_value") is not None:
        return threshold / max(score["p_value"], 1e-300)
    statistic = score.get("statistic")
    return None if statistic is None else max(statistic, 1e-12) / threshold


def _scores_plot(result: dict[str, Any]) -> str | None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    items = []
    for name, feature in result["features"].items():
        score = feature["scores"].get(feature["method"] or "")
        margin = _margin(score) if score else None
        if margin is not None and math.isfinite(margin):
            items.append((name, feature["method"], margin, bool(feature["drift"])))
    if not items:
        return None
    items = items[:MAX_PLOTS]
    figure = _figure(8, 0.6 + 0.28 * len(items))
    axes = figure.subplots()
    labels = [f"{_label(n)} ({m})" for n, m, _, _ in items][::-1]
    values = [v for _, _, v, _ in items][::-1]
    colours = [DRIFT_COLOUR if d else OK_COLOUR for *_, d in items][::-1]
    axes.barh(range(len(items)), values, color=colours)
    axes.set_yticks(range(len(items)), labels)
    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 0.2, 0.5, 1, 2, 5: readable within a decade
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # plain text: mathtext is off
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.axvline(1.0, color="#333", linestyle="--", linewidth=1)
    axes.set_xlabel("score / threshold (distances), threshold / p-value (tests): drift at 1 and beyond")
    return _svg(figure)


def _series_plot(result: dict[str, Any]) -> str | None:
    import numpy as np

    windows = result.get("windows") or []
    if not windows:
        return None
    timed = windows[0]["start"] is not None
    if timed:
        from datetime import datetime

        x: list[Any] = [datetime.fromisoformat(w["start"].replace("Z", "+00:00")) for w in windows]
    else:
        x = [w["first_row"] for w in windows]
    realised = _window_metrics(windows)
    if realised:
        figure = _figure(9, 6.2)
        top, bottom, scored = figure.subplots(3, 1, sharex=True, height_ratios=[1, 1.4, 1])
        for metric, values in realised.items():
            scored.plot(x, values, marker="o", markersize=3, label=metric)
        scored.set_ylabel("realised (labels)")
        scored.legend(loc="upper left", fontsize=7, frameon=False, ncols=3)
    else:
        figure = _figure(9, 4.6)
        top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[1, 1.4])
    share = [w["drift_share"] for w in windows]
    top.plot(x, share, color="#444", marker="o", markersize=3)
    drifted = [i for i, w in enumerate(windows) if w["dataset_drift"]]
    top.scatter([x[i] for i in drifted], [share[i] for i in drifted], color=DRIFT_COLOUR, zorder=3, label="drift")
    top.axhline(preset(result["preset"]).drift_share, color=DRIFT_COLOUR, linestyle="--", linewidth=1)
    top.set_ylabel("share of features drifted")
    top.set_ylim(-0.02, 1.02)
    names = [n for n, f in result["features"].items() if f.get("method")]
    names.sort(key=lambda n: not result["features"][n]["drift"])
    for name in names[:MAX_SERIES]:
        threshold = result["features"][name]["scores"][result["features"][name]["method"]]["threshold"]
        y = [
            np.nan if w["features"].get(name, {}).get("statistic") is None else w["features"][name]["statistic"]
            for w in windows
        ]
        method = result["features"][name]["method"]
        if method in ("ks", "chi2"):  # tests: the statistic is not against the threshold; plot p-values apart
            continue
        bottom.plot(x, np.asarray(y, dtype=float) / threshold, marker=".", label=_label(name))
    bottom.axhline(1.0, color="#333", linestyle="--", linewidth=1)
    bottom.set_ylabel("score / threshold")
    (scored if realised else bottom).set_xlabel("window start (UTC)" if timed else "first row of the window")
    if bottom.lines[1:]:
        bottom.legend(loc="upper left", fontsize=7, frameon=False, ncols=2)
    if timed:
        figure.autofmt_xdate()
    return _svg(figure)


def _window_metrics(windows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Each realised metric of the windows (with --labels), NaN where a window has none."""
    names = list(dict.fromkeys(m for w in windows for m in ((w.get("performance") or {}).get("metrics") or {})))
    nan = float("nan")
    return {
        name: [
            nan if (v := ((w.get("performance") or {}).get("metrics") or {}).get(name)) is None else float(v)
            for w in windows
        ]
        for name in names
    }


def _performance_rows(performance: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, reference, estimated, realised) of a classifier's performance (mlops_nb.monitoring.performance)."""
    if not performance:
        return []

    def shown(values: dict[str, Any] | None, metric: str) -> str:
        value = (values or {}).get(metric)
        return "-" if value is None else f"{value:.3f}"

    classes = performance.get("classes") or []
    which = {  # F1 and ROC AUC: of the second class with two (scikit-learn's pos_label), else macro one-vs-rest
        "f1": f"f1 ({classes[1]})" if len(classes) == 2 else "f1 (macro)",
        "roc_auc": "roc_auc" if len(classes) == 2 else "roc_auc (macro, one-vs-rest)",
    }
    realised = performance.get("realised")
    return [
        (
            which.get(m, m),
            shown(performance.get("reference"), m),
            shown(performance.get("estimated"), m),
            shown(realised, m),
        )
        for m in ("accuracy", "f1", "roc_auc")
    ]


def render(result: dict[str, Any], current: CurrentData | None = None, *, source: str | None = None) -> str:
    """The report of ``result`` as one HTML page; ``current`` (the pass's summary) adds the distributions."""
    import jinja2
    from markupsafe import Markup
    from matplotlib import rc_context

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    with rc_context(_RC):
        scores = _scores_plot(result)
        series = _series_plot(result)
        order = sorted(result["features"], key=lambda n: not result["features"][n].get("drift"))
        drawn = distributions(current, order[:MAX_PLOTS]) if current is not None else {}
        plots = [Markup(_distribution_plot(n, result["features"][n], drawn[n])) for n in order if n in drawn]
    decided = sum(1 for f in result["features"].values() if f.get("drift") is not None)
    drifted = sum(1 for f in result["features"].values() if f.get("drift"))
    verdict = "Dataset drift" if result["dataset_drift"] else "No dataset drift"
    model = result.get("model")
    subject = f"{model} version {result['version']}" if model and result.get("version") else (model or "data")
    performance = result.get("performance") or {}
    body = env.from_string(BODY).render(
        result=result,
        subject=subject,
        source=source,
        rows=f"{result['rows']:,}",
        verdict=f"{verdict}: {drifted} of {decided} features drifted ({result['drift_share']:.0%})",
        performance=[
            (k, _number(v), _number((performance.get("reference") or {}).get(k)))
            for k, v in performance.get("metrics", {}).items()
        ],
        labelled=f"{performance.get('rows', 0):,}",
        label_free=_performance_rows(performance.get("label_free") or {}),
        problems=result["validation"]["problems"],
        headers=("feature", "kind", "method", "score", "threshold", "p-value", "missing", "drift"),
        table=table_rows(result),
        scores=Markup(scores) if scores else None,
        series=Markup(series) if series else None,
        plots=plots,
        hidden=max(len(drawn) - len(plots), 0) or max(len(result["features"]) - MAX_PLOTS, 0),
    )
    return f"<style>{CSS}</style>\n{body}"


def page(result: dict[str, Any], current: CurrentData | None = None, *, source: str | None = None) -> str:
    """:func:`render` as a whole HTML document (the ``--report`` file)."""
    model = result.get("model") or "data"
    return pages.page(f"mlops-nb monitor: {model}", render(result, current, source=source))
