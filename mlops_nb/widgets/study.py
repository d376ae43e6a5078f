"""The live widget of ``mnb.tune`` in a notebook: trials done of the total, the best value and its
parameters, and a small chart of each trial's value (the best so far as a line, pruned and failed trials
marked below the axis), updated as each trial ends.

The chart is an inline SVG drawn here (a few dozen elements): no plotting library in the kernel, and it
shows in every front end that renders ipywidgets (JupyterLab, Notebook 7, VS Code).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlops_nb.jobs.trials import Trial

WIDTH, HEIGHT, PAD = 360, 120, 8
MARK = {"PRUNED": "#e6a23c", "FAIL": "#d9534f"}  # trials without a value, marked under the chart


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summary_html(trials: Sequence[Trial], best: Trial | None, total: int, metric: str, direction: str) -> str:
    """The widget's text: trials done of ``total`` by state, and the best so far."""
    done = [t for t in trials if t.state in ("COMPLETE", "PRUNED", "FAIL")]
    counts = ", ".join(f"{sum(t.state == s for t in done)} {s.lower()}" for s in ("COMPLETE", "PRUNED", "FAIL"))
    text = f"<b>{len(done)}/{total} trials</b> ({counts})"
    if best is not None and best.value is not None:
        point = ", ".join(f"{html.escape(str(k))}={html.escape(_short(v))}" for k, v in best.params.items())
        text += (
            f" &middot; best {html.escape(direction)} {html.escape(metric)} = <b>{best.value:.6g}</b>"
            f" (trial {best.number}: {point})"
        )
    return text


def values_svg(trials: Sequence[Trial], direction: str) -> str:
    """Each complete trial's value against its number (dots), the best so far (a line), pruned and failed
    trials as marks under the chart."""
    finished = sorted((t for t in trials if t.state in ("COMPLETE", "PRUNED", "FAIL")), key=lambda t: t.number)
    values = [t.value for t in finished if t.state == "COMPLETE" and t.value is not None and math.isfinite(t.value)]
    parts = [f'<svg class="mlops-nb-study-chart" width="{WIDTH}" height="{HEIGHT + 12}" role="img">']
    parts.append(f'<rect width="{WIDTH}" height="{HEIGHT}" fill="none" stroke="#ccc"/>')
    if finished:
        last = max(t.number for t in finished)
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        span = (high - low) or 1.0

        def x(number: int) -> float:
            return PAD + (WIDTH - 2 * PAD) * (number / last if last else 0.5)

        def y(value: float) -> float:
            return HEIGHT - PAD - (HEIGHT - 2 * PAD) * (value - low) / span

        best: float | None = None
        line = []
        for t in finished:
            if t.state == "COMPLETE" and t.value is not None and math.isfinite(t.value):
                better = best is None or (t.value > best if direction == "maximize" else t.value < best)
                best = t.value if better else best
                parts.append(
                    f'<circle class="trial" data-trial="{t.number}" cx="{x(t.number):.1f}" cy="{y(t.value):.1f}" '
                    f'r="3" fill="#4c78a8"><title>trial {t.number}: {t.value:.6g}</title></circle>'
                )
            elif t.state in MARK:
                parts.append(
                    f'<rect class="trial-{t.state.lower()}" data-trial="{t.number}" x="{x(t.number) - 2:.1f}" '
                    f'y="{HEIGHT + 4}" width="4" height="6" fill="{MARK[t.state]}"><title>trial {t.number}: '
                    f"{t.state.lower()}</title></rect>"
                )
            if best is not None:
                line.append(f"{x(t.number):.1f},{y(best):.1f}")
        if line:
            parts.append(f'<polyline class="best" points="{" ".join(line)}" fill="none" stroke="#f58518"/>')
    parts.append("</svg>")
    return "".join(parts)


class StudyWidget:
    """A progress bar, the summary and the chart; ``update`` is the tune loop's ``on_trial``."""

    def __init__(self, name: str, total: int, metric: str, direction: str) -> None:
        import ipywidgets as w

        self.total, self.metric, self.direction = total, metric, direction
        self.progress = w.IntProgress(value=0, min=0, max=total, description=f"tune {name}"[:40])
        self.text = w.HTML(value=summary_html([], None, total, metric, direction))
        self.chart = w.HTML(value=values_svg([], direction))
        self.box = w.VBox([self.progress, self.text, self.chart])
        self.box.add_class("mlops-nb-study")

    def update(self, trials: Sequence[Trial], best: Trial | None) -> None:
        done = sum(t.state in ("COMPLETE", "PRUNED", "FAIL") for t in trials)
        self.progress.max = max(self.total, done)
        self.progress.value = done
        self.text.value = summary_html(trials, best, self.total, self.metric, self.direction)
        self.chart.value = values_svg(trials, self.direction)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.box)


def live_widget(notebook: Path, options: dict[str, Any]) -> StudyWidget | None:
    """The widget for ``mnb.tune(notebook, **options)``, displayed, when it runs in a kernel with ipywidgets."""
    from mlops_nb.tracking.provenance import in_kernel

    if not in_kernel():
        return None
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return None
    from IPython.display import display

    name = options.get("study") or notebook.stem
    shown = StudyWidget(
        name, int(options.get("trials", 0)), str(options.get("metric", "")), options.get("direction", "maximize")
    )
    display(shown.box)
    return shown
