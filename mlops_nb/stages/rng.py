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
    """The current global states, as JSON-able values (only of the generators that are loaded). ``python``:
    include Python's ``random`` (only for cells that name it: importing some libraries draws from it)."""
    found: dict[str, Any] = {}
    random = sys.modules.get("random")
    if python and random is not None:
        version, internal, gauss = random.getstate()
        found["random"] = [version, list(internal), gauss]
    np_random = _numpy_random()
    if np_random is not None and hasattr(np_random, "get_state"):
        name, keys, pos, has_gauss, cached = np_random.get_state()
        found["numpy"] = [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]
    return found


def fingerprints(current: dict[str, Any]) -> dict[str, str]:
    """A short fingerprint of each state."""
    return {
        name: hashlib.blake2b(json.dumps(state).encode(), digest_size=16).hexdigest() for name, state in current.items()
    }


def set_states(saved: dict[str, Any]) -> None:
    """Put the generators into the saved states (those that are loaded now)."""
    if "random" in saved and "random" in sys.modules:
        version, internal, gauss = saved["random"]
        sys.modules["random"].setstate((version, tuple(internal), gauss))
    np_random = _numpy_random()
    if "numpy" in saved and np_random is not None:
        import numpy as np

        name, keys, pos, has_gauss, cached = saved["numpy"]
        np_random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
