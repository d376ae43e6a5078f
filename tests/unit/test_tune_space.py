"""The search-space parser of mlops-nb tune: every DIST round-trips, bad ones are refused with the fix."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_nb.exceptions import UsageError
from mlops_nb.jobs.space import Dimension, parse_dimension, parse_space

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
names = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)


@st.composite
def dimensions(draw: st.DrawFn) -> Dimension:
    name = draw(names)
    kind = draw(st.sampled_from(["uniform", "loguniform", "int", "choice"]))
    if kind == "choice":
        values = draw(
            st.lists(
                st.one_of(st.integers(-1000, 1000), st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)),
                min_size=1,
                max_size=5,
                unique_by=repr,
            ).filter(lambda vs: all(v not in ("True", "False", "None") for v in vs))
        )
        return Dimension(name, kind, choices=tuple(values))
    if kind == "int":
        low = draw(st.integers(-1000, 1000))
        step = draw(st.integers(1, 50))
        return Dimension(name, kind, low, low + step * draw(st.integers(1, 100)), step)
    low = draw(finite.filter(lambda x: x > 0) if kind == "loguniform" else finite)
    high = draw(finite.filter(lambda x: x > low))
    return Dimension(name, kind, low, high)


@given(dimensions())
def test_every_dimension_round_trips_through_its_text(dim: Dimension) -> None:
    assert parse_dimension(dim.name, dim.spec()) == dim
    assert parse_space([f"{dim.name}={dim.spec()}"]) == {dim.name: dim}


@settings(deadline=None)  # the first example imports Optuna
@given(dimensions())
def test_the_optuna_distribution_holds_the_same_range(dim: Dimension) -> None:
    dist = dim.optuna()
    if dim.kind == "choice":
        assert tuple(dist.choices) == dim.choices
    else:
        assert (dist.low, dist.high) == (dim.low, dim.high)
        assert getattr(dist, "log", False) == (dim.kind == "loguniform")
    values = dim.grid()
    assert (values is None) == (dim.kind in ("uniform", "loguniform"))
    if dim.kind == "int":
        assert values[0] == dim.low and values[-1] == dim.high and len(values) == (dim.high - dim.low) // dim.step + 1


def test_the_documented_examples() -> None:
    space = parse_space(
        ["C=loguniform(1e-3,1e2)", "max_iter=int(100, 1000, step=100)", "penalty=choice(l1,l2)", "x=uniform(-1,1)"]
    )
    assert space["C"] == Dimension("C", "loguniform", 0.001, 100.0)
    assert space["max_iter"] == Dimension("max_iter", "int", 100, 1000, 100)
    assert space["penalty"].choices == ("l1", "l2")
    assert parse_space({"k": "choice(1, 2.5, rbf, None)"})["k"].choices == (1, 2.5, "rbf", None)


@pytest.mark.parametrize(
    ("spec", "fix"),
    [
        ("C", "write it as NAME=DIST"),
        ("C=normal(0,1)", "write the distribution as one of"),
        ("C=uniform(1)", "takes two bounds"),
        ("C=uniform(2,1)", "low bound must be below the high bound"),
        ("C=uniform(0,inf)", "not a finite number"),
        ("C=loguniform(0,1)", "needs a positive low bound"),
        ("C=int(1,10,step=4)", "does not divide"),
        ("C=int(1,10,step=0)", "positive whole number"),
        ("C=int(1.5,10)", "not a whole number"),
        ("C=uniform(0,1,step=2)", "only int(a,b,step=s) takes one"),
        ("C=choice()", "at least one value"),
        ("C=choice(a,a)", "listed twice"),
        ("1C=uniform(0,1)", "not a parameter name"),
    ],
)
def test_a_bad_dimension_names_the_fix(spec: str, fix: str) -> None:
    with pytest.raises(UsageError, match=fix.replace("(", r"\(").replace(")", r"\)")):
        parse_space([spec])


def test_an_empty_space_and_a_name_given_twice_are_refused() -> None:
    with pytest.raises(UsageError, match="empty"):
        parse_space([])
    with pytest.raises(UsageError, match="given twice"):
        parse_space(["C=uniform(0,1)", "C=uniform(0,2)"])
    assert math.isclose(parse_space(["C = uniform(0, 1)"])["C"].high, 1.0)
