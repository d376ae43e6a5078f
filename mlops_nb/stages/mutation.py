"""Inputs a stage changed in place: found after it ran, kept like outputs, and put back in place on a hit.

A stage changes what it reads without assigning it: ``rng.normal()`` inside an expression, ``random_state=rng``
handed to an estimator, ``model.fit()``, ``df["x"] = ...``, ``lst.append()``, ``a += 1`` on an array, a helper
function that draws from a global generator. None of this is visible in the code, so it is observed: the
stage's inputs (and the globals that the notebook's functions it calls read) are fingerprinted again after it
ran, and those whose fingerprint changed are *mutated*.

Their new state is kept in the cache entry, and on a hit it is put into the objects the namespace holds now,
in place (``set_state`` for generators, the ``__dict__`` or ``__setstate__`` for objects, slice assignment for
lists and arrays), so that every other reference to them (a pipeline's step, an estimator's ``random_state``)
sees it as after a run. An object whose state cannot be put back in place is replaced by the restored copy.
"""

from __future__ import annotations

import random
import sys
import types
from typing import Any

from mlops_nb.stages.fingerprint import code_names

_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), range, frozenset, type(Ellipsis))
_CODE = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType, type)


def _immutable(value: Any, depth: int = 0) -> bool:
    if isinstance(value, _IMMUTABLE):
        return True
    if isinstance(value, tuple) and depth < 3:
        return all(_immutable(v, depth + 1) for v in value)
    return False


def checkable(value: Any) -> bool:
    """True for a value that a stage can change in place (not code, not an immutable value)."""
    return not isinstance(value, _CODE) and not _immutable(value)


def hidden_globals(namespace: dict[str, Any], names: list[str]) -> list[str]:
    """Data globals of the notebook that its functions among ``names`` read (and the functions they call), not
    named in the cell: a helper that draws from a global ``rng`` changes it."""
    found: list[str] = []
    seen: set[int] = set()
    todo = [namespace[n] for n in names if isinstance(namespace.get(n), types.FunctionType)]
    while todo:
        function = todo.pop()
        if id(function) in seen or function.__globals__ is not namespace:
            continue
        seen.add(id(function))
        for name in sorted(code_names(function.__code__)):
            value = namespace.get(name)
            if isinstance(value, types.FunctionType):
                todo.append(value)
            elif name not in names and name not in found and value is not None and checkable(value):
                found.append(name)
    return found


def kind_of(value: Any) -> str:
    """How a mutated object's state is kept and put back ("value": only as a copy that replaces it)."""
    numpy = sys.modules.get("numpy")
    pandas = sys.modules.get("pandas")
    if numpy is not None:
        if isinstance(value, numpy.random.RandomState):
            return "random_state"
        if isinstance(value, numpy.random.Generator):
            return "generator"
        if type(value) is numpy.ndarray:
            return "array"
    if pandas is not None and type(value) in (pandas.DataFrame, pandas.Series):
        return "pandas"
    if isinstance(value, random.Random):
        return "random"
    for kind, container in (("list", list), ("dict", dict), ("set", set), ("bytes", bytearray)):
        if type(value) is container:
            return kind
    cls = type(value)
    if (
        hasattr(value, "__dict__")
        and not isinstance(value, _CODE)
        and cls.__reduce_ex__ is object.__reduce_ex__  # pickled through __getstate__: all its state is there
        and cls.__reduce__ is object.__reduce__
    ):
        return "attributes"
    return "value"


_STATE = {
    "random_state": lambda v: v.get_state(),
    "generator": lambda v: v.bit_generator.state,
    "array": lambda v: v.copy(),
    "pandas": lambda v: v.copy(deep=True).__getstate__(),
    "random": lambda v: v.getstate(),
    "list": list,
    "dict": dict,
    "set": set,
    "bytes": bytes,
    "attributes": lambda v: v.__getstate__(),
    "value": lambda v: v,
}


def state_of(value: Any) -> tuple[str, Any]:
    """What is kept of a mutated object: (how to put it back, its state)."""
    kind = kind_of(value)
    return kind, _STATE[kind](value)


def can_put(target: Any, kind: str, state: Any) -> bool:
    """Whether ``put_state`` can put ``state`` into ``target`` in place (checked for every mutated input
    before any is changed, so that a hit changes all of them or none)."""
    if kind == "value" or kind_of(target) != kind:
        return False
    if kind == "array":
        return target.shape == state.shape and target.dtype == state.dtype and bool(target.flags.writeable)
    if kind == "attributes":
        return hasattr(target, "__setstate__") or isinstance(state, dict)
    return True


def put_state(target: Any, kind: str, state: Any) -> None:
    """Put ``state`` (from ``state_of``) into ``target`` in place (``can_put`` said it can)."""
    if kind == "random_state":
        target.set_state(state)
    elif kind == "generator":
        target.bit_generator.state = state
    elif kind == "random":
        target.setstate(state)
    elif kind == "array":
        target[...] = state
    elif kind == "pandas":
        target.__setstate__(state)
    elif kind in ("list", "bytes"):
        target[:] = state
    elif kind in ("dict", "set"):
        target.clear()
        target.update(state)
    elif kind == "attributes":
        setstate = getattr(target, "__setstate__", None)
        target.__dict__.clear()
        if setstate is not None:
            setstate(state)
        else:
            target.__dict__.update(state)
    else:
        raise ValueError(f"cannot put a {kind} state in place")
