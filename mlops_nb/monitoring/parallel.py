"""Per-column work on a few threads.

NumPy releases the GIL while it sorts and searches, which is most of the monitor's work on numeric columns,
so columns scored on two threads take about half the time on two cores. Each call works on its own column's
arrays; what every column shares (a sample's row order) is settled before the threads start.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_THREADS = 8  # beyond this, memory bandwidth, not cores, bounds sorting


def threads() -> int:
    """The CPUs this process may run on (its affinity, so a container's or ``taskset``'s limit counts)."""
    try:
        return max(1, min(len(os.sched_getaffinity(0)), MAX_THREADS))
    except AttributeError:  # macOS, Windows
        return max(1, min(os.cpu_count() or 1, MAX_THREADS))


def each(func: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[func(item) for item in items]``, items spread over :func:`threads` threads; the first error raised."""
    items = list(items)
    workers = min(len(items), threads())
    if workers <= 1:
        return [func(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, thread_name_prefix="mlops-nb-monitor") as pool:
        return list(pool.map(func, items))
