"""The global random states a stage may use: Python's ``random`` and NumPy's legacy global generator.

Python's generator is observed only in cells that name ``random``: importing some libraries (scikit-learn)
draws from it, which would make every stage that first imports them look random. A stage that draws from a
global generator (``np.random.rand()``, ``random.random()``, an estimator with
``random_state=None``) depends on its state: seeded in an earlier cell, its results are reproducible from
that state; unseeded, every fresh kernel draws differently. Which stage draws cannot be seen in its code
(scikit-learn draws inside), so it is observed: the states are read before and after the stage runs, and a
stage that changed one keeps the state it started from as a condition of its cache entry, and the state it
left as part of its outputs (restored on a hit, so later stages draw what they would have drawn).
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any


def _numpy_random() -> Any:
    numpy = sys.modules.get("numpy")
    return getattr(numpy, "random", None) if numpy is not None else None


def states(*, python: bool = True) -> dict[str, Any]:
    """The current global states (of the generators that are loaded), to compare and fingerprint. ``python``:
    include Python's ``random`` (only for cells that name it: importing some libraries draws from it)."""
    found: dict[str, Any] = {}
    random = sys.modules.get("random")
    if python and random is not None:
        found["random"] = random.getstate()
    np_random = _numpy_random()
    if np_random is not None and hasattr(np_random, "get_state"):
        found["numpy"] = np_random.get_state()
    return found


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and len(a) == 5 and hasattr(a[1], "tobytes"):  # numpy's (name, keys, pos, ...)
        return a[0] == b[0] and a[2:] == b[2:] and a[1].tobytes() == b[1].tobytes()
    return a == b


def drawn(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The generators whose state changed in between. A generator loaded only in between counts: the cell
    imported it and may have seeded it (``import numpy as np; np.random.seed(0)``), and a restore must leave
    it where the cell did, not where a fresh import puts it."""
    return [g for g in after if g not in before or not _same(before[g], after[g])]


def _jsonable(state: Any) -> list[Any]:
    if hasattr(state[1], "tolist"):  # numpy
        name, keys, pos, has_gauss, cached = state
        return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]
    version, internal, gauss = state
    return [version, list(internal), gauss]


def fingerprints(current: dict[str, Any]) -> dict[str, str]:
    """A short fingerprint of each state."""
    return {
        name: hashlib.blake2b(json.dumps(_jsonable(state)).encode(), digest_size=16).hexdigest()
        for name, state in current.items()
    }


def saved(current: dict[str, Any]) -> dict[str, Any]:
    """The states as JSON-able values, for a cache entry."""
    return {name: _jsonable(state) for name, state in current.items()}


def set_states(states_: dict[str, Any]) -> None:
    """Put the generators into states saved by ``saved`` (those that are loaded now)."""
    if "random" in states_ and "random" in sys.modules:
        version, internal, gauss = states_["random"]
        sys.modules["random"].setstate((version, tuple(internal), gauss))
    np_random = _numpy_random()
    if "numpy" in states_ and np_random is not None:
        import numpy as np

        name, keys, pos, has_gauss, cached = states_["numpy"]
        np_random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
