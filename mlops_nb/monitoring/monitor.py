"""One monitoring pass: current data against a reference, in one read, to the JSON result users rely on.

The result (:class:`Result`)::

    {"model": null, "version": null, "rows": 10000, "preset": "mlops-nb",
     "dataset_drift": true, "drift_share": 0.5,
     "features": {"age": {"kind": "numeric", "method": "wasserstein", "drift": true, "missing_rate": 0.0,
                          "scores": {"ks": {"statistic": 0.31, "p_value": 1e-40, "threshold": 0.05, "drift": true},
                                     "wasserstein": {...}, "psi": {...}}}},
     "validation": {"ok": false, "problems": [{"column": "city", "check": "unseen_category", "detail": "..."}]},
     "performance": null, "run_id": null}

``model``, ``version`` and ``run_id`` are filled when a registered model is monitored as an MLflow run;
``performance`` when labels or stored scores allow it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring import columns as cols
from mlops_nb.monitoring import data as data_io
from mlops_nb.monitoring.current import SAMPLE_ROWS, CurrentData
from mlops_nb.monitoring.drift import DEFAULT_PRESET, Feature, Preset, dataset_drift, features, preset, tuned
from mlops_nb.monitoring.profile import Reference, build_reference, feed, load_profile
from mlops_nb.monitoring.validation import Tolerances, Validation, validate
from mlops_nb.monitoring.windows import WINDOW_SAMPLE_ROWS, Window, WindowDrift, Windowed, seconds

MIN_SAMPLE_ROWS = 10_000  # SciPy's exact KS needs every value of samples up to this size


class _Result(TypedDict):
    model: str | None
    version: str | None
    rows: int
    preset: str
    dataset_drift: bool
    drift_share: float
    features: dict[str, Feature]
    validation: Validation
    performance: dict[str, Any] | None
    run_id: str | None


class Result(_Result, total=False):
    windows: list[WindowDrift]  # when windowed, oldest first
    warnings: list[str]  # what to keep in mind reading it (a sample too small for the preset)


SMALL_SAMPLE = 1000  # rows: below this on a side, effect sizes vary by chance past their thresholds


@dataclass
class Pass:
    """A monitoring pass: the result, and the summary of the current data it came from (for the report's
    distributions)."""

    result: Result
    current: CurrentData


def _check_sample_rows(sample_rows: int) -> None:
    if sample_rows < MIN_SAMPLE_ROWS:
        raise UsageError(
            f"The sample (--sample-rows) must hold at least {MIN_SAMPLE_ROWS:,} rows (SciPy's exact KS range), "
            f"not {sample_rows}: give a larger value."
        )


def load_reference(path: str | Path, sample_rows: int = SAMPLE_ROWS) -> Reference:
    """The reference at ``path``: a ``reference_profile.json`` (statistics only: no KS or Wasserstein, whose
    tests need values), or data (CSV, Parquet, JSON lines; file, folder or glob), profiled in one pass."""
    _check_sample_rows(sample_rows)
    target = Path(path)
    if target.is_file() and target.suffix.lower() == ".json" and _is_profile(target):
        try:
            return Reference(load_profile(json.loads(target.read_text()), str(target)))
        except (OSError, ValueError) as e:
            raise UsageError(f"{target}: cannot read the reference profile ({e}).") from e
    return build_reference(data_io.chunks(path), sample_rows)


def _is_profile(path: Path) -> bool:
    """A JSON object with "columns" at the top (not JSON lines of records)."""
    with path.open("rb") as f:
        head = f.read(65536).lstrip()
    if not head.startswith(b"{"):
        return False
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return False  # JSON lines: one object per line
    return isinstance(data, dict) and "columns" in data


def monitor(
    reference: Reference,
    current: Iterable[Any] | Any,
    *,
    preset_name: str = DEFAULT_PRESET,
    sample_rows: int = SAMPLE_ROWS,
    tolerances: Tolerances | None = None,
) -> Result:
    """Drift and validation of ``current`` against ``reference``.

    Args:
        reference: from :func:`load_reference` or :func:`mlops_nb.monitoring.profile.reference_of`.
        current: Arrow record batches or tables (read one at a time), or one DataFrame, table or dict of columns.
        preset_name: which methods decide and at which thresholds (``mlops-nb``, ``evidently``).
        sample_rows: current rows kept for Wasserstein (all of them up to this many).
        tolerances: validation tolerances.

    Raises:
        UsageError: an unknown preset, or no rows at all.
    """
    return run_pass(reference, current, preset_name=preset_name, sample_rows=sample_rows, tolerances=tolerances).result


def run_pass(
    reference: Reference,
    current: Iterable[Any] | Any,
    *,
    preset_name: str = DEFAULT_PRESET,
    sample_rows: int = SAMPLE_ROWS,
    tolerances: Tolerances | None = None,
    window: Window | None = None,
    time_column: str | None = None,
    exclude: Iterable[str] = (),
    thresholds: Mapping[str, float] | None = None,
    drift_share: float | None = None,
    observe: Callable[[Any], None] | None = None,
    window_observer: Callable[[], Any] | None = None,
) -> Pass:
    """:func:`monitor`, and per ``window`` (a time series in ``result["windows"]``), in one read of the data.

    Args:
        window: cut the data into windows of this size (see :mod:`mlops_nb.monitoring.windows`).
        time_column: the rows' time (time windows); not monitored unless the reference has it.
        exclude: columns that are not features (a label column, the log's request ids).
        thresholds, drift_share: over the preset's (``[tool.mlops_nb.monitor]``).
        observe: also called with each chunk as read (all its columns), e.g. to gather labels.
        window_observer: with ``window``, makes for each window an observer of its rows (all columns; ``add``
            and ``performance()``), whose performance goes into that window of ``result["windows"]``.

    Raises:
        UsageError: an unknown preset, no rows, or a time window without the time column.
    """
    chosen = tuned(preset(preset_name), thresholds, drift_share)
    _check_sample_rows(sample_rows)
    if not isinstance(current, Iterable) or _is_frame(current):
        current = cols.to_arrow_table(current).to_batches() or [_empty(current)]
    summary = CurrentData(reference, sample_rows)
    windowed = None
    if window is not None:
        if window.seconds and not time_column:
            raise UsageError(f"--window {window.text} needs the rows' time: give --timestamp COLUMN.")
        windowed = Windowed(window, lambda: CurrentData(reference, min(sample_rows, WINDOW_SAMPLE_ROWS)))
    observed = Windowed(window, window_observer) if window is not None and window_observer is not None else None
    dropped = {*exclude, *([time_column] if time_column and time_column not in reference.profile["columns"] else [])}

    def add(chunk: Any) -> None:
        if observe is not None:
            observe(chunk)
        times = None
        if windowed is not None and window is not None and window.seconds:
            if time_column not in chunk.schema.names:
                raise UsageError(
                    f"--window {window.text}: the data has no column {time_column!r} to read the rows' time from. "
                    "Give --timestamp COLUMN, or a row window (10000rows)."
                )
            try:
                times = seconds(chunk.column(time_column))
            except UsageError as e:
                raise UsageError(f"--timestamp {time_column}: {e}") from e
        if observed is not None:
            observed.add(chunk, times)
        if dropped & set(chunk.schema.names):
            chunk = chunk.select([n for n in chunk.schema.names if n not in dropped])
        summary.add(chunk)
        if windowed is not None:
            windowed.add(chunk, times)

    feed(add, current)
    summary.finish()
    if summary.columns is None or summary.rows == 0:
        raise UsageError("The current data has no rows: nothing to monitor.")
    result: Result = _result(summary, chosen, tolerances)  # type: ignore[assignment]
    if windowed is not None:
        result["windows"] = [
            _window(windowed.bounds(key), _result(part, chosen, tolerances))
            for key, part in sorted(windowed.parts.items())
        ]
        if observed is not None:  # the same windows: same rows, same times
            for found, key in zip(result["windows"], sorted(windowed.parts), strict=True):
                found["performance"] = observed.parts[key].performance()
    return Pass(result, summary)


def summary_result(
    summary: CurrentData,
    *,
    preset_name: str = DEFAULT_PRESET,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float | None = None,
    tolerances: Tolerances | None = None,
) -> Result:
    """The result of a summary made elsewhere (a Dask cluster's, :mod:`mlops_nb.monitoring.distributed`)."""
    if summary.columns is None or summary.rows == 0:
        raise UsageError("The current data has no rows: nothing to monitor.")
    return _result(summary, tuned(preset(preset_name), thresholds, drift_share), tolerances)  # type: ignore[return-value]


def _result(summary: CurrentData, chosen: Preset, tolerances: Tolerances | None) -> Result:
    summary.finish()
    found = features(summary, chosen)
    drifted, share = dataset_drift(found, chosen.drift_share)
    result: Result = {
        "model": None,
        "version": None,
        "rows": summary.rows,
        "preset": chosen.name,
        "dataset_drift": drifted,
        "drift_share": share,
        "features": found,
        "validation": validate(summary, tolerances or Tolerances()),
        "performance": None,
        "run_id": None,
    }
    small = _small_sample(summary, chosen)
    if small:
        result["warnings"] = [small]
    return result


def _small_sample(summary: CurrentData, chosen: Preset) -> str | None:
    """The warning for a sample too small for a preset whose effect sizes decide (mlops-nb's), or None."""
    if chosen.name != DEFAULT_PRESET:
        return None
    sides = {"reference": int(summary.reference.profile.get("rows") or 0), "current": summary.rows}
    small = {side: rows for side, rows in sides.items() if 0 < rows < SMALL_SAMPLE}
    if not small:
        return None
    which = " and ".join(f"{rows:,} {side}" for side, rows in small.items())
    return (
        f"Only {which} rows: with fewer than about {SMALL_SAMPLE:,} rows on a side, effect sizes (Wasserstein, "
        "Jensen-Shannon) vary by chance past their thresholds, and unchanged features may be flagged. "
        "--preset evidently decides by p-values (KS, chi-squared) at these sizes."
    )


def _window(bounds: tuple[str | None, str | None, int | None], result: _Result) -> WindowDrift:
    start, end, first_row = bounds
    found = {}
    for name, feature in result["features"].items():
        score = feature["scores"].get(feature["method"] or "")
        found[name] = {
            "method": feature["method"],
            "statistic": score["statistic"] if score else None,
            "drift": feature["drift"],
        }
    return {
        "start": start,
        "end": end,
        "first_row": first_row,
        "rows": result["rows"],
        "dataset_drift": result["dataset_drift"],
        "drift_share": result["drift_share"],
        "features": found,
        "problems": len(result["validation"]["problems"]),
    }


def _is_frame(value: Any) -> bool:
    """One frame (DataFrame, Arrow table, array, dict of columns) rather than an iterable of chunks."""
    return isinstance(value, Mapping) or type(value).__name__ in ("DataFrame", "Table", "RecordBatch", "ndarray")


def _empty(frame: Any) -> Any:
    import pyarrow as pa

    table = cols.to_arrow_table(frame)
    return pa.RecordBatch.from_pylist([], schema=table.schema)
