"""The whole corpus: every notebook of both sources that runs offline in about 20 s of CPU, tracked cold,
warm and changed, against its plain runs. Long (several seconds to a minute a notebook): it runs only with
``pytest --corpus`` or ``MLOPS_NB_CORPUS=1`` (CI runs it as its own step, see .ci/run), for at most
``MLOPS_NB_CORPUS_MINUTES`` when that is set.

Every notebook's warm run and changed run must show what its plain runs show.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.corpus import run as corpus
from tests.corpus import sources

ENABLED = os.environ.get("MLOPS_NB_CORPUS") == "1"
BUDGET_ENV = "MLOPS_NB_CORPUS_MINUTES"  # at most this long in all; the notebooks after it are skipped
_STARTED = time.monotonic()

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "notebook" in metafunc.fixturenames:
        if ENABLED or metafunc.config.getoption("corpus", default=False):
            found = sources.notebooks()
            metafunc.parametrize("notebook", found, ids=[n.name for n in found])
        else:
            off = pytest.mark.skip(reason="the whole corpus runs with --corpus or MLOPS_NB_CORPUS=1")
            metafunc.parametrize("notebook", [pytest.param(None, marks=off, id="corpus")])


def test_tracked_runs_show_what_plain_runs_show(notebook: sources.Notebook, tmp_path: Path) -> None:
    budget = float(os.environ.get(BUDGET_ENV) or "inf") * 60
    if time.monotonic() - _STARTED > budget:
        pytest.skip(f"over the corpus's time budget ({BUDGET_ENV}={os.environ[BUDGET_ENV]})")
    known = corpus.survey([notebook], progress=lambda _: None)[notebook.name]
    if known["error"]:
        pytest.skip(f"does not run plainly here: {known['error']}")
    if known["cpu_seconds"] > corpus.MAX_SECONDS:
        pytest.skip(f"{known['cpu_seconds']:.0f} s of CPU, over the corpus's {corpus.MAX_SECONDS:.0f} s")
    result = corpus.check(notebook, tmp_path)
    if result.plain_error:
        pytest.skip(f"does not run plainly twice: {result.plain_error}")
    assert result.modes["cold"].equal, corpus.describe(result)
    # A notebook without a numeric literal in its early cells has no changed run to compare.
    modes = [result.modes["warm"], *([result.modes["changed"]] if result.modes["changed"].change else [])]
    if not all(m.equal for m in modes):
        # Not a gate yet (docs/development.md): a difference is reported as an expected failure with what differs,
        # until a whole corpus run is equal; the sample in the README's test command is strict.
        pytest.xfail("differs when tracked (issue 17, not yet a gate): " + corpus.describe(result)[:3000])
