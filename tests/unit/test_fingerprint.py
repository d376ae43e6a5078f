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


def test_objects_keep_their_fingerprint_through_a_pickle_round_trip_whatever_their_arrays_layout() -> None:
    """A restored input must not look changed: a fitted PCA's (1, n) components_ have other strides after a
    pickle round trip, and arrays inside objects are equal whatever their order or step."""
    import pickle

    import numpy as np
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    X = np.random.RandomState(0).normal(size=(50, 3))
    model = make_pipeline(PCA(n_components=1), LinearRegression()).fit(X, X[:, 0])
    assert fingerprint(model) == fingerprint(pickle.loads(pickle.dumps(model)))
    wide = np.arange(12.0).reshape(3, 4)
    assert fingerprint({"a": np.asfortranarray(wide)}) == fingerprint({"a": wide.copy()})
    assert fingerprint([np.arange(8.0)[::2]]) == fingerprint([np.array([0.0, 2.0, 4.0, 6.0])])
    assert fingerprint([wide]) != fingerprint([wide.T.copy()])  # another shape is another value


def test_an_empty_array_inside_an_object_keeps_its_fingerprint_through_a_pickle_round_trip() -> None:
    """A fitted OneClassSVM holds empty arrays (``_probA``) whose strides are 0; a pickle round trip gives them
    8, so a restored ``estimators`` dict looked changed and every later stage reading it missed
    (plot_outlier_detection_wine)."""
    import pickle

    from numpy.lib.stride_tricks import as_strided
    from sklearn.svm import OneClassSVM

    X = np.random.RandomState(0).normal(size=(40, 2))
    fitted = {"ocsvm": OneClassSVM(nu=0.25, gamma=0.35).fit(X)}
    assert fingerprint(fitted) == fingerprint(pickle.loads(pickle.dumps(fitted)))
    empty = np.empty(0)
    assert fingerprint([as_strided(empty, shape=(0,), strides=(0,))]) == fingerprint([empty])
    assert fingerprint([np.zeros(2)]) != fingerprint([np.zeros(2, dtype=np.int64)])  # the same bytes, another dtype
    assert fingerprint([np.zeros((0, 2))]) != fingerprint([np.zeros((2, 0))])


def test_a_frame_inside_an_object_is_fingerprinted_by_its_content_not_its_blocks(tmp_path) -> None:
    """A statsmodels formula model holds the notebook's frame; restored from parquet (or copied) it has other
    internal blocks, so every results object holding it looked changed after a hit (glm_weights: 37 misses)."""
    df = pd.DataFrame({"a": np.arange(5.0)})
    df["b"] = np.arange(5.0) * 2  # a second block; a copy or a parquet round trip consolidates them
    df.to_parquet(tmp_path / "df.parquet")
    for same in (df.copy(), pd.read_parquet(tmp_path / "df.parquet")):
        assert fingerprint({"model": [df, df["a"], df.index]}) == fingerprint({"model": [same, same["a"], same.index]})
    assert fingerprint([df]) != fingerprint([df.assign(b=df["b"] + 1)])
    assert fingerprint([df]) != fingerprint([df.astype({"a": "float32"})])
    assert fingerprint([pd.DataFrame({"x": [[1], [2]]})]) != fingerprint([pd.DataFrame({"x": [[1], [3]]})])


def test_objects_shared_between_parts_fingerprint_as_equal_copies_and_cycles_still_do() -> None:
    """Results of statsmodels share module-level objects (the Poisson family's variance function); each
    restored from its own stage's entry holds a copy, so a list of them looked changed after a hit
    (glm_weights' results_all). Content counts, not which parts are the same object."""
    import copy

    class Part:
        def __init__(self, values: list) -> None:
            self.values = values

    shared = Part([1.0, 2.0])
    assert fingerprint([shared, shared]) == fingerprint([shared, copy.deepcopy(shared)])
    assert fingerprint({"a": [shared], "b": (shared,)}) == fingerprint({"a": [shared], "b": (copy.copy(shared),)})
    assert fingerprint([shared, shared]) != fingerprint([shared, Part([1.0, 3.0])])
    ring, other = [1], [2]
    ring.append(ring)
    other.append(other)
    assert fingerprint(ring) is not None and fingerprint(ring) != fingerprint(other)


def test_matplotlib_artists_and_what_holds_them_have_no_fingerprint() -> None:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    grid = np.linspace(-4, 5, 300)
    contours = ax.contour(*np.meshgrid(grid, grid), np.add.outer(grid, grid), levels=[0])
    assert fingerprint(fig) is None and fingerprint(ax) is None
    assert fingerprint({"lines": contours, "n": 3}) is None  # an artist inside another value
    assert fingerprint(np.asarray(fig.get_size_inches())) is not None
    plt.close(fig)
