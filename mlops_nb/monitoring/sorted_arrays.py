"""Operations on sorted float arrays, done block by block so that they stay in the CPU cache.

On arrays of millions of values a plain ``numpy.searchsorted`` misses the cache at every step of every
binary search, and full-size temporaries cost page faults; working on blocks of :data:`BLOCK` values keeps
both small. Results are the same as NumPy's to the bit.
"""

from __future__ import annotations

from typing import Any

BLOCK = 1 << 16


def searchsorted(a: Any, keys: Any, side: str = "left") -> Any:
    """``numpy.searchsorted(a, keys, side)`` for sorted ``keys``: each block searches only its slice of ``a``."""
    import numpy as np

    if len(keys) <= BLOCK:
        return np.searchsorted(a, keys, side=side)
    out = np.empty(len(keys), dtype=np.int64)
    for start in range(0, len(keys), BLOCK):
        block = keys[start : start + BLOCK]
        low = int(np.searchsorted(a, block[0], side="left"))
        high = int(np.searchsorted(a, block[-1], side="right"))
        out[start : start + BLOCK] = np.searchsorted(a[low:high], block, side=side) + low
    return out


def quantiles(sorted_values: Any, qs: Any) -> Any:
    """``numpy.quantile(values, qs)`` (linear method) of already sorted values, without partitioning again."""
    import numpy as np

    n = len(sorted_values)
    qs = np.asarray(qs, dtype=np.float64)
    virtual = (n - 1) * qs  # NumPy's formulas, step by step, for the same floats
    below = np.floor(virtual)
    gamma = virtual - below
    below = np.minimum(below, n - 1).astype(np.int64)
    above = np.minimum(below + 1, n - 1)
    a, b = sorted_values[below], sorted_values[above]
    diff = b - a
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)  # NumPy's _lerp


def histogram(sorted_values: Any, bins: int, low: float, high: float) -> tuple[Any, Any]:
    """``numpy.histogram(values, bins, range=(low, high))`` of sorted values: (counts, edges). A range too
    narrow for ``bins`` distinct floating-point edges (1.0 to 1.0000000000000002) gets one bin."""
    import numpy as np

    try:
        edges = np.histogram_bin_edges(sorted_values[:1], bins=bins, range=(low, high))
    except ValueError:  # NumPy: "Too many bins for data range"
        edges = np.array([low, high], dtype=float)
    inner = np.searchsorted(sorted_values, edges[1:-1], side="left")
    last = np.searchsorted(sorted_values, edges[-1], side="right")  # the last bin is closed
    first = np.searchsorted(sorted_values, edges[0], side="left")
    return np.diff(np.concatenate(([first], inner, [last]))), edges
