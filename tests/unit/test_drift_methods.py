"""Drift statistics against SciPy (hypothesis): equal to 1e-12, no drift against itself, order and chunking free."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import scipy.stats as st
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as s
from scipy.spatial.distance import jensenshannon

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring import current as current_module
from mlops_nb.monitoring.current import CurrentData
from mlops_nb.monitoring.drift import PRESETS, categorical_data, numeric_data
from mlops_nb.monitoring.methods import ks_p_value, ks_statistic, methods, wasserstein
from mlops_nb.monitoring.monitor import monitor
from mlops_nb.monitoring.profile import ProfileBuilder, reference_of

# SciPy warns computing its own asymptotic p-value for one value against one (it returns NaN, as we do).
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
TOL = 1e-12
# Values with many ties (small integers, rounded floats) as well as spread ones: ties are where ECDFs go wrong.
values = s.one_of(
    s.lists(s.integers(-5, 5).map(float), min_size=1, max_size=300),
    s.lists(s.floats(-1e6, 1e6, allow_nan=False).map(lambda x: round(x, 1)), min_size=1, max_size=300),
    s.lists(s.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=300),
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def close(a: float, b: float) -> bool:
    if a != a or b != b:  # SciPy's own NaN (asymptotic p-value of one value against one) is matched, not invented
        return a != a and b != b
    return abs(a - b) <= TOL * max(1.0, abs(b))


def numeric(ref: list[float], cur: list[float], chunks: int = 1):
    """The NumericData of one column 'x', the current data added in ``chunks`` pieces."""
    reference = reference_of({"x": np.asarray(ref, dtype=float)})
    current = CurrentData(reference)
    cur_array = np.asarray(cur, dtype=float)
    for part in np.array_split(cur_array, chunks):
        current.add(pa.table({"x": part}))
    return numeric_data(current, "x", current.states["x"])


@FAST
@given(values, values)
def test_ks_statistic_from_counts_equals_scipy(ref, cur):
    expected = st.ks_2samp(ref, cur)
    for chunks in (1, 3):  # one big chunk (searched among the current) and small ones (placed among the reference)
        data = numeric(ref, cur, chunks=chunks)
        ours = ks_statistic(data.ref_le, len(ref), data.cur_le, data.cur_lt, len(cur))
        assert close(ours, expected.statistic)
    asymp = st.ks_2samp(ref, cur, method="asymp")
    assert close(ks_p_value(ours, len(ref), len(cur)), asymp.pvalue)
    score = methods.get("numeric", "ks").score(data)
    assert close(score["statistic"], expected.statistic) and close(score["p_value"], expected.pvalue)


@pytest.mark.parametrize(
    ("n_ref", "n_cur", "shift", "decimals", "chunks"),
    [(20_000, 15_000, 0.0, 2, 7), (12_000, 30_000, 0.05, 6, 1), (15_000, 40_000, 0.0, 1, 2)],
)
def test_ks_on_large_samples_equals_scipy(n_ref, n_cur, shift, decimals, chunks):
    """Beyond 10,000 values SciPy goes asymptotic and so do we, from counts added chunk by chunk."""
    rng = np.random.default_rng(n_ref)
    ref = rng.normal(size=n_ref).round(decimals)
    cur = (rng.normal(size=n_cur) + shift).round(decimals)
    data = numeric(list(ref), list(cur), chunks=chunks)
    expected = st.ks_2samp(ref, cur)
    score = methods.get("numeric", "ks").score(data)
    assert close(score["statistic"], expected.statistic)
    assert close(score["p_value"], expected.pvalue)


@FAST
@given(values, values)
def test_wasserstein_equals_scipy(ref, cur):
    ours = wasserstein(np.sort(ref), np.sort(cur))
    assert close(ours, st.wasserstein_distance(ref, cur))
    score = methods.get("numeric", "wasserstein").score(numeric(ref, cur, chunks=2))
    assert close(score["statistic"], st.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001))


@FAST
@given(values)
def test_a_sample_against_itself_shows_no_drift(sample):
    data = numeric(sample, sample)
    for method in methods.for_kind("numeric"):
        score = method.score(data)
        assert score is not None and score["drift"] is False, method.name
        if method.test == "distance":
            assert score["statistic"] == pytest.approx(0.0, abs=1e-12)
    categories = [str(int(v) % 7) for v in sample]
    result = monitor(reference_of({"c": categories}), {"c": categories})
    assert result["features"]["c"]["drift"] is False
    assert all(score["drift"] is False for score in result["features"]["c"]["scores"].values())


@FAST
@given(values, values, s.randoms(use_true_random=False))
def test_row_order_and_chunking_do_not_matter(ref, cur, random):
    frame = {"x": np.asarray(cur), "c": np.asarray([str(int(v) % 5) for v in cur])}
    reference = reference_of({"x": np.asarray(ref), "c": np.asarray([str(int(v) % 4) for v in ref])})
    whole = monitor(reference, frame)
    order = list(range(len(cur)))
    random.shuffle(order)
    shuffled = pa.table({k: v[order] for k, v in frame.items()})
    cut = sorted(random.sample(range(len(cur) + 1), k=min(3, len(cur) + 1)))
    chunks = [shuffled.slice(a, b - a) for a, b in zip([0, *cut], [*cut, len(cur)], strict=True)]
    got = monitor(reference, chunks)
    assert got == whole


def test_chunked_reference_equals_whole():
    rng = np.random.default_rng(3)
    table = pa.table({"x": rng.normal(size=5000), "c": rng.choice(["a", "b", "c"], 5000)})
    whole = reference_of(table)
    builder = ProfileBuilder()
    for batch in table.to_batches(max_chunksize=333):
        builder.add(batch)
    chunked = builder.build()
    np.testing.assert_array_equal(chunked.samples["x"], whole.samples["x"])
    a, b = chunked.profile["columns"]["x"], whole.profile["columns"]["x"]
    assert a["psi"] == b["psi"] and a["quantiles"] == b["quantiles"] and a["histogram"] == b["histogram"]
    assert a["mean"] == pytest.approx(b["mean"], rel=1e-12) and a["std"] == pytest.approx(b["std"], rel=1e-12)
    assert chunked.profile["columns"]["c"] == whole.profile["columns"]["c"]


@pytest.mark.parametrize("block", [current_module.STREAM_ROWS, 2_500])
def test_sampling_beyond_the_cap_does_not_depend_on_chunking(block: int, monkeypatch: pytest.MonkeyPatch):
    """Above sample_rows the rows kept are a seeded uniform sample, the same however the data is split (and
    however many rows are counted at once past the cap)."""
    monkeypatch.setattr(current_module, "STREAM_ROWS", block)
    rng = np.random.default_rng(4)
    table = pa.table({"x": rng.normal(size=30_000)})
    results = []
    for size in (30_000, 7_000, 1_234):
        builder = ProfileBuilder(sample_rows=10_000)
        for batch in table.to_batches(max_chunksize=size):
            builder.add(batch)
        results.append(builder.build())
    for other in results[1:]:
        np.testing.assert_array_equal(other.samples["x"], results[0].samples["x"])
    assert len(results[0].samples["x"]) == 10_000
    cur = pa.table({"x": rng.normal(size=25_000)})
    whole = monitor(results[0], cur, sample_rows=10_000)
    assert monitor(results[0], cur.to_batches(max_chunksize=999), sample_rows=10_000) == whole
    # KS and PSI stay exact over every current row: their counts do not sample. Streamed chunk by chunk
    # past the cap, they equal the counts taken once from all rows held.
    expected = st.ks_2samp(results[0].samples["x"], cur.column("x").to_numpy())
    assert close(whole["features"]["x"]["scores"]["ks"]["statistic"], expected.statistic)
    held = monitor(results[0], cur.to_batches(max_chunksize=999), sample_rows=100_000)
    for method in ("ks", "psi"):
        assert held["features"]["x"]["scores"][method] == whole["features"]["x"]["scores"][method]
    assert held["validation"] == whole["validation"]


@FAST
@given(
    s.lists(s.sampled_from("abcde"), min_size=1, max_size=200),
    s.lists(s.sampled_from("abcdefg"), min_size=1, max_size=200),
)
def test_categorical_scores_equal_scipy(ref, cur):
    reference = reference_of({"c": ref})
    current = CurrentData(reference)
    current.add(pa.table({"c": cur}))
    data = categorical_data(reference.profile["columns"]["c"], current.states["c"])
    cats = sorted(set(ref) | set(cur))
    r = np.array([ref.count(c) for c in cats], dtype=float)
    c = np.array([cur.count(x) for x in cats], dtype=float)
    for base in (2.0, np.e):
        js = methods.get("categorical", "jensenshannon").score(data, options={"base": base})
        assert close(js["statistic"], jensenshannon(r / r.sum(), c / c.sum(), base=base)) and js["base"] == base
    chi2 = methods.get("categorical", "chi2").score(data)
    if len(cats) > 1:
        expected = st.chi2_contingency(np.array([r, c]), correction=False)
        assert close(chi2["statistic"], expected.statistic) and close(chi2["p_value"], expected.pvalue)
    else:
        assert chi2["p_value"] == 1.0


def test_psi_uses_the_stored_bins():
    """PSI bins are the reference deciles (open tails, duplicates merged), not bins of the current data."""
    ref = np.r_[np.zeros(500), np.arange(500.0)]  # half the reference is 0: the low deciles coincide
    reference = reference_of({"x": ref})
    edges = reference.profile["columns"]["x"]["psi"]["edges"]
    assert edges == sorted(set(edges)) and edges[0] == 0.0
    freq = reference.profile["columns"]["x"]["psi"]["frequencies"]
    assert len(freq) == len(edges) + 1 and sum(freq) == pytest.approx(1.0)
    far = monitor(reference, {"x": np.full(100, 1e9)})  # all of it past the last edge: the open tail holds it
    assert far["features"]["x"]["scores"]["psi"]["drift"] is True
    counts = np.histogram(ref, bins=[-np.inf, *edges, np.inf])[0]
    assert counts.sum() == len(ref)


def test_evidently_preset_switches_at_1000_rows():
    rng = np.random.default_rng(5)
    small = reference_of({"x": rng.normal(size=1000), "c": rng.choice(list("ab"), 1000)})
    large = reference_of({"x": rng.normal(size=1001), "c": rng.choice(list("ab"), 1001)})
    cur = {"x": rng.normal(size=300), "c": rng.choice(list("ab"), 300)}
    a = monitor(small, cur, preset_name="evidently")["features"]
    b = monitor(large, cur, preset_name="evidently")["features"]
    assert (a["x"]["method"], a["c"]["method"]) == ("ks", "chi2")
    assert (b["x"]["method"], b["c"]["method"]) == ("wasserstein", "jensenshannon")
    assert b["c"]["scores"]["jensenshannon"]["base"] == pytest.approx(np.e)
    assert PRESETS["evidently"].drift_share == 0.5


def test_every_validation_check_is_named_and_nothing_crashes():
    rng = np.random.default_rng(6)
    n = 2000
    reference = reference_of(
        pa.table(
            {
                "x": rng.normal(size=n),
                "y": rng.normal(size=n),
                "z": rng.normal(size=n),
                "when": pa.array(np.arange(n).astype("datetime64[s]")),
                "c": rng.choice(["a", "b"], n),
                "gone": rng.normal(size=n),
                "inf": np.r_[rng.normal(size=n - 1), np.inf],  # an infinite training value: missing, no crash
            }
        )
    )
    current = pa.table(
        {
            "x": pa.array([str(v) if i % 2 else "n/a" for i, v in enumerate(rng.normal(size=500))]),  # text now
            "y": pa.array([None if i % 4 == 0 else v for i, v in enumerate(rng.normal(size=500))]),  # 25 % missing
            "z": np.r_[rng.normal(size=498) * 3, np.inf, -np.inf],  # far beyond the training range, 2 infinite
            "when": pa.array([None] * 500, type=pa.timestamp("s")),
            "c": pa.array([None] * 500, type=pa.string()),  # empty
            "new": np.ones(500),
        }
    )
    result = monitor(reference, current)
    found = {(p["column"], p["check"]) for p in result["validation"]["problems"]}
    assert reference.profile["columns"]["inf"]["missing_rate"] == 1 / n
    assert found == {
        ("inf", "missing_column"),
        ("gone", "missing_column"),
        ("new", "unexpected_column"),
        ("x", "dtype"),
        ("y", "missing_rate"),
        ("z", "out_of_range"),
        ("z", "infinite"),
        ("when", "empty"),
        ("c", "empty"),
    }
    assert result["validation"]["ok"] is False
    assert result["features"]["x"]["drift"] is None and result["features"]["c"]["drift"] is None
    assert result["features"]["z"]["drift"] is True and set(result["features"]["y"]["scores"]) == {
        "ks",
        "wasserstein",
        "psi",
    }
    assert "when" not in result["features"]  # dates are checked, not scored
    json.dumps(result, allow_nan=False)  # plain JSON: no NaN, no NumPy types


def test_a_schema_1_profile_still_validates_and_scores_categories():
    """Profiles logged before schema 2 (version 1: top-50 frequencies, no PSI bins, no counts) still work."""
    from mlops_nb.monitoring.profile import Reference, load_profile

    old = {
        "version": 1,
        "rows": 1000,
        "columns": {
            "x": {"dtype": "float64", "missing_rate": 0.0, "kind": "numeric", "quantiles": {"0.0": 0.0, "1.0": 1.0}},
            "c": {
                "dtype": "object",
                "missing_rate": 0.0,
                "kind": "categorical",
                "distinct": 2,
                "frequencies": {"a": 0.5, "b": 0.5},
            },
        },
    }
    reference = Reference(load_profile(old))
    result = monitor(reference, {"x": np.linspace(0, 1, 500), "c": ["a"] * 450 + ["b"] * 50})
    chi2 = result["features"]["c"]["scores"]["chi2"]
    expected = st.chi2_contingency(np.array([[500, 500], [450, 50]]), correction=False)
    assert close(chi2["statistic"], expected.statistic) and result["features"]["c"]["drift"] is True
    assert result["features"]["x"]["method"] is None and result["validation"]["ok"] is True
    with pytest.raises(UsageError, match="Upgrade mlops-nb"):
        load_profile({"schema_version": 99, "columns": {}})


def test_the_registry_names_what_it_knows():
    with pytest.raises(UsageError, match="No numeric drift method 'kl'; known: ks, wasserstein, psi"):
        methods.get("numeric", "kl")
    assert [m.name for m in methods.for_kind("categorical")] == ["chi2", "jensenshannon", "psi"]


def test_a_column_too_narrow_for_twenty_bins_is_profiled() -> None:
    """Found by hypothesis: values 1.0 and 1.0000000000000002 left NumPy no room for 20 bin edges."""
    import numpy as np

    from mlops_nb.monitoring import sorted_arrays

    values = np.array([1.0, 1.0, np.nextafter(1.0, 2.0)])
    counts, edges = sorted_arrays.histogram(values, 20, float(values[0]), float(values[-1]))
    assert counts.sum() == 3 and len(edges) == len(counts) + 1
