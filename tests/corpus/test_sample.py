"""A fixed sample of real notebooks that nobody here wrote: tracked, they show what they show plainly.

Each notebook of ``run.SAMPLE`` is run plainly twice, then with every code cell a ``%%track`` stage through
``mlops-nb run``: cold, warm (a fresh kernel, the same cache) and with one numeric literal of an early cell
changed. Every cell that two plain runs show alike must look the same tracked: its text and its number of
figures. ``python -m tests.corpus.run`` prints the same comparison by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.corpus import run as corpus

pytestmark = pytest.mark.slow

# Differences seen on 2026-12-07 whose causes are issue 17's items that are the lead's work (not the harness):
# item 1: a hit shows nothing of what the run showed (prints, the last expression's value, figures);
# item 2: a stage changes an input through a method call (rng.normal(...) on a RandomState from an earlier
#         stage), a hit restores the input as it was before, and later stages compute other numbers;
# item 3: pyplot's state across cells (a figure left open by a restored cell shows up under a later one).
# The cold runs show what the plain runs show, for all ten.
ITEM_1 = "issue 17 item 1: a cache hit does not replay the stage's outputs (prints, values, figures)"
ITEM_2 = (
    "issue 17 item 2: a stage mutates its input rng (a RandomState from an earlier stage); a hit leaves it unchanged"
)
ITEM_3 = "issue 17 item 3: a figure of a restored cell shows up under a later cell"
WARM = {
    "sklearn/cluster/plot_dbscan": ITEM_1,
    "sklearn/cross_decomposition/plot_pcr_vs_pls": f"{ITEM_1}; {ITEM_2}",
    "sklearn/linear_model/plot_nnls": f"{ITEM_1}; {ITEM_3}",
    "sklearn/miscellaneous/plot_estimator_representation": ITEM_1,
    "sklearn/miscellaneous/plot_isotonic_regression": ITEM_1,
    "sklearn/mixture/plot_gmm_pdf": ITEM_1,
    "sklearn/svm/plot_separating_hyperplane": ITEM_1,
    "sklearn/tree/plot_unveil_tree_structure": ITEM_1,
    "statsmodels/ols": ITEM_1,
    "statsmodels/quantile_regression": f"{ITEM_1}; {ITEM_3}",
}
CHANGED = {
    "sklearn/miscellaneous/plot_estimator_representation": ITEM_1,
    "statsmodels/ols": ITEM_1,
    "statsmodels/quantile_regression": f"{ITEM_1}; {ITEM_3}",
}

_results: dict[str, corpus.Result] = {}


@pytest.fixture
def checked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The notebook's result (plain, cold, warm, changed), computed once for its three tests."""

    def result(name: str) -> corpus.Result:
        if name not in _results:
            (notebook,) = [n for n in corpus.sample() if n.name == name]
            workdir: Path = tmp_path_factory.mktemp(name.replace("/", "__"))
            _results[name] = corpus.check(notebook, workdir)
        found = _results[name]
        assert not found.plain_error, f"{name} no longer runs plainly: {found.plain_error}"
        return found

    return result


def _xfail(known: dict[str, str]) -> list:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=False, reason=known[name])) if name in known else name
        for name in corpus.SAMPLE
    ]


@pytest.mark.parametrize("name", corpus.SAMPLE)
def test_cold_tracked_run_shows_what_the_plain_run_shows(name: str, checked) -> None:
    result = checked(name)
    assert result.modes["cold"].equal, corpus.describe(result)
    assert result.modes["cold"].stages, "no stage was recorded"


@pytest.mark.parametrize("name", _xfail(WARM))
def test_warm_tracked_run_shows_what_the_plain_run_shows(name: str, checked) -> None:
    result = checked(name)
    assert result.modes["warm"].equal, corpus.describe(result)


@pytest.mark.parametrize("name", _xfail(CHANGED))
def test_tracked_run_after_a_changed_literal_shows_what_the_changed_plain_run_shows(name: str, checked) -> None:
    result = checked(name)
    changed = result.modes["changed"]
    if changed.change is None:
        pytest.skip(changed.error)
    assert changed.equal, corpus.describe(result)
    assert not all(s.hit for s in changed.stages.values()), "the changed literal ran no stage again"
