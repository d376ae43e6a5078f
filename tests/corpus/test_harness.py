"""The corpus harness itself: gallery scripts become the notebooks sphinx-gallery shows, views mask what
changes from run to run, and a changed literal is one number of an early cell."""

from __future__ import annotations

import nbformat

from tests.corpus import gallery
from tests.corpus.compare import CELL_KEY, View, compare, views
from tests.corpus.execute import changes, tracked_notebook

SCRIPT = '''"""
=====
Title
=====

What it shows.
"""

# Authors: someone
import numpy as np

# %%
# Data
# ----
#
# Some text, with `code`.
rng = np.random.RandomState(0)
n_samples = 20
X = rng.normal(size=(n_samples, 2))

# %% Fit
print(X.shape)
##############################################################################
# Old-style separator
X.sum()
'''


def test_a_gallery_script_becomes_markdown_and_code_cells_in_order() -> None:
    assert gallery.blocks(SCRIPT) == [
        ("markdown", "=====\nTitle\n=====\n\nWhat it shows."),
        ("code", "# Authors: someone\nimport numpy as np"),
        ("markdown", "Data\n----\n\nSome text, with `code`."),
        ("code", "rng = np.random.RandomState(0)\nn_samples = 20\nX = rng.normal(size=(n_samples, 2))"),
        ("markdown", "## Fit"),
        ("code", "print(X.shape)"),
        ("markdown", "Old-style separator"),
        ("code", "X.sum()"),
    ]
    nb = gallery.to_notebook(SCRIPT)
    nbformat.validate(nb)
    assert [c.cell_type for c in nb.cells] == ["markdown", "code"] * 4
    assert gallery.online(nb) is None


def test_network_use_in_code_is_seen_and_in_text_is_not() -> None:
    script = (
        '"""See https://example.org."""\n# %%\n# From https://example.org\nfrom sklearn.datasets import fetch_openml\n'
    )
    assert gallery.online(gallery.to_notebook(script)) == "fetch_"
    assert gallery.online(gallery.to_notebook('"""See https://example.org."""\nx = 1\n')) is None


def test_the_tracked_notebook_wraps_every_code_cell_and_keeps_its_index() -> None:
    nb = gallery.to_notebook(SCRIPT)
    nb.cells.append(nbformat.v4.new_code_cell("%%time\nx = 1"))
    nb.cells.append(nbformat.v4.new_code_cell("\n"))  # an empty cell stays empty (statsmodels' plots_boxplots)
    tracked = tracked_notebook(nb)
    assert tracked.cells[0].source == "%load_ext mlops_nb"
    code = [c for c in tracked.cells[1:] if c.cell_type == "code"]
    assert [c.source.splitlines()[0] for c in code] == [
        "%%track s01",
        "%%track s03",
        "%%track s05",
        "%%track s07",
        "%%time",
        "",
    ]
    assert [c.metadata[CELL_KEY] for c in code] == [1, 3, 5, 7, 8, 9]


def test_one_numeric_literal_of_an_early_cell_is_changed() -> None:
    nb = gallery.to_notebook(SCRIPT)
    variants = changes(nb)
    changed = [(c.cell, c.line, c.old, c.new) for _, c in variants]
    assert changed == [(3, 2, "20", "21"), (3, 1, "0", "1")]  # an assignment before a positional argument
    first = variants[0][0]
    assert first.cells[3].source.splitlines()[1] == "n_samples = 21"
    assert variants[1][0].cells[3].source.splitlines()[0] == "rng = np.random.RandomState(1)"
    assert [c.source for i, c in enumerate(first.cells) if i != 3] == [
        c.source for i, c in enumerate(nb.cells) if i != 3
    ]


def test_views_mask_addresses_and_mlops_nb_s_own_line_and_comparisons_name_the_cell() -> None:
    cell = nbformat.v4.new_code_cell("x", metadata={CELL_KEY: 4})
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="⟳ s04: restored from the cache, 1.00 s saved\nok\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": "<Line2D at 0x7f1234abcd>"}, execution_count=1),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "<Figure>"}),
    ]
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert views(nb) == {4: View(stdout="ok\n", result="<Line2D at 0x…>", figures=1)}
    hit = compare({4: View(stdout="ok\n", figures=1)}, {4: View()}, [4], {4: True}, [])
    (difference,) = hit.differences
    assert difference.fields == {"stdout": ("ok\n", ""), "figures": (1, 0)}
    assert "item 1" in difference.cause
    assert (
        compare({4: View(figures=1)}, {4: View(figures=2)}, [4], {4: False}, [])
        .differences[0]
        .cause.endswith("item 3)")
    )
