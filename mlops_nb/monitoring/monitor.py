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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypedDict

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring import columns as cols
from mlops_nb.monitoring import data as data_io
from mlops_nb.monitoring.current import SAMPLE_ROWS, CurrentData
from mlops_nb.monitoring.drift import DEFAULT_PRESET, Feature, dataset_drift, features, preset
from mlops_nb.monitoring.profile import Reference, build_reference, feed, load_profile
from mlops_nb.monitoring.validation import Tolerances, Validation, validate

MIN_SAMPLE_ROWS = 10_000  # SciPy's exact KS needs every value of samples up to this size


class Result(TypedDict):
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
    chosen = preset(preset_name)
    _check_sample_rows(sample_rows)
    if not isinstance(current, Iterable) or _is_frame(current):
        current = cols.to_arrow_table(current).to_batches() or [_empty(current)]
    summary = CurrentData(reference, sample_rows)
    feed(summary.add, current)
    summary.finish()
    if summary.columns is None or summary.rows == 0:
        raise UsageError("The current data has no rows: nothing to monitor.")
    found = features(summary, chosen)
    drifted, share = dataset_drift(found, chosen.drift_share)
    return {
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


def _is_frame(value: Any) -> bool:
    """One frame (DataFrame, Arrow table, array, dict of columns) rather than an iterable of chunks."""
    return isinstance(value, Mapping) or type(value).__name__ in ("DataFrame", "Table", "RecordBatch", "ndarray")


def _empty(frame: Any) -> Any:
    import pyarrow as pa

    table = cols.to_arrow_table(frame)
    return pa.RecordBatch.from_pylist([], schema=table.schema)
