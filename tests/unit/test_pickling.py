"""A cache entry's object graph: lambdas and nested functions by value, bound to their module's globals."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from mlops_nb.stages import pickling
from mlops_nb.stages.fingerprint import fingerprint


def round_trip(tmp_path: Path, graph: object, refs: dict | None = None) -> object:
    refs = refs or {}
    pickling.dump(tmp_path / "objects.pkl", graph, {id(v): n for n, v in refs.items()})
    with (tmp_path / "objects.pkl").open("rb") as f:
        return pickling.load(f, refs, KeyError)


@pytest.fixture
def module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A module standing for the notebook's namespace (``__main__`` in a kernel)."""
    mod = types.ModuleType("nbspace")
    monkeypatch.setitem(sys.modules, "nbspace", mod)
    exec(
        "scale = 2\nf = lambda v: v * scale\n"
        "def make(k):\n    def fact(n):\n        return 1 if n <= 1 else n * fact(n - 1) + k\n    return fact\n"
        "g = make(0)\nclass Named:\n    pass\n",
        vars(mod),
    )
    return mod


def test_a_lambda_reads_its_modules_globals_as_they_are_now(tmp_path: Path, module: types.ModuleType) -> None:
    f = round_trip(tmp_path, module.f)
    assert f(3) == 6 and f.__globals__ is vars(module)
    module.scale = 10
    assert f(3) == 30
    assert fingerprint(f) == fingerprint(module.f)


def test_a_recursive_nested_function_and_named_code(tmp_path: Path, module: types.ModuleType) -> None:
    g, named, obj = round_trip(tmp_path, (module.g, module.Named, module.Named()))
    assert g(5) == 120 and g.__qualname__ == "make.<locals>.fact"
    assert named is module.Named and type(obj) is module.Named  # by name: still the module's class


def test_inputs_are_references_and_a_missing_one_is_the_given_error(tmp_path: Path) -> None:
    shared = [1, 2]
    back = round_trip(tmp_path, {"holder": [shared]}, {"shared": shared})
    assert back["holder"][0] is shared
    pickling.dump(tmp_path / "objects.pkl", [shared], {id(shared): "shared"})
    with (tmp_path / "objects.pkl").open("rb") as f, pytest.raises(KeyError, match="'shared' that is not defined"):
        pickling.load(f, {}, KeyError)
