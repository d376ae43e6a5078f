from __future__ import annotations

import threading

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from mlops_nb.stages.fingerprint import fingerprint


def test_frames_equal_by_content_differ_by_any_change() -> None:
    df = pd.DataFrame({"a": np.arange(1000), "b": np.linspace(0, 1, 1000), "c": ["x", "y"] * 500})
    assert fingerprint(df) == fingerprint(df.copy())
    changed = df.copy()
    changed.iloc[500, 1] = 0.123
    assert fingerprint(changed) != fingerprint(df)
    assert fingerprint(df.astype({"a": "float64"})) != fingerprint(df)  # same numbers, another dtype
    assert fingerprint(df.rename(columns={"a": "z"})) != fingerprint(df)
    assert fingerprint(df.set_axis(range(1, 1001))) != fingerprint(df)  # another index
    assert fingerprint(df["a"]) != fingerprint(df["a"].rename("q"))


def test_arrays_estimators_and_plain_values() -> None:
    assert fingerprint(np.arange(10)) == fingerprint(np.arange(10))
    assert fingerprint(np.arange(10)) != fingerprint(np.arange(10).reshape(2, 5))
    assert fingerprint(LogisticRegression(C=1.0)) == fingerprint(LogisticRegression(C=1.0))
    assert fingerprint(LogisticRegression(C=1.0)) != fingerprint(LogisticRegression(C=2.0))
    assert fingerprint({"a": [1, 2]}) != fingerprint({"a": [1, 3]})
    assert fingerprint(np) == fingerprint(np)


def test_unpicklable_values_have_no_fingerprint() -> None:
    assert fingerprint(threading.Lock()) is None
