"""The reference profile of training data, stored beside a logged model for validation and drift.

A profile is plain JSON, readable without mlops-nb, typed by :class:`Profile` and versioned by
``schema_version`` (:data:`SCHEMA_VERSION`; profiles written before it carry ``version: 1``). Per column:

- every kind: ``kind`` (``numeric``, ``categorical``, ``other``), ``dtype`` (the Arrow type), ``count``
  (present values), ``missing_rate``;
- numeric: ``min``, ``max``, ``mean``, ``std`` (population), ``quantiles``, a 20-bin ``histogram``, and ``psi``:
  the bins PSI compares, their inner ``edges`` fixed from the reference deciles (duplicate edges merged; the
  outer bins are open, -inf and +inf, so no value ever falls outside) and the reference ``frequencies`` in them;
- categorical: ``distinct``, ``counts`` and ``frequencies`` of the :data:`MAX_CATEGORIES` most common values,
  and ``other``: how many values the listed categories leave out (0 when every category is listed).

It is built in one pass over chunks (:class:`ProfileBuilder`), so a reference of 10M rows never sits in
memory: counts, missing values, min/max, mean and standard deviation are exact over all rows; quantiles,
histogram and PSI bins come from a seeded uniform sample of ``sample_rows`` rows (exact up to that many rows).
The sorted sample itself (:class:`Reference`) is what the Kolmogorov-Smirnov and Wasserstein tests compare;
a profile alone supports validation, PSI, chi-squared and Jensen-Shannon.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring import columns as cols
from mlops_nb.monitoring import parallel, sorted_arrays
from mlops_nb.monitoring.sample import RowSample

SCHEMA_VERSION = 2
PROFILE_VERSION = SCHEMA_VERSION  # the name profiles of version 1 used
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
BINS = 20
PSI_QUANTILES = tuple(i / 10 for i in range(1, 10))  # deciles: 10 bins of ~10 % of the reference each
MAX_CATEGORIES = 1000
SAMPLE_ROWS = 100_000


class Histogram(TypedDict):
    edges: list[float]
    counts: list[int]


class PsiBins(TypedDict):
    """PSI's bins: ``edges`` are the inner edges (bin i is [edges[i-1], edges[i]), open at both ends)."""

    edges: list[float]
    frequencies: list[float]


class ColumnProfile(TypedDict, total=False):
    kind: str
    dtype: str
    count: int
    missing_rate: float
    # numeric
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    quantiles: dict[str, float | None]
    histogram: Histogram
    psi: PsiBins
    # categorical
    distinct: int
    counts: dict[str, int]
    frequencies: dict[str, float]
    other: int


class Profile(TypedDict):
    schema_version: int
    rows: int
    sample_rows: int
    columns: dict[str, ColumnProfile]


@dataclass
class Reference:
    """A profile and, when the data was at hand, the sorted sample of each numeric column's present values."""

    profile: Profile
    samples: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.profile["rows"]


def _number(value: Any) -> float | None:
    value = float(value)
    return None if value != value else value  # NaN -> null in JSON


@dataclass
class _Moments:
    """Count, mean and sum of squared deviations, merged chunk by chunk (Chan et al.): exact and stable."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    low: float = float("inf")
    high: float = float("-inf")

    def add(self, present: Any) -> None:
        n = len(present)
        if not n:
            return
        mean = float(present.mean())
        m2 = float(((present - mean) ** 2).sum())
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total
        self.low = min(self.low, float(present.min()))
        self.high = max(self.high, float(present.max()))


class ProfileBuilder:
    """Builds a :class:`Reference` from Arrow record batches or tables, one chunk at a time.

    Args:
        sample_rows: rows kept (seeded, uniform) for quantiles, PSI bins and the KS/Wasserstein sample.
    """

    def __init__(self, sample_rows: int = SAMPLE_ROWS) -> None:
        if sample_rows < 1:
            raise UsageError(f"sample_rows must be at least 1, not {sample_rows}.")
        self.sample_rows = sample_rows
        self.rows = 0
        self._kinds: dict[str, str] = {}
        self._dtypes: dict[str, str] = {}
        self._missing: dict[str, int] = {}
        self._moments: dict[str, _Moments] = {}
        self._categories: dict[str, Counter[str]] = {}
        self._sample: RowSample | None = None

    def add(self, chunk: Any) -> None:
        """Add a ``pyarrow.RecordBatch`` or ``pyarrow.Table``."""
        if self._sample is None:
            for name, arrow_field in zip(chunk.schema.names, chunk.schema, strict=True):
                self._kinds[name] = cols.kind_of(arrow_field.type)
                self._dtypes[name] = str(arrow_field.type)
                self._missing[name] = 0
            numeric = [n for n, k in self._kinds.items() if k == cols.NUMERIC]
            self._moments = {name: _Moments() for name in numeric}
            self._categories = {n: Counter() for n, k in self._kinds.items() if k == cols.CATEGORICAL}
            self._sample = RowSample(numeric, self.sample_rows)
        elif chunk.schema.names != list(self._kinds):
            raise UsageError(
                f"The reference's chunks have different columns: {chunk.schema.names} after {list(self._kinds)}. "
                "Give files with the same columns."
            )
        import numpy as np

        rows = chunk.num_rows
        self.rows += rows
        values = {}
        for name in self._kinds:
            column = chunk.column(name)
            self._missing[name] += column.null_count
            if name in self._moments:
                numbers = cols.numbers(column)
                cols.drop_infinite(numbers)
                nan = np.isnan(numbers)
                self._missing[name] += int(nan.sum()) - column.null_count
                self._moments[name].add(numbers[~nan])
                values[name] = numbers
            elif name in self._categories:
                self._categories[name].update(dict(cols.category_counts(column)))
        self._sample.add(values, rows)

    def build(self) -> Reference:
        """The reference: its profile and sorted samples."""
        profile: Profile = {
            "schema_version": SCHEMA_VERSION,
            "rows": self.rows,
            "sample_rows": self.sample_rows,
            "columns": {},
        }
        samples = {}
        if self._sample is not None:
            self._sample.seal()
        for name, spec in zip(self._kinds, parallel.each(self._column, self._kinds), strict=True):
            profile["columns"][name] = spec
            if self._sample is not None and spec["kind"] == cols.NUMERIC:
                samples[name] = self._sample.sorted_values(name)  # sorted by _column already
        return Reference(profile, samples)

    def _column(self, name: str) -> ColumnProfile:
        kind = self._kinds[name]
        missing = self._missing[name]
        spec: ColumnProfile = {
            "kind": kind,
            "dtype": self._dtypes[name],
            "count": self.rows - missing,
            "missing_rate": missing / self.rows if self.rows else 0.0,
        }
        if kind == cols.NUMERIC and self._sample is not None:
            spec.update(_numeric(self._moments[name], self._sample.sorted_values(name)))
        elif kind == cols.CATEGORICAL:
            spec.update(_categorical(self._categories[name]))
        return spec


def _numeric(moments: _Moments, sample: Any) -> ColumnProfile:

    if not moments.n:
        return {"min": None, "max": None, "mean": None, "std": None}
    quantiles = sorted_arrays.quantiles(sample, QUANTILES)
    counts, edges = sorted_arrays.histogram(sample, BINS, moments.low, moments.high)
    return {
        "min": moments.low,
        "max": moments.high,
        "mean": moments.mean,
        "std": (moments.m2 / moments.n) ** 0.5,
        "quantiles": {str(q): _number(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
        "psi": psi_bins(sample),
    }


def psi_bins(sorted_values: Any) -> PsiBins:
    """PSI bins of sorted values: inner edges at the deciles, duplicates merged, and the share in each bin."""
    import numpy as np

    edges = np.unique(sorted_arrays.quantiles(sorted_values, PSI_QUANTILES))
    counts = bin_counts(sorted_values, edges)
    return {"edges": [float(e) for e in edges], "frequencies": [float(c) for c in counts / len(sorted_values)]}


def bin_counts(sorted_values: Any, edges: Any) -> Any:
    """How many of the sorted values fall in each bin [edges[i-1], edges[i]) (outer bins open)."""
    import numpy as np

    below = np.searchsorted(sorted_values, edges, side="left")
    return np.diff(np.concatenate(([0], below, [len(sorted_values)])))


def _categorical(counts: Counter[str]) -> ColumnProfile:
    total = sum(counts.values())
    # most common first, ties by name: the same profile whatever order the rows came in
    top = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:MAX_CATEGORIES])
    listed = sum(top.values())
    return {
        "distinct": len(counts),
        "counts": top,
        "frequencies": {k: v / total for k, v in top.items()},
        "other": total - listed,
    }


def build_reference(chunks: Iterable[Any], sample_rows: int = SAMPLE_ROWS) -> Reference:
    """The reference of Arrow record batches or tables, read one at a time."""
    builder = ProfileBuilder(sample_rows)
    feed(builder.add, chunks)
    if builder.rows == 0:
        raise UsageError("The reference data has no rows: give the training data the model was fitted on.")
    return builder.build()


def feed(add: Any, chunks: Iterable[Any]) -> None:
    """Call ``add`` on each chunk, letting each go before the next is read (a ``for`` loop would hold the
    last chunk while the next one is read: two chunks in memory instead of one)."""
    iterator = iter(chunks)
    while (chunk := next(iterator, None)) is not None:
        add(chunk)
        del chunk


def reference_of(frame: Any, sample_rows: int = SAMPLE_ROWS) -> Reference:
    """The reference of a pandas DataFrame, an Arrow table or anything ``pandas.DataFrame()`` accepts."""
    table = cols.to_arrow_table(frame)
    builder = ProfileBuilder(sample_rows)
    for batch in table.to_batches():
        builder.add(batch)
    if builder._sample is None:  # no batch at all: an empty frame still has columns
        import pyarrow as pa

        builder.add(pa.RecordBatch.from_pylist([], schema=table.schema))
    return builder.build()


def profile(frame: Any, sample_rows: int = SAMPLE_ROWS) -> Profile:
    """The reference profile of a DataFrame (or anything ``pandas.DataFrame()`` accepts, like an array)."""
    return reference_of(frame, sample_rows).profile


def load_profile(data: dict[str, Any], source: str = "the profile") -> Profile:
    """A profile read from JSON, checked: a newer schema than this mlops-nb knows is refused."""
    if not isinstance(data, dict) or not isinstance(data.get("columns"), dict):
        raise UsageError(f"{source} is not a reference profile (no 'columns'): give a reference_profile.json.")
    version = data.get("schema_version", data.get("version", 1))
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise UsageError(
            f"{source} has profile schema {version!r}; this mlops-nb reads up to {SCHEMA_VERSION}. Upgrade mlops-nb."
        )
    rows = int(data.get("rows", 0))
    columns = data["columns"]
    if version < 2:  # schema 1 had no per-column count: rebuilt from the rows and the missing rate
        columns = {
            name: {"count": round(rows * (1 - float(spec.get("missing_rate") or 0.0))), **spec}
            for name, spec in columns.items()
        }
    profile: Profile = {
        "schema_version": version,
        "rows": rows,
        "sample_rows": int(data.get("sample_rows", rows)),
        "columns": columns,
    }
    return profile
