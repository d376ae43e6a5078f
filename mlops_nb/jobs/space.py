"""Search spaces of ``mlops-nb tune``: ``NAME=DIST`` texts parsed into plain dimensions (no Optuna needed).

DIST is one of ``uniform(a,b)``, ``loguniform(a,b)``, ``int(a,b)`` / ``int(a,b,step=s)`` and
``choice(x,y,...)`` (choices typed as ``-p`` values are: ``choice(1,2.5,rbf,None)`` gives an int, a float,
a text and None). ``Dimension.optuna()`` gives Optuna's distribution; ``Dimension.spec()`` gives the text
back, so a space round-trips through a run's params.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from mlops_nb.exceptions import UsageError
from mlops_nb.jobs.parameters import typed

KINDS = ("uniform", "loguniform", "int", "choice")
_EXAMPLES = "uniform(0,1), loguniform(1e-3,1e2), int(100,1000,step=100), choice(l1,l2)"
_DIST = re.compile(r"^\s*([a-z]+)\s*\((.*)\)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Dimension:
    """One tuned parameter: ``kind`` with bounds ``low``/``high`` (``step`` for int) or ``choices``."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: int = 1
    choices: tuple[Any, ...] = ()

    def spec(self) -> str:
        """The DIST text of this dimension (``parse_dimension(name, spec())`` gives it back)."""
        if self.kind == "choice":
            return f"choice({','.join(_text(c) for c in self.choices)})"
        if self.kind == "int":
            return f"int({self.low},{self.high}" + (f",step={self.step})" if self.step != 1 else ")")
        return f"{self.kind}({self.low!r},{self.high!r})"

    def grid(self) -> list[Any] | None:
        """Every value of the dimension, or None when it is continuous (``--sampler grid`` needs values)."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            assert isinstance(self.low, int) and isinstance(self.high, int)
            return list(range(self.low, self.high + 1, self.step))
        return None

    def optuna(self) -> Any:
        """Optuna's distribution for this dimension."""
        from optuna import distributions

        if self.kind == "choice":
            return distributions.CategoricalDistribution(self.choices)
        if self.kind == "int":
            return distributions.IntDistribution(int(self.low), int(self.high), step=self.step)  # type: ignore[arg-type]
        return distributions.FloatDistribution(float(self.low), float(self.high), log=self.kind == "loguniform")  # type: ignore[arg-type]


def _text(value: Any) -> str:
    return "None" if value is None else str(value)


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what}: {text.strip()!r} is not a number.") from None
    if not math.isfinite(value):
        raise UsageError(f"{what}: {text.strip()!r} is not a finite number.")
    return value


def _integer(text: str, what: str) -> int:
    value = _number(text, what)
    if value != int(value):
        raise UsageError(f"{what}: {text.strip()!r} is not a whole number.")
    return int(value)


def parse_dimension(name: str, dist: str) -> Dimension:
    """``("C", "loguniform(1e-3,1e2)")`` -> ``Dimension("C", "loguniform", 0.001, 100.0)``.

    Raises:
        UsageError: an unknown distribution, a missing or extra argument, bounds out of order, a log range
            that is not positive, a step that does not divide the range, repeated choices.
    """
    what = f"--space {name}={dist}"
    if not name.isidentifier():
        raise UsageError(f"{what}: {name!r} is not a parameter name (a Python identifier such as max_iter).")
    match = _DIST.match(dist)
    if not match or match.group(1) not in KINDS:
        raise UsageError(f"{what}: write the distribution as one of {_EXAMPLES}.")
    kind, inner = match.groups()
    args = [a.strip() for a in inner.split(",")] if inner.strip() else []
    if kind == "choice":
        if not args or any(not a for a in args):
            raise UsageError(f"{what}: list at least one value, separated by commas: choice(l1,l2).")
        choices = tuple(typed(a) for a in args)
        if len(set(map(repr, choices))) != len(choices):
            raise UsageError(f"{what}: a value is listed twice; list each choice once.")
        return Dimension(name, kind, choices=choices)
    keywords = [a for a in args if "=" in a]
    positional = [a for a in args if "=" not in a]
    step = 1
    for keyword in keywords:
        key, _, value = keyword.partition("=")
        if kind != "int" or key.strip() != "step":
            raise UsageError(f"{what}: {keyword!r} is not an argument of {kind}(); only int(a,b,step=s) takes one.")
        step = _integer(value, what)
        if step < 1:
            raise UsageError(f"{what}: the step must be a positive whole number, got {step}.")
    if len(positional) != 2:
        raise UsageError(f"{what}: {kind}() takes two bounds, low and high: {kind}(1,10).")
    if kind == "int":
        low, high = (_integer(a, what) for a in positional)
        if (high - low) % step:
            raise UsageError(f"{what}: the step {step} does not divide {high} - {low}; pick bounds it divides.")
    else:
        low, high = (_number(a, what) for a in positional)  # type: ignore[assignment]
        if kind == "loguniform" and low <= 0:
            raise UsageError(f"{what}: loguniform needs a positive low bound (it samples log(x)); got {low:g}.")
    if low >= high:
        raise UsageError(f"{what}: the low bound must be below the high bound ({low} >= {high}).")
    return Dimension(name, kind, low, high, step)


def parse_space(specs: list[str] | tuple[str, ...] | dict[str, str]) -> dict[str, Dimension]:
    """``["C=loguniform(1e-3,1e2)", "penalty=choice(l1,l2)"]`` (or a mapping name -> DIST) -> dimensions.

    Raises:
        UsageError: an empty space, a spec without ``=``, a name given twice, or a bad DIST.
    """
    pairs: list[tuple[str, str]] = []
    if isinstance(specs, dict):
        pairs = [(str(k), str(v)) for k, v in specs.items()]
    else:
        for spec in specs:
            name, sep, dist = spec.partition("=")
            if not sep or not name.strip():
                raise UsageError(f"--space {spec!r}: write it as NAME=DIST, e.g. --space 'C=loguniform(1e-3,1e2)'.")
            pairs.append((name.strip(), dist))
    if not pairs:
        raise UsageError(f"The search space is empty: give at least one --space NAME=DIST ({_EXAMPLES}).")
    space: dict[str, Dimension] = {}
    for name, dist in pairs:
        if name in space:
            raise UsageError(f"--space {name} is given twice; give each parameter one distribution.")
        space[name] = parse_dimension(name, dist)
    return space
