"""Slices: the metrics on segments of the rows, declared or found.

Declared slices are column names: ``"cat0"`` (one slice per value, the most common first) or
``"num1:quantile(4)"`` (one slice per quantile bin of a numeric column; a bare numeric column with many
values gets quartiles). The search for the worst segments tries every condition of that kind on every column
(a value of a column with few values, a quartile bin of a numeric one) and every conjunction of two conditions
on different columns, keeps those with at least ``min_support`` rows, and ranks them by how far the primary
metric (``metrics.PRIMARY``) falls below its value on all rows. A conjunction is kept only when it is worse
than each of its two conditions alone: otherwise one condition says it all.

Every reported slice has bootstrap intervals of its metrics (resamples of all rows, restricted to the slice).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

from mlops_nb.evaluation.metrics import COUNTS, LOWER_IS_BETTER, PRIMARY, Scored, compute, jsonable, primary
from mlops_nb.evaluation.resampling import MAX_CELLS, Interval, intervals
from mlops_nb.exceptions import UsageError

MAX_LEVELS = 20  # a column with more distinct values is binned (numeric) or left out of the search
MAX_DECLARED = 50  # slices of one declared categorical column (its most common values)
QUARTILES = 4
WORST = 5
SLICE_RESAMPLES = 200
_SPEC = re.compile(r"^(?P<column>.+?)(?::quantile\((?P<q>\d+)\))?$")


class Slice(TypedDict):
    """One segment's metrics: ``slice`` says which rows (``cat0 == 'a'``, ``0.1 < num1 <= 0.5``)."""

    slice: str
    rows: int
    metrics: dict[str, float]
    intervals: dict[str, Interval]
    gap: float  # how far the primary metric falls below (or an error metric rises above) the overall value


@dataclass(frozen=True)
class Condition:
    column: str
    text: str
    mask: np.ndarray


def min_support(rows: int) -> int:
    """The default minimum rows of a found segment: 5% of the rows, at least 20."""
    return max(20, int(0.05 * rows))


def _values(frame: Any, column: str) -> np.ndarray:
    return frame[column].to_numpy()


def _is_numeric(values: np.ndarray) -> bool:
    return values.dtype.kind in "iuf"


def _levels(column: str, values: np.ndarray, limit: int) -> list[Condition]:
    import pandas as pd

    counts = pd.Series(values).value_counts(dropna=False)
    out = []
    for value in counts.index[:limit]:
        mask = np.asarray(pd.isna(values)) if pd.isna(value) else np.asarray(values == value)
        shown = "missing" if pd.isna(value) else repr(jsonable(value))
        out.append(Condition(column, f"{column} is missing" if shown == "missing" else f"{column} == {shown}", mask))
    return out


def _bins(column: str, values: np.ndarray, q: int) -> list[Condition]:
    finite = values[np.isfinite(values.astype(float))]
    if len(finite) == 0:
        return []
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, q + 1)))
    out = []
    for i in range(len(edges) - 1):
        low, high = edges[i], edges[i + 1]
        if i == 0:
            mask, text = values <= high, f"{column} <= {high:.4g}"
        else:
            mask, text = (values > low) & (values <= high), f"{low:.4g} < {column} <= {high:.4g}"
        out.append(Condition(column, text, np.asarray(mask)))
    return out


def _conditions_of(frame: Any, column: str, q: int | None, limit: int) -> list[Condition]:
    values = _values(frame, column)
    if q is not None:
        if not _is_numeric(values):
            raise UsageError(f"Slice {column}:quantile({q}): {column} is not numeric. Slice it by value: {column!r}.")
        return _bins(column, values, q)
    if _is_numeric(values) and values.dtype.kind != "b" and len(np.unique(values)) > MAX_LEVELS:
        return _bins(column, values, QUARTILES)
    return _levels(column, values, limit)


def declared(frame: Any, specs: list[str]) -> list[Condition]:
    """The conditions of declared slices (``"cat0"``, ``"num1:quantile(4)"``).

    Raises:
        UsageError: an unknown column or a malformed spec (the message lists the columns).
    """
    found = []
    for spec in specs:
        match = _SPEC.match(str(spec).strip())
        column = match["column"] if match else str(spec)
        if column not in frame.columns:
            known = ", ".join(map(str, list(frame.columns)[:30]))
            raise UsageError(
                f"Slice {spec!r}: no column {column!r} in X (columns: {known}). Write a column name, optionally "
                "with :quantile(K), e.g. 'age:quantile(4)'."
            )
        q = int(match["q"]) if match and match["q"] else None
        if q is not None and not 2 <= q <= 100:
            raise UsageError(f"Slice {spec!r}: quantile(K) takes K from 2 to 100.")
        found.extend(_conditions_of(frame, column, q, MAX_DECLARED))
    return found


def _candidates(frame: Any) -> list[Condition]:
    out = []
    for column in frame.columns:
        values = _values(frame, column)
        if _is_numeric(values) and len(np.unique(values)) > MAX_LEVELS:
            out.extend(_bins(str(column), values, QUARTILES))
        elif len(np.unique(values.astype(str))) <= MAX_LEVELS:
            out.extend(_levels(str(column), values, MAX_LEVELS))
    return out


def _primary(s: Scored, masks: np.ndarray) -> np.ndarray:
    """The primary metric on each mask (rows of ``masks``), in batches that bound memory."""
    batch = max(1, MAX_CELLS // max(s.rows, 1))
    return np.concatenate([primary(s, masks[i : i + batch]) for i in range(0, len(masks), batch)])


def _gap(s: Scored, value: np.ndarray, overall: float) -> np.ndarray:
    name = PRIMARY[s.task]
    return value - overall if name in LOWER_IS_BETTER else overall - value


def _report(s: Scored, text: str, mask: np.ndarray, overall: float) -> Slice:
    values = {n: float(v[0]) for n, v in compute(s, mask[None, :].astype(float)).items()}
    metrics = {n: v for n, v in values.items() if np.isfinite(v)}
    primary = metrics.get(PRIMARY[s.task], float("nan"))
    gap = float(_gap(s, np.array([primary]), overall)[0])
    return {
        "slice": text,
        "rows": int(mask.sum()),
        "metrics": metrics,
        "intervals": intervals(s, mask.astype(float), SLICE_RESAMPLES),
        "gap": gap if np.isfinite(gap) else 0.0,
    }


def declared_slices(s: Scored, frame: Any, specs: list[str], overall: float) -> list[Slice]:
    """The metrics of each declared slice that has rows, in the order declared."""
    return [_report(s, c.text, c.mask, overall) for c in declared(frame, specs) if c.mask.any()]


def worst_slices(s: Scored, frame: Any, overall: float, support: int | None = None, top: int = WORST) -> list[Slice]:
    """The ``top`` segments (one or two conditions, at least ``support`` rows) where the primary metric falls
    furthest below ``overall``; none that are no worse than it."""
    support = min_support(s.rows) if support is None else support
    singles = [c for c in _candidates(frame) if support <= c.mask.sum() < s.rows]
    if not singles:
        return []
    single_masks = np.array([c.mask for c in singles], dtype=float)
    single_gap = _gap(s, _primary(s, single_masks), overall)
    found: list[tuple[float, str, np.ndarray]] = [
        (g, c.text, c.mask) for g, c in zip(single_gap, singles, strict=True) if np.isfinite(g)
    ]
    pairs = [(i, j) for i in range(len(singles)) for j in range(i + 1, len(singles))]
    pairs = [(i, j) for i, j in pairs if singles[i].column != singles[j].column]
    if pairs:
        left = np.array([p[0] for p in pairs])
        right = np.array([p[1] for p in pairs])
        masks = single_masks[left] * single_masks[right]
        big = masks.sum(axis=1) >= support
        left, right, masks = left[big], right[big], masks[big]
        pair_gap = _gap(s, _primary(s, masks), overall) if len(masks) else np.array([])
        better = pair_gap > np.maximum(single_gap[left], single_gap[right])
        for k in np.flatnonzero(better & np.isfinite(pair_gap)):
            text = f"{singles[left[k]].text} and {singles[right[k]].text}"
            found.append((float(pair_gap[k]), text, masks[k].astype(bool)))
    found.sort(key=lambda f: -f[0])
    chosen: list[tuple[str, np.ndarray]] = []
    for gap, text, mask in found:
        if gap <= 0 or len(chosen) == top:
            break
        if not any(np.array_equal(mask, m) for _, m in chosen):
            chosen.append((text, mask))
    return [_report(s, text, mask, overall) for text, mask in chosen]


def worst_of(slices: list[Slice]) -> dict[str, float]:
    """Each metric's worst value over ``slices`` (lowest, or highest for an error): the ``worst_slice.*`` figures."""
    worst: dict[str, float] = {}
    for found in slices:
        for name, value in found["metrics"].items():
            if name in COUNTS or name == "mean_on_target":
                continue
            if name not in worst or (value > worst[name] if name in LOWER_IS_BETTER else value < worst[name]):
                worst[name] = value
    return worst
