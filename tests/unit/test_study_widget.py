"""The study widget's text and chart (``mnb.tune`` in a notebook), from the trials the tune hands it."""

from __future__ import annotations

from mlops_nb.jobs.trials import Trial
from mlops_nb.widgets.study import StudyWidget, summary_html, values_svg


def _trial(number: int, state: str, value: float | None, **params: object) -> Trial:
    return Trial(number=number, state=state, value=value, params=params, run_id="")


TRIALS = [
    _trial(0, "COMPLETE", 0.5, C=1.0),
    _trial(1, "PRUNED", None, C=0.01),
    _trial(2, "COMPLETE", 0.9, C=0.125),
    _trial(3, "FAIL", None, C=50.0),
    _trial(4, "RUNNING", None, C=3.0),
]


def test_the_summary_counts_finished_trials_and_names_the_best_escaped() -> None:
    text = summary_html(TRIALS, TRIALS[2], 10, "acc<uracy>", "maximize")
    assert "<b>4/10 trials</b> (2 complete, 1 pruned, 1 fail)" in text  # the running trial is not done
    assert "best maximize acc&lt;uracy&gt; = <b>0.9</b> (trial 2: C=0.125)" in text
    assert "best" not in summary_html(TRIALS[1:2], None, 10, "m", "maximize")


def test_the_chart_draws_values_the_best_so_far_and_marks_pruned_and_failed_trials() -> None:
    svg = values_svg(TRIALS, "maximize")
    assert svg.count('<circle class="trial"') == 2
    assert 'class="trial-pruned" data-trial="1"' in svg and 'class="trial-fail" data-trial="3"' in svg
    points = svg.split('<polyline class="best" points="')[1].split('"')[0].split()
    heights = [float(p.split(",")[1]) for p in points]
    assert len(points) == 4 and heights[0] > heights[-1]  # best so far rises (y grows downwards) ...
    assert heights == sorted(heights, reverse=True)  # ... and never falls for maximize
    minimize = values_svg(TRIALS, "minimize").split('points="')[1].split('"')[0].split()
    assert len({p.split(",")[1] for p in minimize}) == 1  # 0.5 stays the best when minimising


def test_an_empty_study_draws_an_empty_chart() -> None:
    svg = values_svg([], "maximize")
    assert svg.startswith("<svg") and "circle" not in svg and "polyline" not in svg


def test_the_widget_follows_the_trials() -> None:
    shown = StudyWidget("train", 3, "accuracy", "maximize")
    assert shown.progress.value == 0 and "0/3 trials" in shown.text.value
    shown.update(TRIALS, TRIALS[2])
    assert (shown.progress.value, shown.progress.max) == (4, 4)  # a resumed study may hold more than asked
    assert "C=0.125" in shown.text.value and shown.chart.value.count("<circle") == 2
