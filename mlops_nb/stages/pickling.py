"""How a cache entry's objects are pickled: one object graph, the stage's inputs in it as references by name.

Pickle saves a function or class by its module and qualified name. A lambda, or a function defined inside
another one (``make_scorer(k)``'s ``score``), has no name to be found by; cloudpickle (a dependency of
MLflow's) saves it by value. One change to cloudpickle's way: a function whose globals are its module's
(the notebook's namespace, ``__main__``, or an installed module) gets that module's globals back when it is
loaded, not a copy of the globals it read. So a restored ``f = lambda v: v * scale`` reads ``scale`` as it
is now, as the lambda a run made does. Functions and classes that have a name are saved by name, as pickle
does: the notebook's own classes stay the notebook's (the hit runs their definitions again first).
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Any, BinaryIO

from mlops_nb.stages.fingerprint import by_name

_EMPTY = "mlops-nb empty cell"  # a closure cell not yet filled


def dump(path: Path, graph: Any, refs: dict[int, str]) -> None:
    """Pickle ``graph`` into ``path``, the objects in ``refs`` (id -> input name) written as their names."""
    import cloudpickle

    class Pickler(cloudpickle.Pickler):
        def persistent_id(self, obj: Any) -> str | None:
            return refs.get(id(obj))

        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, (types.FunctionType, type)) and by_name(obj):
                return NotImplemented  # by name, as pickle does
            if isinstance(obj, types.FunctionType) and _module_globals(obj):
                return _reduce_function(obj)
            return super().reducer_override(obj)

    with path.open("wb") as f:
        Pickler(f, protocol=5).dump(graph)  # numpy buffers inside objects are written out-of-band-fast


def load(f: BinaryIO, refs: dict[str, Any], missing: type[Exception]) -> Any:
    """The graph pickled in ``f``, its references resolved from ``refs``; ``missing`` is raised for a name
    that ``refs`` lacks."""
    import pickle

    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            if pid not in refs:
                raise missing(f"the cached outputs refer to an input {pid!r} that is not defined now")
            return refs[pid]

    return Unpickler(f).load()


def _module_globals(func: types.FunctionType) -> bool:
    module = sys.modules.get(func.__module__ or "")
    return module is not None and vars(module) is func.__globals__


def _reduce_function(func: types.FunctionType) -> tuple:
    """The function made empty-celled first, then given its state: a closure that holds the function
    itself (a nested recursive helper) is then a reference to the object already made."""
    cells = []
    for cell in func.__closure__ or ():
        try:
            cells.append(cell.cell_contents)
        except ValueError:
            cells.append(_EMPTY)
    state = {
        "qualname": func.__qualname__,
        "defaults": func.__defaults__,
        "kwdefaults": func.__kwdefaults__,
        "doc": func.__doc__,
        "dict": func.__dict__,
        "cells": cells,
    }
    args = (func.__code__, func.__module__, func.__name__, len(cells))
    return _new_function, args, state, None, None, _set_function_state


def _new_function(code: types.CodeType, module: str, name: str, cells: int) -> types.FunctionType:
    closure = tuple(types.CellType() for _ in range(cells)) or None
    return types.FunctionType(code, vars(importlib.import_module(module)), name, None, closure)


def _set_function_state(func: types.FunctionType, state: dict[str, Any]) -> None:
    func.__qualname__ = state["qualname"]
    func.__defaults__ = state["defaults"]
    func.__kwdefaults__ = state["kwdefaults"]
    func.__doc__ = state["doc"]
    func.__dict__.update(state["dict"])
    for cell, value in zip(func.__closure__ or (), state["cells"], strict=True):
        if not (isinstance(value, str) and value == _EMPTY):
            cell.cell_contents = value
