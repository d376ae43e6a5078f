"""Drift over time: the current data cut into windows (``1h``, ``1d``, ``10000rows``), each one compared with the
reference on its own.

Time windows are aligned on the epoch in UTC (``1h``: from each full hour; ``1d``: from midnight UTC) and
need a time column; rows without a time are left out of the series (they still count in the whole result).
Row windows are consecutive rows in the order read. Rows come in any order: each window is summarised as
its rows arrive, so the data is still read once, in chunks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NotRequired, TypedDict

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring import columns as cols

UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "rows": 0}
WINDOW_SAMPLE_ROWS = 100_000  # Wasserstein sample per window (KS, PSI and the checks stay exact over all rows)
MAX_WINDOWS = 1000
_SPEC = re.compile(r"^\s*(\d+)\s*(s|m|min|h|d|rows)\s*$")
FIX = "Give --window as a number and a unit: 30min, 1h, 1d (time windows) or 10000rows."


@dataclass(frozen=True)
class Window:
    """A window size: ``seconds`` for time windows, else ``rows``."""

    text: str
    seconds: int = 0
    rows: int = 0


class WindowDrift(TypedDict):
    """One window of a windowed result."""

    start: str | None  # ISO 8601 UTC, time windows
    end: str | None
    first_row: int | None  # row windows: the offset of the window's first row
    rows: int
    dataset_drift: bool
    drift_share: float
    features: dict[str, dict[str, Any]]  # name -> {method, statistic, drift}
    problems: int
    performance: NotRequired[dict[str, Any]]  # with --labels: the window's realised performance


def parse_window(text: str) -> Window:
    """``1h``, ``30min``, ``1d``, ``10000rows`` as a :class:`Window`. UsageError for anything else."""
    match = _SPEC.match(text or "")
    if not match or int(match[1]) <= 0:
        raise UsageError(f"--window {text!r} is not a window. {FIX}")
    size, unit = int(match[1]), match[2]
    if unit == "rows":
        return Window(text.strip(), rows=size)
    return Window(text.strip(), seconds=size * UNITS[unit])


def seconds(column: Any) -> Any:
    """A time column as float64 epoch seconds (NaN where missing): Arrow timestamps and dates, numbers (epoch
    seconds, as the prediction log writes them) or ISO 8601 text.

    Raises:
        UsageError: a column of anything else.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        try:
            column = pc.cast(column, pa.timestamp("us", tz="UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise UsageError(f"the time column holds text that is not an ISO 8601 time ({e}). {FIX}") from e
        kind = column.type
    if pa.types.is_date(kind):
        column = pc.cast(column, pa.timestamp("s"))
        kind = column.type
    if pa.types.is_timestamp(kind):
        scale = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[kind.unit]
        return cols.numbers(pc.cast(column, pa.int64())) / scale
    if cols.kind_of(kind) == cols.NUMERIC:
        return cols.numbers(column)
    if pa.types.is_null(kind):
        return np.full(len(column), np.nan)
    raise UsageError(f"the time column is of type {kind}, not a time. {FIX}")


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


class Windowed:
    """Splits chunks into windows and summarises each with ``start(...)``, a factory of summaries (one per
    window, each taking Arrow tables with ``add``).

    Args:
        window: the window size.
        start: makes the summary of a new window.
    """

    def __init__(self, window: Window, start: Any) -> None:
        self.window = window
        self._start = start
        self.parts: dict[int, Any] = {}  # window key (start second, or first row) -> summary
        self._rows = 0

    def add(self, chunk: Any, times: Any | None) -> None:
        """Add a chunk; ``times`` are its rows' epoch seconds (time windows)."""
        import numpy as np

        if self.window.rows:
            offset = 0
            while offset < chunk.num_rows:
                key = (self._rows // self.window.rows) * self.window.rows
                take = min(chunk.num_rows - offset, key + self.window.rows - self._rows)
                self._part(key).add(chunk.slice(offset, take))
                offset += take
                self._rows += take
            return
        known = ~np.isnan(times)
        keys = (np.floor(times[known] / self.window.seconds) * self.window.seconds).astype(np.int64)
        index = np.flatnonzero(known)
        order = np.argsort(keys, kind="stable")
        keys, index = keys[order], index[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.empty(0, dtype=np.int64)
        for i, first in enumerate(starts):
            last = starts[i + 1] if i + 1 < len(starts) else len(keys)
            self._part(int(keys[first])).add(chunk.take(np.sort(index[first:last])))

    def _part(self, key: int) -> Any:
        part = self.parts.get(key)
        if part is None:
            if len(self.parts) >= MAX_WINDOWS:
                raise UsageError(
                    f"--window {self.window.text} cuts the data into more than {MAX_WINDOWS} windows: give a "
                    "larger window."
                )
            part = self.parts[key] = self._start()
        return part

    def bounds(self, key: int) -> tuple[str | None, str | None, int | None]:
        """(start, end, first row) of the window ``key``."""
        if self.window.rows:
            return None, None, key
        return iso(key), iso(key + self.window.seconds), None
