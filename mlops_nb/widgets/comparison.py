"""The comparison of a few runs, as the sidebar draws it: each run's parameters and metrics, and the chart.

A run without parameters of its own (a notebook run recorded by an older mlops-nb) is compared with those
its stages read (``runs.with_stage_params``, as ``%mlops panel`` does). The chart's spec is
``charts.compare_spec``, the one the notebook's ``%mlops panel`` shows, served to the sidebar so that it is
built in one place.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlops_nb.config import Settings
from mlops_nb.exceptions import UsageError
from mlops_nb.tracking import reading
from mlops_nb.tracking.records import RunComparison, RunDetail, RunSummary
from mlops_nb.widgets.charts import compare_spec
from mlops_nb.widgets.runs import with_stage_params

MAX_COMPARED = 500  # runs in one comparison: their ids fit a URL (about 19 KB)


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


def compare(run_ids: Sequence[str], settings: Settings) -> RunComparison:
    """The runs ``run_ids`` (in that order) and the Vega-Lite spec comparing them.

    Raises:
        UsageError: fewer than two runs, more than ``MAX_COMPARED``, or an id that names no run.
    """
    runs = [_compared(reading.run_detail(run_id, settings)) for run_id in compared_ids(run_ids)]
    return RunComparison(runs=runs, spec=compare_spec(runs))
