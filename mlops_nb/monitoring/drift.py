"""Per-feature and dataset drift: every applicable method scored, one deciding per feature as a preset says.

Presets (``--preset``):

- ``mlops-nb`` (default): numeric columns decided by ``wasserstein`` >= 0.1 (normed by the reference std),
  categorical by ``jensenshannon`` >= 0.1 in base 2; ``ks`` and ``chi2`` at p < 0.05, ``psi`` >= 0.2 reported
  beside. Effect sizes decide, so a million rows do not flag a negligible shift.
- ``evidently``: Evidently's DataDriftPreset choices: with at most 1,000 reference rows, ``ks`` (numeric) and
  ``chi2`` (categorical) at p < 0.05; above, ``wasserstein`` >= 0.1 and ``jensenshannon`` >= 0.1 in natural
  log; ``psi`` at 0.1.

Both: the dataset drifts when the share of drifted features reaches 0.5. When the deciding method cannot be
computed (a reference known only by its profile has no sample for ``wasserstein``), the next of
``psi``, ``ks``, ``jensenshannon``, ``chi2`` that can decides, and the feature's ``method`` says which.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring import columns as cols
from mlops_nb.monitoring import parallel
from mlops_nb.monitoring.current import ColumnState, CurrentData
from mlops_nb.monitoring.methods import CategoricalData, NumericData, Score, methods

FALLBACK = ("psi", "ks", "wasserstein", "jensenshannon", "chi2")


@dataclass(frozen=True)
class Preset:
    """Which method decides per kind, thresholds, the Jensen-Shannon base and the dataset drift share.

    Attributes:
        numeric, categorical: ``reference rows -> method name`` of the deciding method.
        thresholds: thresholds by method name, over the methods' own defaults.
        base: the logarithm base of Jensen-Shannon.
        drift_share: the dataset drifts when at least this share of its features drift.
    """

    name: str
    numeric: Callable[[int], str]
    categorical: Callable[[int], str]
    thresholds: dict[str, float] = field(default_factory=dict)
    base: float = 2.0
    drift_share: float = 0.5
    description: str = ""


PRESETS = {
    "mlops-nb": Preset(
        "mlops-nb",
        numeric=lambda rows: "wasserstein",
        categorical=lambda rows: "jensenshannon",
        description="effect sizes decide: Wasserstein/std >= 0.1, Jensen-Shannon (base 2) >= 0.1",
    ),
    "evidently": Preset(
        "evidently",
        numeric=lambda rows: "ks" if rows <= 1000 else "wasserstein",
        categorical=lambda rows: "chi2" if rows <= 1000 else "jensenshannon",
        thresholds={"psi": 0.1},
        base=math.e,
        description="Evidently's DataDriftPreset: KS/chi2 up to 1,000 reference rows, else Wasserstein/JS (ln)",
    ),
}
DEFAULT_PRESET = "mlops-nb"


def tuned(chosen: Preset, thresholds: Mapping[str, float] | None = None, drift_share: float | None = None) -> Preset:
    """``chosen`` with ``thresholds`` (by method name) over its own, and another dataset ``drift_share``.

    Raises:
        UsageError: a threshold for a method that does not exist.
    """
    import dataclasses

    known = sorted({m.name for kind in (cols.NUMERIC, cols.CATEGORICAL) for m in methods.for_kind(kind)})
    unknown = sorted(set(thresholds or {}) - set(known))
    if unknown:
        raise UsageError(f"No drift method {unknown[0]!r} to set a threshold for: use one of {', '.join(known)}.")
    if not thresholds and drift_share is None:
        return chosen
    return dataclasses.replace(
        chosen,
        thresholds={**chosen.thresholds, **(thresholds or {})},
        drift_share=chosen.drift_share if drift_share is None else drift_share,
    )


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(f"No drift preset {name!r}: choose one of {', '.join(PRESETS)}.") from None


class Feature(TypedDict):
    kind: str
    method: str | None
    drift: bool | None
    missing_rate: float
    scores: dict[str, Score]


def numeric_data(current: CurrentData, name: str, state: ColumnState) -> NumericData:
    import numpy as np

    current.finish()
    spec = current.reference.profile["columns"][name]
    unique = current.reference_distinct(name)
    cur_le, cur_eq = current.ks_counts(name) or (None, None)
    bins = spec.get("psi")
    return NumericData(
        ref_sorted=current.reference.samples.get(name),
        ref_unique=unique[0] if unique else None,
        ref_le=unique[1] if unique else None,
        ref_std=spec.get("std"),
        psi_edges=np.asarray(bins["edges"], dtype=float) if bins else None,
        psi_frequencies=np.asarray(bins["frequencies"], dtype=float) if bins else None,
        cur_sorted=current.sorted_sample(name),
        cur_n=state.present,
        cur_le=cur_le,
        cur_lt=cur_le if cur_eq is None else cur_le - cur_eq,
        psi_counts=state.psi_counts,
    )


def reference_counts(spec: dict[str, Any]) -> tuple[dict[str, float], float]:
    """A categorical column's reference counts per listed category, and the count of the others.

    Profiles of schema 1 kept only frequencies of the top 50: counts are rebuilt from them.
    """
    if "counts" in spec:
        return {k: float(v) for k, v in spec["counts"].items()}, float(spec.get("other", 0))
    count = float(spec.get("count") or 1.0)
    frequencies = spec.get("frequencies") or {}
    listed = {k: v * count for k, v in frequencies.items()}
    complete = spec.get("distinct", 0) <= len(frequencies)
    return listed, 0.0 if complete else max(count - sum(listed.values()), 0.0)


OTHERS = "(other)"


def categorical_data(spec: dict[str, Any], state: ColumnState) -> CategoricalData:
    """Counts aligned over the reference's categories, the current's new ones, and "(other)" when the
    reference listed only its most common (current values it did not list go there too)."""
    import numpy as np

    ref, other = reference_counts(spec)
    categories = list(ref)
    cur_counts = [float(state.categories.get(c, 0)) for c in categories]
    unlisted = {c: n for c, n in state.categories.items() if c not in ref}
    if other > 0:
        categories.append(OTHERS)
        ref_counts = [*ref.values(), other]
        cur_counts.append(float(sum(unlisted.values())))
    else:
        ref_counts = list(ref.values())
        for category, count in sorted(unlisted.items()):
            categories.append(category)
            ref_counts.append(0.0)
            cur_counts.append(float(count))
    return CategoricalData(categories, np.asarray(ref_counts), np.asarray(cur_counts))


def feature(current: CurrentData, name: str, chosen: Preset) -> Feature:
    """One feature's drift: the score of every applicable method, and the deciding one's verdict."""
    state = current.states[name]
    spec = current.reference.profile["columns"][name]
    result: Feature = {
        "kind": state.kind,
        "method": None,
        "drift": None,
        "missing_rate": current.missing_rate(name),
        "scores": {},
    }
    if state.kind == cols.NUMERIC:
        if not state.readable:
            return result
        data: Any = numeric_data(current, name, state)
        decider = chosen.numeric(current.reference.rows)
    elif state.kind == cols.CATEGORICAL:
        data = categorical_data(spec, state)
        decider = chosen.categorical(current.reference.rows)
    else:
        return result
    options = {"base": chosen.base}
    for method in methods.for_kind(state.kind):
        score = method.score(data, chosen.thresholds.get(method.name), options)
        if score is not None:
            result["scores"][method.name] = score
    for name_ in (decider, *FALLBACK):
        score = result["scores"].get(name_)
        if score is not None and score["drift"] is not None:
            result["method"], result["drift"] = name_, score["drift"]
            break
    return result


def features(current: CurrentData, chosen: Preset) -> dict[str, Feature]:
    """The drift of every reference column found in the current data, in the current data's order."""
    current.finish()  # the samples sorted and counted before the columns are scored side by side
    names = [name for name, s in current.states.items() if s.kind != cols.OTHER]
    return dict(zip(names, parallel.each(lambda name: feature(current, name, chosen), names), strict=True))


def dataset_drift(found: dict[str, Feature], drift_share: float) -> tuple[bool, float]:
    """(dataset drift, share of drifted features among those decided)."""
    decided = [f["drift"] for f in found.values() if f["drift"] is not None]
    share = sum(decided) / len(decided) if decided else 0.0
    return bool(decided) and share >= drift_share, share
