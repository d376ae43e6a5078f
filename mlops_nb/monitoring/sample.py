"""A seeded uniform sample of the rows of a stream, the same however the stream is chunked.

Every row gets a random key drawn from a seeded generator in row order; the sample is the ``cap`` rows with
the smallest keys (bottom-k sampling). Up to ``cap`` rows every row is kept, so statistics on the sample are
exact; beyond it the sample is uniform, and because NumPy's generator yields the same keys whether it is
asked for 10 rows twice or 20 once, chunking never changes which rows are kept. A part of the stream read
elsewhere (a Dask partition) starts its generator ``offset`` rows ahead, so its rows get the very keys they
would get in one pass, and :meth:`RowSample.merge` of the parts' samples keeps the same rows as one pass.
"""

from __future__ import annotations

from typing import Any

SEED = 0


class RowSample:
    """The numeric columns of a stream's sampled rows.

    Args:
        columns: the names of the columns to keep.
        cap: the most rows kept.
        seed: the seed of the row keys.
        offset: the stream's row this sample's first row is (its keys continue the generator from there).
    """

    def __init__(self, columns: list[str], cap: int, seed: int = SEED, offset: int = 0) -> None:
        import numpy as np

        self.cap = cap
        self.rows = 0
        bits = np.random.PCG64(seed)  # default_rng(seed)'s generator; one draw per float64 key
        if offset:
            bits.advance(offset)
        self._rng = np.random.Generator(bits)
        self._keys: list[Any] = []
        self._values: dict[str, list[Any]] = {name: [] for name in columns}
        self._held = 0
        self._sorted: dict[str, Any] = {}

    def add(self, values: dict[str, Any], rows: int) -> None:
        """Offer one chunk: ``values`` maps each column to its float64 array of ``rows`` values."""
        if self._sorted:
            raise RuntimeError("RowSample.add after sorted_values: the sample is finished")
        keys = self._rng.random(rows)  # drawn even when every row is kept: the keys must not depend on chunking
        self.rows += rows
        self._keys.append(keys)
        for name, column in self._values.items():
            column.append(values[name])
        self._held += rows
        if self._held > self.cap + self.cap // 2:  # compact now and then: at most 1.5 x cap rows held
            self._compact()

    def _compact(self) -> None:
        import numpy as np

        keys = np.concatenate(self._keys)
        if len(keys) <= self.cap:
            keep = None
        else:
            keep = np.sort(np.argpartition(keys, self.cap - 1)[: self.cap])  # sorted: rows stay in order
            keys = keys[keep]
        self._keys = [keys]
        for name in self._values:  # one column at a time, so only one column's copy is ever extra
            chunks = self._values[name]
            self._values[name] = []
            column = np.concatenate(chunks) if len(chunks) != 1 else chunks[0]
            del chunks
            self._values[name] = [column if keep is None else column[keep]]
        self._held = len(keys)

    def merge(self, later: RowSample) -> None:
        """Take in the sample of the rows right after this one's (a sample started at ``offset`` = this one's
        end): the result keeps the rows one sample of both would keep."""
        if self._sorted or later._sorted:
            raise RuntimeError("RowSample.merge after sorted_values: the sample is finished")
        self.rows += later.rows
        self._keys.extend(later._keys)
        for name, column in self._values.items():
            column.extend(later._values[name])
        self._held += later._held
        if self._held > self.cap:
            self._compact()

    def values(self, name: str) -> Any:
        """The sampled values of a column, in row order, missing ones as NaN (a view: do not modify)."""
        import numpy as np

        if len(self._keys) > 1:
            self._compact()
        return self._values[name][0] if self._values[name] else np.empty(0)

    def seal(self) -> None:
        """Settle which rows are kept. Call it before :meth:`sorted_values` of different columns run on
        threads side by side: each then sorts its own column only, and nothing shared changes."""
        if self._held > self.cap or len(self._keys) > 1:
            self._compact()

    def sorted_values(self, name: str) -> Any:
        """The sampled, present (not NaN) values of a column, sorted in place: no copy of the column.

        Rows are no longer aligned across columns afterwards, so the sample takes no more chunks.
        """
        import numpy as np

        if name in self._sorted:
            return self._sorted[name]
        self.seal()
        column = self._values[name][0] if self._values[name] else np.empty(0)
        column.sort()  # NaN sort last
        missing = int(np.isnan(column).sum()) if len(column) and np.isnan(column[-1]) else 0
        self._sorted[name] = column[: len(column) - missing]
        return self._sorted[name]
