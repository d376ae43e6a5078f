"""Drift methods: one registry, the built-ins first, then plugins from the ``mlops_nb.drift_methods`` entry points.

A method compares one column of the reference with the same column of the current data and returns its
statistic and, for a statistical test, its p-value. Two kinds of decision:

- ``p_value`` methods (``ks``, ``chi2``) flag drift when the p-value is below the threshold (a significance
  level). At large samples they flag differences too small to matter: read the effect size beside them.
- ``distance`` methods (``wasserstein``, ``psi``, ``jensenshannon``) flag drift when the statistic reaches the
  threshold: an effect size, whatever the sample size.

Built-ins, by kind:

- numeric ``ks``: two-sample Kolmogorov-Smirnov, equal to ``scipy.stats.ks_2samp`` (two-sided, ``method="auto"``).
  The statistic is exact over every current row: it only needs how many current values lie at or below each
  reference value, counts that add up chunk by chunk. The p-value is SciPy's exact one when both samples have
  at most 10,000 values, else Smirnov's asymptotic distribution (``scipy.stats.kstwo``), as SciPy does.
- numeric ``wasserstein``: the earth mover's distance (``scipy.stats.wasserstein_distance``) divided by the
  reference standard deviation (at least 0.001), as Evidently does, so 0.1 means "moved a tenth of a std".
- numeric ``psi``: population stability index on the reference's stored bins (deciles, open tails).
- categorical ``chi2``: chi-squared test of homogeneity of the two samples' category counts
  (``scipy.stats.chi2_contingency``, no continuity correction; with two categories it is the two-proportion
  z-test). Categories new in the current data count, as they should.
- categorical ``jensenshannon``: Jensen-Shannon *distance* (``scipy.spatial.distance.jensenshannon``, the square
  root of the divergence) of the category frequencies, in the base the score states (2 by default: bounded by 1).
- categorical ``psi``: population stability index over the categories.

PSI: sum over bins of (current - reference) * ln(current / reference), shares floored at 0.0001 so an empty
bin stays finite.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from mlops_nb.exceptions import UsageError

NUMERIC = "numeric"
CATEGORICAL = "categorical"
P_VALUE = "p_value"
DISTANCE = "distance"
ENTRY_POINTS = "mlops_nb.drift_methods"
EXACT_KS_ROWS = 10_000  # scipy.stats.ks_2samp's MAX_AUTO_N: exact p-values up to this many values per sample
MIN_STD = 0.001  # Evidently's floor of the Wasserstein norm, so a constant reference column does not divide by 0
PSI_FLOOR = 0.0001


class Score(TypedDict, total=False):
    statistic: float | None
    p_value: float | None
    threshold: float
    drift: bool | None
    base: float  # jensenshannon only: the logarithm's base


@dataclass
class NumericData:
    """One numeric column, reference beside current.

    Attributes:
        ref_sorted: the reference's sorted sample of present values (None: only a profile is known).
        ref_unique: its distinct values; ``ref_le[i]``: how many sample values are <= ``ref_unique[i]``
            (None when every value is distinct: i + 1).
        ref_std: the reference standard deviation over all its rows.
        psi_edges, psi_frequencies: the reference's PSI bins (None: an old profile without them).
        cur_sorted: the current sorted sample of present values (every one up to the sample cap).
        cur_n: how many current values are present, over every row.
        cur_le, cur_lt: how many current values are <= / < each of ``ref_unique``, over every row.
        psi_counts: how many current values fall in each PSI bin, over every row.
    """

    ref_sorted: Any | None
    ref_unique: Any | None
    ref_le: Any | None
    ref_std: float | None
    psi_edges: Any | None
    psi_frequencies: Any | None
    cur_sorted: Any
    cur_n: int
    cur_le: Any | None
    cur_lt: Any | None
    psi_counts: Any | None


@dataclass
class CategoricalData:
    """One categorical column: counts per category, reference and current aligned (new categories included)."""

    categories: list[str]
    ref_counts: Any
    cur_counts: Any


@dataclass(frozen=True)
class Method:
    """A drift method.

    Attributes:
        name: its name in results and options (``ks``, ``psi`` ...); unique per kind.
        kind: the column kind it applies to, ``numeric`` or ``categorical``.
        test: ``p_value`` (drift when p < threshold) or ``distance`` (drift when statistic >= threshold).
        threshold: the default threshold.
        compute: ``(data, options) -> (statistic, p_value)``, or None when the data cannot support it.
        description: one line for ``--help`` and docs.
        reports: the options a score states beside its statistic (``base`` for Jensen-Shannon).
    """

    name: str
    kind: str
    test: str
    threshold: float
    compute: Callable[[Any, dict[str, Any]], tuple[float, float | None] | None]
    description: str = ""
    reports: tuple[str, ...] = ()

    def score(self, data: Any, threshold: float | None = None, options: dict[str, Any] | None = None) -> Score | None:
        """The score of ``data``, or None when this method cannot be computed on it."""
        options = options or {}
        computed = self.compute(data, options)
        if computed is None:
            return None
        statistic, p_value = computed
        limit = self.threshold if threshold is None else threshold
        if self.test == P_VALUE:
            drift = None if p_value is None or p_value != p_value else bool(p_value < limit)
        else:
            drift = None if statistic != statistic else bool(statistic >= limit)
        score: Score = {"statistic": _clean(statistic), "p_value": _clean(p_value), "threshold": limit, "drift": drift}
        for option in self.reports:
            if option in options:
                score[option] = options[option]  # type: ignore[literal-required]
        return score


def _clean(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if value != value else value  # NaN -> null in JSON


@dataclass
class MethodRegistry:
    """The drift methods by (kind, name): the built-ins, then the entry points' on first use."""

    methods: dict[tuple[str, str], Method] = field(default_factory=dict)
    _plugins_loaded: bool = False

    def register(self, method: Method) -> None:
        if method.kind not in (NUMERIC, CATEGORICAL) or method.test not in (P_VALUE, DISTANCE):
            raise UsageError(f"Drift method {method.name!r}: kind must be numeric/categorical, test p_value/distance.")
        self.methods[(method.kind, method.name)] = method

    def for_kind(self, kind: str) -> list[Method]:
        self._load_plugins()
        return [m for (k, _), m in self.methods.items() if k == kind]

    def get(self, kind: str, name: str) -> Method:
        self._load_plugins()
        try:
            return self.methods[(kind, name)]
        except KeyError:
            known = ", ".join(m.name for m in self.for_kind(kind))
            raise UsageError(f"No {kind} drift method {name!r}; known: {known}.") from None

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for entry in entry_points(group=ENTRY_POINTS):
            try:
                method = entry.load()
                self.register(method() if callable(method) and not isinstance(method, Method) else method)
            except Exception as e:  # noqa: BLE001 - a broken plugin must not stop monitoring
                warnings.warn(f"Drift method plugin {entry.name!r} failed to load and is skipped: {e}", stacklevel=2)


# ---------------------------------------------------------------- numeric


def ks_statistic(ref_le: Any, n_ref: int, cur_le: Any, cur_lt: Any, n_cur: int) -> float:
    """The two-sided KS statistic from counts at the reference's distinct values.

    Between two reference values the reference ECDF is flat and the current one rises, so the largest gap is
    at a reference value (counts <=) or just before the next one (counts <): both sides' ECDFs at those
    points are all SciPy compares, with the same divisions, so the statistic is the same float.
    """
    import numpy as np

    cdf_ref = (np.arange(1, len(cur_le) + 1) if ref_le is None else ref_le) / n_ref
    gap = cur_le / n_cur
    np.subtract(cdf_ref, gap, out=gap)
    at = float(np.abs(gap, out=gap).max(initial=0.0))
    np.divide(cur_lt, n_cur, out=gap)
    np.subtract(cdf_ref[:-1], gap[1:], out=gap[1:])  # just before value i, the reference ECDF is at value i-1
    gap[0] = -gap[0]  # and 0 before the first
    return max(at, float(np.abs(gap, out=gap).max(initial=0.0)))


def ks_p_value(statistic: float, n_ref: int, n_cur: int) -> float:
    """Smirnov's asymptotic two-sided p-value, exactly as ``scipy.stats.ks_2samp`` computes it for large samples."""
    import numpy as np
    from scipy.stats import kstwo

    m, n = sorted([float(n_ref), float(n_cur)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(kstwo.sf(statistic, np.round(en)), 0, 1))


def _ks(data: NumericData, options: dict[str, Any]) -> tuple[float, float | None] | None:
    if data.ref_sorted is None or data.cur_le is None or not len(data.ref_sorted) or not data.cur_n:
        return None
    n_ref = len(data.ref_sorted)
    if max(n_ref, data.cur_n) <= EXACT_KS_ROWS and len(data.cur_sorted) == data.cur_n:
        from scipy.stats import ks_2samp

        with warnings.catch_warnings():  # SciPy's own fallback to the asymptotic method, if any, is its answer
            warnings.simplefilter("ignore", RuntimeWarning)
            result = ks_2samp(data.ref_sorted, data.cur_sorted)
        return float(result.statistic), float(result.pvalue)
    statistic = ks_statistic(data.ref_le, n_ref, data.cur_le, data.cur_lt, data.cur_n)
    return statistic, ks_p_value(statistic, n_ref, data.cur_n)


def wasserstein(u_sorted: Any, v_sorted: Any) -> float:
    """``scipy.stats.wasserstein_distance`` of two sorted samples, without comparing values again.

    In one dimension the distance is also the area between the quantile functions, which are steps at
    i/n and j/m. In units of 1/(n*m) those breakpoints are the integers i*m and j*n, whose merged order
    follows from integer division: no search, no sort. The sum runs over blocks of u's breakpoints (and
    the v breakpoints between them), so temporaries stay in the cache. It differs from SciPy's sum over
    the values only by rounding (a sum of positive terms: ~1e-15 relative).
    """
    import numpy as np

    from mlops_nb.monitoring.sorted_arrays import BLOCK

    n, m = len(u_sorted), len(v_sorted)
    step = max(1, BLOCK * n // (n + m))  # u breakpoints per block: about BLOCK merged ones
    total = 0.0
    for a in range(0, n, step):
        b = min(a + step, n)
        first_j, last_j = a * m // n + 1, b * m // n  # v breakpoints j*n in (a*m, b*m]
        i = np.arange(a + 1, b + 1, dtype=np.int64) * m
        j = np.arange(first_j, last_j + 1, dtype=np.int64) * n
        merged = np.empty(len(i) + len(j), dtype=np.int64)
        # a u breakpoint comes after the v ones strictly below it, a v breakpoint after the u ones at or below it
        merged[np.arange(len(i)) + ((i - 1) // n - (first_j - 1))] = i
        merged[np.arange(len(j)) + (j // m - a)] = j
        # On (t[k-1], t[k]] each quantile function is constant: u's is u[ceil(t/m) - 1], v's v[ceil(t/n) - 1].
        gaps = u_sorted[(merged + (m - 1)) // m - 1] - v_sorted[(merged + (n - 1)) // n - 1]
        np.abs(gaps, out=gaps)
        gaps *= np.diff(merged, prepend=a * m)  # the widths
        total += float(gaps.sum())  # not np.dot: BLAS threads cost more than they save here
    return total / (float(n) * float(m))


def _wasserstein(data: NumericData, options: dict[str, Any]) -> tuple[float, float | None] | None:
    if data.ref_sorted is None or not len(data.ref_sorted) or not len(data.cur_sorted):
        return None
    std = data.ref_std if data.ref_std is not None else float(data.ref_sorted.std())
    return wasserstein(data.ref_sorted, data.cur_sorted) / max(std, MIN_STD), None


def psi(ref_shares: Any, cur_shares: Any) -> float:
    """The population stability index of two vectors of shares (floored at 0.0001)."""
    import numpy as np

    ref = np.maximum(np.asarray(ref_shares, dtype=float), PSI_FLOOR)
    cur = np.maximum(np.asarray(cur_shares, dtype=float), PSI_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _psi_numeric(data: NumericData, options: dict[str, Any]) -> tuple[float, float | None] | None:
    if data.psi_frequencies is None or data.psi_counts is None or not data.cur_n:
        return None
    return psi(data.psi_frequencies, data.psi_counts / data.cur_n), None


# ---------------------------------------------------------------- categorical


def _chi2(data: CategoricalData, options: dict[str, Any]) -> tuple[float, float | None] | None:
    import numpy as np

    table = np.array([data.ref_counts, data.cur_counts], dtype=float)
    if table[0].sum() == 0 or table[1].sum() == 0:
        return None
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:  # one category on both sides: nothing can differ
        return 0.0, 1.0
    from scipy.stats import chi2_contingency

    result = chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def _jensenshannon(data: CategoricalData, options: dict[str, Any]) -> tuple[float, float | None] | None:
    import numpy as np

    ref, cur = np.asarray(data.ref_counts, dtype=float), np.asarray(data.cur_counts, dtype=float)
    if ref.sum() == 0 or cur.sum() == 0:
        return None
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(ref / ref.sum(), cur / cur.sum(), base=options.get("base", 2.0))), None


def _psi_categorical(data: CategoricalData, options: dict[str, Any]) -> tuple[float, float | None] | None:
    import numpy as np

    ref, cur = np.asarray(data.ref_counts, dtype=float), np.asarray(data.cur_counts, dtype=float)
    if ref.sum() == 0 or cur.sum() == 0:
        return None
    return psi(ref / ref.sum(), cur / cur.sum()), None


methods = MethodRegistry()
for _method in (
    Method("ks", NUMERIC, P_VALUE, 0.05, _ks, "two-sample Kolmogorov-Smirnov test (SciPy's ks_2samp)"),
    Method("wasserstein", NUMERIC, DISTANCE, 0.1, _wasserstein, "Wasserstein distance / reference std"),
    Method("psi", NUMERIC, DISTANCE, 0.2, _psi_numeric, "population stability index on the reference deciles"),
    Method("chi2", CATEGORICAL, P_VALUE, 0.05, _chi2, "chi-squared test of homogeneity of the category counts"),
    Method("jensenshannon", CATEGORICAL, DISTANCE, 0.1, _jensenshannon, "Jensen-Shannon distance", reports=("base",)),
    Method("psi", CATEGORICAL, DISTANCE, 0.2, _psi_categorical, "population stability index over the categories"),
):
    methods.register(_method)

__all__ = ["CategoricalData", "Method", "MethodRegistry", "NumericData", "Score", "methods"]
