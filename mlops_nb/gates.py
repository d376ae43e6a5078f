"""Requirements on metrics, ``"accuracy >= 0.9"``: the gates of jobs (``--require``), CI and promotion."""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mlops_nb.exceptions import UsageError

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
# Short names of mnb.evaluate's metrics (MLflow's default evaluator's names) and of interval bounds, as gates
# accept them: "cv.accuracy.low" reads cv.accuracy_score.low, "worst_slice.recall" worst_slice.recall_score.
METRIC_ALIASES = {
    "accuracy": "accuracy_score",
    "precision": "precision_score",
    "recall": "recall_score",
    "f1": "f1_score",
    "mae": "mean_absolute_error",
    "mse": "mean_squared_error",
    "rmse": "root_mean_squared_error",
    "r2": "r2_score",
    "mape": "mean_absolute_percentage_error",
    "pr_auc": "precision_recall_auc",
    "lower": "low",
    "upper": "high",
}
_PATTERN = re.compile(r"^\s*(?P<metric>[^<>=!\s]+)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>[^<>=!\s]\S*)\s*$")


@dataclass(frozen=True)
class GateResult:
    """The outcome of one requirement against a run's metrics; ``message`` says why, with the margin."""

    requirement: Requirement
    ok: bool
    actual: float | None
    message: str


@dataclass(frozen=True)
class Requirement:
    """``metric op value``, e.g. ``accuracy >= 0.9``."""

    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"

    def check(self, metrics: Mapping[str, float]) -> GateResult:
        actual = lookup(metrics, self.metric)
        if actual is None:
            close = difflib.get_close_matches(self.metric, list(metrics), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            logged = ", ".join(sorted(metrics)) or "none"
            return GateResult(
                self, False, None, f"{self}: metric {self.metric!r} was not logged.{hint} Logged: {logged}"
            )
        if math.isnan(actual):
            return GateResult(self, False, actual, f"{self}: {self.metric} is NaN (not a number), so it cannot hold")
        if OPERATORS[self.op](actual, self.value):
            return GateResult(self, True, actual, f"{self}: {self.metric} = {actual:g}, holds")
        gap = actual - self.value
        how = f"{abs(gap):g} {'below' if gap < 0 else 'above'}" if gap else "equal to it"
        return GateResult(self, False, actual, f"{self}: {self.metric} = {actual:g}, {how} the threshold")


def canonical(metric: str) -> str:
    """``metric`` with each dotted part's short name spelled out: ``cv.accuracy.low`` -> ``cv.accuracy_score.low``."""
    return ".".join(METRIC_ALIASES.get(part, part) for part in metric.split("."))


def lookup(metrics: Mapping[str, float], metric: str) -> float | None:
    """The value of ``metric`` in ``metrics``, by its own name or its spelled-out one (:func:`canonical`)."""
    value = metrics.get(metric)
    return metrics.get(canonical(metric)) if value is None else value


def parse_requirement(text: str) -> Requirement:
    """Parse ``"METRIC OP VALUE"`` (OP one of >= <= == != > <); UsageError naming the fix otherwise."""
    match = _PATTERN.match(text or "")
    if match is None:
        raise UsageError(
            f'Cannot read the requirement {text!r}: write it as "METRIC OP VALUE", e.g. "accuracy >= 0.9" '
            f"(OP is one of {' '.join(OPERATORS)})."
        )
    try:
        value = float(match["value"])
    except ValueError:
        raise UsageError(f"The requirement {text!r} compares with {match['value']!r}, which is not a number.") from None
    if math.isnan(value):
        raise UsageError(f"The requirement {text!r} compares with NaN, which nothing equals. Give a number.")
    return Requirement(match["metric"], match["op"], value)


def check_all(requirements: list[Requirement], metrics: Mapping[str, float]) -> list[GateResult]:
    return [r.check(metrics) for r in requirements]
