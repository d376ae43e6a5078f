"""A fixed sample of real notebooks that nobody here wrote: tracked, they show what they show plainly.

Each notebook of ``run.SAMPLE`` (and of ``run.SAMPLE_MORE`` with ``--corpus`` or ``MLOPS_NB_CORPUS=1``, as CI's
corpus step runs them) is run plainly twice, then with every code cell a ``%%track`` stage through
``mlops-nb run``: cold, warm (a fresh kernel, the same cache) and with one numeric literal of an early cell
changed. Every cell that two plain runs show alike must look the same tracked: its text and its number of
figures. ``python -m tests.corpus.run`` prints the same comparison by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.corpus import run as corpus

pytestmark = pytest.mark.slow

_results: dict[str, corpus.Result] = {}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A notebook's three tests share its runs: under pytest-xdist they stay on one worker (--dist loadgroup),
    while the notebooks spread over the workers."""
    if "name" in metafunc.fixturenames:
        more = os.environ.get("MLOPS_NB_CORPUS") == "1" or metafunc.config.getoption("corpus", default=False)
        names = corpus.SAMPLE + (corpus.SAMPLE_MORE if more else ())
        metafunc.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(f"corpus-{n}")) for n in names])


@pytest.fixture
def checked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The notebook's result (plain, cold, warm, changed), computed once for its three tests."""

    def result(name: str) -> corpus.Result:
        if name not in _results:
            (notebook,) = [n for n in corpus.sample(more=True) if n.name == name]
            workdir: Path = tmp_path_factory.mktemp(name.replace("/", "__"))
            _results[name] = corpus.check(notebook, workdir)
        found = _results[name]
        assert not found.plain_error, f"{name} no longer runs plainly: {found.plain_error}"
        return found

    return result


def test_cold_tracked_run_shows_what_the_plain_run_shows(name: str, checked) -> None:
    result = checked(name)
    assert result.modes["cold"].equal, corpus.describe(result)
    assert result.modes["cold"].stages, "no stage was recorded"


def test_warm_tracked_run_shows_what_the_plain_run_shows(name: str, checked) -> None:
    result = checked(name)
    assert result.modes["warm"].equal, corpus.describe(result)


def test_tracked_run_after_a_changed_literal_shows_what_the_changed_plain_run_shows(name: str, checked) -> None:
    result = checked(name)
    changed = result.modes["changed"]
    if changed.change is None:
        pytest.skip(changed.error)
    assert changed.equal, corpus.describe(result)
    assert not all(s.hit for s in changed.stages.values()), "the changed literal ran no stage again"
