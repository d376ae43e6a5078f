"""The comparison of a few runs, as the sidebar draws it: each run's parameters and metrics, and the chart.

A run without parameters of its own (a notebook run recorded by an older mlops-nb) is compared with those
its stages read (``runs.with_stage_params``, as ``%mlops panel`` does). The chart's spec is
``charts.compare_spec``, the one the notebook's ``%mlops panel`` shows, served to the sidebar so that it is
built in one place.

The chart's metrics are the ones asked for (``metrics=``, the sidebar's picker), by default every metric in
the order of ``charts.metric_order``: first those the project's gates name (``[tool.mlops_nb.promote]
metric``, the retraining loop's ``require``), then the metric an evaluation ranks its slices by and its
worst slice, so that ``worst_slice.*`` is drawn rather than cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlops_nb.config import Settings
from mlops_nb.exceptions import UsageError
from mlops_nb.tracking import reading
from mlops_nb.tracking.records import RunComparison, RunDetail, RunSummary
from mlops_nb.widgets.charts import HINT, choose, first_metrics, spec_of
from mlops_nb.widgets.runs import with_stage_params

MAX_COMPARED = 500  # runs in one comparison: their ids fit a URL (about 19 KB)
PICKER_HINT = "choose them above"  # the sidebar's metric picker is above its chart


def _compared(detail: RunDetail) -> RunSummary:
    summary = RunSummary(**{k: detail[k] for k in RunSummary.__annotations__})  # type: ignore[literal-required]
    return with_stage_params(summary, lambda _: detail)


def compared_ids(run_ids: Sequence[str]) -> list[str]:
    """The distinct ids of a comparison, in order.

    Raises:
        UsageError: fewer than two runs, or more than ``MAX_COMPARED``.
    """
    ids = list(dict.fromkeys(i for i in run_ids if i))
    if len(ids) < 2:
        raise UsageError("Give two or more runs to compare: compare?run=RUN_ID&run=RUN_ID.")
    if len(ids) > MAX_COMPARED:
        raise UsageError(f"{len(ids)} runs: compare at most {MAX_COMPARED} at once.")
    return ids


def compared_runs(run_ids: Sequence[str], settings: Settings) -> list[RunSummary]:
    """The runs ``run_ids`` (distinct, in that order), each with the parameters its stages read.

    Raises:
        UsageError: fewer than two runs, more than ``MAX_COMPARED``, or an id that names no run.
    """
    return [_compared(reading.run_detail(run_id, settings)) for run_id in compared_ids(run_ids)]


def comparison_of(
    runs: list[RunSummary],
    settings: Settings,
    *,
    params: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    hint: str = PICKER_HINT,
) -> RunComparison:
    """``runs`` and the Vega-Lite spec comparing them on ``params`` and ``metrics`` (``charts.choose``; by
    default the numeric parameters and the metrics in ``first_metrics`` order). ``hint``: how the reader
    draws the metrics left out ("+N more metrics: choose them above").

    Raises:
        UnknownMetricError: a metric none of the runs has (the message lists those they have).
        UsageError: a parameter none of the runs has.
    """
    choice = choose(runs, params=params, metrics=metrics, first=first_metrics(settings))
    return RunComparison(
        runs=runs,
        spec=spec_of(runs, choice, hint),
        metrics=choice.available,
        chosen=choice.metrics,
        left_out=choice.left_out,
    )


def compare(run_ids: Sequence[str], settings: Settings, **choice: Any) -> RunComparison:
    """:func:`comparison_of` the runs ``run_ids`` (``compared_runs``); ``choice``: its keyword arguments."""
    return comparison_of(compared_runs(run_ids, settings), settings, **choice)


class ComparisonView:
    """``mnb.compare``'s result: displays as the comparison chart (Vega-Lite) in a notebook; ``.record`` is
    the ``GET /mlops-nb/api/compare`` record (``runs``, ``spec``, ``metrics``, ``chosen``, ``left_out``)."""

    def __init__(self, record: RunComparison) -> None:
        self.record = record

    def __repr__(self) -> str:
        r = self.record
        more = f", +{len(r['left_out'])} more metrics left out" if r["left_out"] else ""
        return f"<RunComparison of {len(r['runs'])} runs on {', '.join(r['chosen']) or 'no metric'}{more}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from mlops_nb.widgets.runs import VEGALITE

        return {VEGALITE: self.record["spec"], "text/plain": repr(self)}


def compare_runs(
    runs: Sequence[Any], *, metrics: Sequence[str] | None = None, params: Sequence[str] | None = None
) -> ComparisonView:
    """``mnb.compare``: the chart of ``runs`` (run ids, or runs of this session) on ``metrics`` and ``params``.

    Raises:
        UnknownMetricError: a metric none of the runs has. UsageError: fewer than two runs, an unknown id or
            parameter, or ``runs``/``metrics``/``params`` given as one string instead of a list.
    """
    from mlops_nb.config import load_settings
    from mlops_nb.tracking.recorder import get_recorder

    for what, value in (("runs", runs), ("metrics", metrics), ("params", params)):
        if isinstance(value, str):
            raise UsageError(f"{what}= takes a list, e.g. {what}=[{value!r}], not one string.")
    get_recorder().flush()  # this session's runs are in MLflow before they are read back
    ids = [r.run_id if hasattr(r, "run_id") else str(r) for r in runs]
    return ComparisonView(compare(ids, load_settings(), params=params, metrics=metrics, hint=HINT))
