"""The current data, summarised chunk by chunk against a reference: what drift and validation need, nothing more.

Per reference column present in the data: missing values; for numeric columns the KS counts (current values
<= and == each distinct reference value), the PSI bin counts, values below/above the training range, and a
seeded sample (every value up to ``sample_rows``) for Wasserstein and SciPy's exact small-sample KS; for
categorical columns the count of every category.

While every row fits in the sample, the numeric counts are taken once, at the end, from the sorted sample:
one sort per column, whatever the chunking. When a chunk takes the data past ``sample_rows``, the rows held
so far are counted and from then on the chunks are sorted and counted in blocks of :data:`STREAM_ROWS` rows:
counts add up, so KS and PSI stay exact over every row, and memory stays bounded by a block and the sample.

Parts of the data summarised apart (Dask partitions, each started at its first row's ``offset``) combine:
:meth:`CurrentData.counted` takes a part's counts over all its rows, :meth:`CurrentData.merge` adds a later
part's counts and sample to an earlier one's, so the merged summary equals the one-pass summary.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mlops_nb.monitoring import columns as cols
from mlops_nb.monitoring import parallel, sorted_arrays
from mlops_nb.monitoring.profile import Reference, bin_counts
from mlops_nb.monitoring.sample import RowSample

SAMPLE_ROWS = 1_000_000
STREAM_ROWS = 1_000_000  # past the sample, chunks are counted in blocks of this many rows


@dataclass
class ColumnState:
    """What the current data holds of one column."""

    kind: str  # the reference's kind
    dtype: str  # the current Arrow type (the first chunk's)
    current_kind: str
    types: dict[str, str] = field(default_factory=dict)  # kind -> the first Arrow type its chunks came in as
    missing: int = 0
    infinite: int = 0  # +-inf values, counted as missing too
    readable: bool = True  # False: a numeric reference column whose current values are not numbers
    present: int = 0
    below: int = 0  # values under the reference minimum
    above: int = 0  # values over the reference maximum
    low: float = float("inf")
    high: float = float("-inf")
    cur_le: Any = None  # current values <= each distinct reference value
    cur_eq: Any = None  # current values == each distinct reference value (None: no tie seen)
    psi_counts: Any = None
    categories: Counter[str] = field(default_factory=Counter)


class CurrentData:
    """Summarises current data against ``reference``, one Arrow record batch or table at a time.

    Args:
        reference: the reference to compare with.
        sample_rows: current rows kept for Wasserstein (all of them up to this many).
        offset: the data's row where this part of it starts (a part summarised apart, to be merged).
    """

    def __init__(self, reference: Reference, sample_rows: int = SAMPLE_ROWS, offset: int = 0) -> None:
        self.reference = reference
        self.sample_rows = sample_rows
        self.offset = offset
        self.rows = 0
        self.columns: list[str] | None = None  # every column of the current data, in order
        self.states: dict[str, ColumnState] = {}
        self.sample: RowSample | None = None
        # Reference distinct values and how many sample values are <= each (None: all distinct, so 1, 2, 3 ...)
        self._unique: dict[str, tuple[Any, Any]] = {}
        self.streaming = False  # past sample_rows: numeric counts are taken chunk by chunk
        self._pending: list[dict[str, Any]] = []  # streaming: chunks' numbers not counted yet
        self._pending_rows = 0
        self._finished = False

    def _start(self, schema: Any) -> None:
        import numpy as np

        self.columns = list(schema.names)
        ref_columns = self.reference.profile["columns"]
        for name, arrow_field in zip(schema.names, schema, strict=True):
            if name not in ref_columns:
                continue
            kind = ref_columns[name].get("kind", cols.OTHER)
            current_kind = cols.kind_of(arrow_field.type)
            if kind == cols.CATEGORICAL and cols.is_label(arrow_field.type):
                current_kind = cols.CATEGORICAL  # integer labels of categories (a classifier's classes, 0 and 1)
            self.states[name] = ColumnState(kind, str(arrow_field.type), current_kind)
            sample = self.reference.samples.get(name)
            if kind == cols.NUMERIC and sample is not None and len(sample):
                last = np.empty(len(sample), dtype=bool)  # the last of each run of equal sorted values
                last[:-1] = sample[1:] != sample[:-1]
                last[-1] = True
                self._unique[name] = (sample, None) if last.all() else (sample[last], np.flatnonzero(last) + 1)
        numeric = [n for n, s in self.states.items() if s.kind == cols.NUMERIC]
        self.sample = RowSample(numeric, self.sample_rows, offset=self.offset)

    def add(self, chunk: Any) -> None:
        """Add a ``pyarrow.RecordBatch`` or ``pyarrow.Table``."""
        import numpy as np
        import pyarrow as pa

        if self._finished:
            raise RuntimeError("CurrentData.add after finish()")
        if self.columns is None:
            self._start(chunk.schema)
        rows = chunk.num_rows
        self.rows += rows
        names = set(chunk.schema.names)
        values = {}
        for name, state in self.states.items():
            if name not in names:  # a partition without the column: all missing there
                state.missing += rows
                if state.kind == cols.NUMERIC:
                    values[name] = np.full(rows, np.nan)
                continue
            column = chunk.column(name)
            if not pa.types.is_null(column.type):  # partitions may disagree: int64 in one, string in another
                state.types.setdefault(cols.kind_of(column.type), str(column.type))
            if state.kind == cols.NUMERIC:
                values[name] = self._numbers(state, column, rows)
            else:
                state.missing += column.null_count
                if state.kind == cols.CATEGORICAL:
                    state.categories.update(dict(cols.category_counts(column)))
        if self.sample is None:
            return
        if not self.streaming and self.rows > self.sample_rows:
            # From now on the sample drops rows: count every row held so far (all of them, nothing dropped
            # yet), then count each chunk as it comes.
            self._count_held()
        if self.streaming:
            self._pending.append(values)
            self._pending_rows += rows
            if self._pending_rows >= STREAM_ROWS:
                self._count_pending()
        self.sample.add(values, rows)

    def _count_pending(self) -> None:
        """Count the chunks held since the last count: a sort and a search cost less a row in one large block
        than in several small ones (the reading chunks are small to keep memory down)."""
        import numpy as np

        pending, self._pending, self._pending_rows = self._pending, [], 0
        if not pending:
            return

        def count(name: str) -> None:
            parts = [values[name] for values in pending]
            self._count_all(name, parts[0] if len(parts) == 1 else np.concatenate(parts))

        parallel.each(count, list(pending[0]))

    def _count_held(self) -> None:
        """Count every row the sample holds (all rows so far) and count chunks as they come from now on."""
        self.streaming = True
        self.sample.seal()
        numeric = [name for name, state in self.states.items() if state.kind == cols.NUMERIC]
        parallel.each(lambda name: self._count_all(name, self.sample.values(name)), numeric)

    def _count_all(self, name: str, numbers: Any) -> None:
        """Add the counts of a numeric column's values (NaN for missing), in any order."""
        import numpy as np

        self._count(name, np.sort(numbers[~np.isnan(numbers)]))

    def counted(self) -> CurrentData:
        """This part's summary, ready to merge: every count taken over all its rows. Returns itself."""
        if self._finished:
            raise RuntimeError("CurrentData.counted after finish()")
        if self.sample is not None and not self.streaming:
            self._count_held()
        self._count_pending()
        return self

    def merge(self, later: CurrentData) -> CurrentData:
        """Add the summary of the part right after this one (both :meth:`counted`); returns itself.

        A part without rows adds nothing. Parts have the same columns (read conformed to the first part's).
        """
        if self._finished or later._finished:
            raise RuntimeError("CurrentData.merge after finish()")
        if later.columns is None:
            return self
        if self.columns is None:
            return later
        if later.columns != self.columns:
            raise ValueError(f"CurrentData.merge: columns {later.columns} after {self.columns}")
        for name, state in self.states.items():
            other = later.states[name]
            for count in ("missing", "infinite", "present", "below", "above"):
                setattr(state, count, getattr(state, count) + getattr(other, count))
            state.readable = state.readable and other.readable
            state.types = {**other.types, **state.types}
            state.low, state.high = min(state.low, other.low), max(state.high, other.high)
            state.cur_le = _add(state.cur_le, other.cur_le)
            state.psi_counts = _add(state.psi_counts, other.psi_counts)
            if other.cur_eq is not None:
                state.cur_eq = other.cur_eq if state.cur_eq is None else state.cur_eq + other.cur_eq
            state.categories.update(other.categories)
        if self.sample is not None and later.sample is not None:
            self.sample.merge(later.sample)
        self.rows += later.rows
        return self

    def _numbers(self, state: ColumnState, column: Any, rows: int) -> Any:
        import numpy as np

        numbers = cols.try_numbers(column) if state.readable else None
        if numbers is None:
            state.readable = False
            state.missing += column.null_count
            return np.full(rows, np.nan)
        state.infinite += cols.drop_infinite(numbers)
        present = rows - int(np.count_nonzero(np.isnan(numbers)))
        state.missing += rows - present
        state.present += present
        return numbers

    def _count(self, name: str, present: Any, ks: bool = True) -> None:
        """Add the counts of sorted present values of a numeric column (``ks``: the KS counts too)."""
        import numpy as np

        state = self.states[name]
        if not len(present) or not state.readable:
            return
        state.low = min(state.low, float(present[0]))
        state.high = max(state.high, float(present[-1]))
        spec = self.reference.profile["columns"][name]
        if spec.get("min") is not None:
            state.below += int(np.searchsorted(present, spec["min"], side="left"))
            state.above += len(present) - int(np.searchsorted(present, spec["max"], side="right"))
        if ks and name in self._unique:
            unique = self._unique[name][0]
            le, (tied, equal) = ks_counts(present, unique)
            state.cur_le = le if state.cur_le is None else state.cur_le + le
            if len(tied):  # kept sparse: with continuous data no current value equals a reference one
                if state.cur_eq is None:
                    state.cur_eq = np.zeros(len(unique), dtype=np.int64)
                state.cur_eq[tied] += equal
        bins = spec.get("psi")
        if bins:
            counts = bin_counts(present, np.asarray(bins["edges"], dtype=float))
            state.psi_counts = counts if state.psi_counts is None else state.psi_counts + counts

    def finish(self) -> None:
        """After the last chunk: count the held rows when they were all of them (one sort per column)."""
        if self._finished:
            return
        self._finished = True
        self._count_pending()
        if self.sample is not None:
            self.sample.seal()
        if self.sample is not None and not self.streaming:
            numeric = [name for name, state in self.states.items() if state.kind == cols.NUMERIC]
            # KS counts are taken when scored: one column's at a time
            parallel.each(lambda name: self._count(name, self.sample.sorted_values(name), ks=False), numeric)

    def sorted_sample(self, name: str) -> Any:
        """The current sample of a numeric column's present values, sorted (all of them up to ``sample_rows``)."""
        self.finish()
        return self.sample.sorted_values(name) if self.sample is not None else None

    def reference_distinct(self, name: str) -> tuple[Any, Any] | None:
        """A numeric column's distinct reference values and how many sample values are <= each (None when
        all are distinct: 1, 2, 3 ...), or None without a reference sample."""
        return self._unique.get(name)

    def ks_counts(self, name: str) -> tuple[Any, Any] | None:
        """(<=, ==) counts of the current values at each distinct reference value, or None without a sample."""
        import numpy as np

        if name not in self._unique:
            return None
        self.finish()
        unique = self._unique[name][0]
        state = self.states[name]
        if not self.streaming:  # every value is in the sorted sample: count now, nothing kept meanwhile
            le, (tied, equal) = ks_counts(self.sorted_sample(name), unique)
            eq = None
            if len(tied):
                eq = np.zeros(len(unique), dtype=np.int64)
                eq[tied] = equal
            return le, eq
        le = state.cur_le if state.cur_le is not None else np.zeros(len(unique), dtype=np.int64)
        return le, state.cur_eq

    def missing_rate(self, name: str) -> float:
        return self.states[name].missing / self.rows if self.rows else 0.0


def _add(total: Any, counts: Any) -> Any:
    return counts if total is None else total if counts is None else total + counts


def ks_counts(present: Any, unique: Any) -> tuple[Any, tuple[Any, Any]]:
    """How many of the sorted ``present`` values are <= each sorted distinct ``unique`` value, and the ties:
    (indices of ``unique`` that some values equal, how many equal each).

    One binary search gives "<="; ties are found by looking at the value just before, and counted by a
    second search for those alone. When the chunk is smaller than the reference, the chunk's values are
    placed among the reference's instead and counted per place: O(n log k + k) rather than O(k log n).
    """
    import numpy as np

    if len(unique) > len(present):
        size = len(unique) + 1
        le = np.cumsum(np.bincount(sorted_arrays.searchsorted(unique, present, side="left"), minlength=size)[:-1])
        lt = np.cumsum(np.bincount(sorted_arrays.searchsorted(unique, present, side="right"), minlength=size)[:-1])
        tied = np.flatnonzero(le != lt)
        return le, (tied, le[tied] - lt[tied])
    le = sorted_arrays.searchsorted(present, unique, side="right")
    tied = np.flatnonzero(le > 0)
    tied = tied[present[le[tied] - 1] == unique[tied]]
    if not len(tied):
        return le, (tied, tied)
    return le, (tied, le[tied] - sorted_arrays.searchsorted(present, unique[tied], side="left"))
