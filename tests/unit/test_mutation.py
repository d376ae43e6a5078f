"""Inputs changed in place: which objects are checked, and their state put back in place, pure."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from mlops_nb.stages.mutation import can_put, checkable, hidden_globals, kind_of, put_state, state_of


def test_code_and_immutable_values_are_not_checked() -> None:
    assert not any(checkable(v) for v in (1, 2.5, "s", b"b", None, (1, ("a", 2)), frozenset({1}), len, np, int))
    assert all(checkable(v) for v in ([], {}, set(), np.zeros(2), pd.DataFrame(), (1, []), StandardScaler()))


def test_the_globals_a_notebook_function_reads_are_found_through_the_functions_it_calls() -> None:
    namespace: dict = {"rng": np.random.RandomState(0), "LIMIT": 3, "seen": []}
    exec(
        "def noisy(a):\n    return a + rng.normal() + helper()\n"
        "def helper():\n    seen.append(LIMIT)\n    return [x for x in seen]\n",
        namespace,
    )
    assert sorted(hidden_globals(namespace, ["noisy", "X"])) == ["rng", "seen"]  # LIMIT is immutable
    assert hidden_globals(namespace, ["rng"]) == []


@pytest.mark.parametrize(
    ("make", "change", "same"),
    [
        (lambda: np.random.RandomState(0), lambda r: r.normal(size=3), lambda a, b: a.normal() == b.normal()),
        (lambda: np.random.default_rng(0), lambda r: r.normal(size=3), lambda a, b: a.normal() == b.normal()),
        (lambda: random.Random(0), lambda r: r.random(), lambda a, b: a.random() == b.random()),
        (lambda: np.arange(4.0), lambda a: a.__iadd__(1), lambda a, b: (a == b).all()),
        (lambda: pd.DataFrame({"a": [1, 2]}), lambda d: d.__setitem__("b", [3, 4]), lambda a, b: a.equals(b)),
        (lambda: [1], lambda x: x.append(2), lambda a, b: a == b),
        (lambda: {"k": 1}, lambda x: x.update(j=2), lambda a, b: a == b),
        (lambda: {1}, lambda x: x.add(2), lambda a, b: a == b),
        (lambda: StandardScaler(), lambda s: s.fit([[0.0], [2.0]]), lambda a, b: a.mean_ == b.mean_),
    ],
)
def test_a_kept_state_goes_back_into_the_object_in_place(make, change, same) -> None:
    ran = make()
    change(ran)  # what the stage did
    kind, state = state_of(ran)
    kind, state = pickle.loads(pickle.dumps((kind, state)))  # as the cache keeps it
    fresh = make()  # a fresh kernel's object, as it was before the stage
    alias = fresh
    assert can_put(fresh, kind, state)
    put_state(fresh, kind, state)
    assert alias is fresh and same(fresh, ran)


def test_what_cannot_go_back_in_place_is_said_before_anything_changes() -> None:
    kind, state = state_of(np.arange(3))
    assert not can_put(np.arange(4), kind, state)  # another shape
    assert not can_put([1, 2, 3], kind, state)  # another type
    assert kind_of(iter([1])) == "value" and not can_put(iter([1]), "value", None)
