"""Checks of the current data against the reference profile: each finding a problem {column, check, detail}.

Checks (``check``):

- ``missing_column``: a reference column absent from the data; ``unexpected_column``: a column the model
  never saw;
- ``dtype``: the column's kind changed (numbers in training, text now, or the reverse), numbers that
  cannot be read as such, or parts of the data (partitions, a CSV file's late rows) that disagree on its type;
- ``empty``: no value at all in the column (all missing): its drift cannot be computed, the others still are;
- ``infinite``: +-inf values (counted as missing: they would make every mean and distance infinite);
- ``missing_rate``: the share of missing values grew by more than ``missing_rate_tolerance`` (default 0.05);
- ``out_of_range``: more than ``range_tolerance`` (default 1 %) of the values lie outside the training
  [min, max] (a fresh sample of the same data already puts about 2/(n+1) of its values there);
- ``unseen_category``: categories training never saw, when the profile lists every training category.

Nothing here raises on odd data: a check that cannot run is skipped, the others still run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from mlops_nb.monitoring import columns as cols
from mlops_nb.monitoring.current import ColumnState, CurrentData
from mlops_nb.monitoring.drift import reference_counts

SHOWN = 5  # unseen categories named in a detail


class Problem(TypedDict):
    column: str
    check: str
    detail: str


class Validation(TypedDict):
    ok: bool
    problems: list[Problem]


@dataclass(frozen=True)
class Tolerances:
    missing_rate: float = 0.05
    out_of_range: float = 0.01


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole} ({part / whole:.1%})" if whole else str(part)


def validate(current: CurrentData, tolerances: Tolerances = Tolerances()) -> Validation:
    """The problems of the current data against its reference's profile, in column order."""
    problems: list[Problem] = []
    ref_columns = current.reference.profile["columns"]
    found = current.columns or []
    for name in ref_columns:
        if name not in current.states:
            problems.append({"column": name, "check": "missing_column", "detail": "in the reference, not in the data"})
    for name in found:
        if name not in ref_columns:
            problems.append({"column": name, "check": "unexpected_column", "detail": "not in the reference"})
    for name, state in current.states.items():
        spec = ref_columns[name]
        problems.extend(_column(name, spec, state, current, tolerances))
    return {"ok": not problems, "problems": problems}


def _column(name: str, spec: dict, state: ColumnState, current: CurrentData, tol: Tolerances) -> list[Problem]:
    problems: list[Problem] = []

    def add(check: str, detail: str) -> None:
        problems.append({"column": name, "check": check, "detail": detail})

    kinds_differ = state.current_kind not in (state.kind, cols.OTHER) and state.kind != cols.OTHER
    mixed = len(state.types) > 1  # e.g. int64 in one partition, string in another
    if kinds_differ or not state.readable or mixed:
        now = f"{' and '.join(state.types.values())} in different parts of the data" if mixed else state.dtype
        detail = f"{state.kind} in the reference ({spec.get('dtype')}), {state.current_kind} now ({now})"
        add("dtype", detail + ("" if state.readable else ": its values are not numbers, drift not computed"))
    rows = current.rows
    if rows and state.missing == rows:
        add("empty", f"no value in {rows} rows (all missing): drift not computed")
        return problems
    if state.infinite:
        add("infinite", f"{_share(state.infinite, rows)} values are infinite (counted as missing)")
    rate = state.missing / rows if rows else 0.0
    ref_rate = float(spec.get("missing_rate") or 0.0)
    if rate - ref_rate > tol.missing_rate:
        add("missing_rate", f"{rate:.1%} missing, {ref_rate:.1%} in the reference")
    if state.kind == cols.NUMERIC and state.readable and spec.get("min") is not None and state.present:
        outside = state.below + state.above
        if outside / state.present > tol.out_of_range:
            add(
                "out_of_range",
                f"{_share(outside, state.present)} values outside the training range "
                f"[{spec['min']:.6g}, {spec['max']:.6g}] (seen: [{state.low:.6g}, {state.high:.6g}])",
            )
    if state.kind == cols.CATEGORICAL and state.categories:
        known, other = reference_counts(spec)
        if other == 0 and known:
            unseen = {c: n for c, n in state.categories.items() if c not in known}
            if unseen:
                present = sum(state.categories.values())
                names = sorted(unseen, key=lambda c: (-unseen[c], c))  # most common first, ties by name
                shown = ", ".join(repr(c) for c in names[:SHOWN]) + (" ..." if len(names) > SHOWN else "")
                add(
                    "unseen_category",
                    f"{len(unseen)} {'category' if len(unseen) == 1 else 'categories'} not seen in training ({shown}): "
                    f"{_share(sum(unseen.values()), present)} values",
                )
    return problems
