"""``%mlops auto``'s choices, pure: which cells become stages and what they are called."""

from __future__ import annotations

from pathlib import Path

import nbformat

from mlops_nb.stages.auto import Namer, does_work, first_comment, slug


def test_cells_that_only_import_define_assign_constants_or_run_magics_are_not_stages() -> None:
    assert not does_work("import numpy as np\nfrom sklearn import svm\n")
    assert not does_work('"""doc"""\ndef f(x):\n    return x * 2\nclass A:\n    pass\n')
    assert not does_work("C = 1.0\nlabels = ['a', 'b']\nseed: int = 7")  # a parameters cell
    assert not does_work("%load_ext mlops_nb\n%mlops auto\n!echo hi")
    assert not does_work("%%time\nx = f(1)")  # a cell magic of its own: left alone, %%track cells too
    assert not does_work("x = (")  # IPython reports the syntax error as for any cell
    assert does_work("import numpy as np\nX = np.zeros(3)")
    assert does_work("model.fit(X, y)")
    assert does_work("C = 1.0\nprint(C)")
    assert does_work("n = len(data)")


def test_names_come_from_the_first_comment_then_the_heading_above_then_the_position(tmp_path: Path) -> None:
    assert slug("Load the data!") == "load-the-data"
    assert slug("  ### ") == ""
    assert first_comment("# Train a model\nmodel.fit(X, y)") == "Train a model"
    assert first_comment("x = 1  # not a name\n# nor this") == ""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Example\n## Fit the model"),
        nbformat.v4.new_code_cell("model.fit(X, y)"),
        nbformat.v4.new_code_cell("# Score it\nscore = model.score(X, y)"),
        nbformat.v4.new_code_cell("print(score)"),
        nbformat.v4.new_markdown_cell("Some text, no heading"),
        nbformat.v4.new_code_cell("predictions = model.predict(X)"),
    ]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    namer = Namer(str(path))
    assert namer.name("model.fit(X, y)", 1) == "fit-the-model"
    assert namer.name("# Score it\nscore = model.score(X, y)", 2) == "score-it"
    assert namer.name("print(score)", 3) == "fit-the-model-2"  # the same heading: numbered
    assert namer.name("model.fit(X, y)", 4) == "fit-the-model"  # the same cell again keeps its name
    assert namer.name("predictions = model.predict(X)", 5) == "fit-the-model-3"
    assert Namer(None).name("y = 2 * x", 9) == "cell-9"  # no notebook file: its execution count
    assert Namer(str(tmp_path / "missing.ipynb")).name("y = 2 * x", 3) == "cell-3"
    assert namer.name("--x = 1", 6) == "cell-6"  # a cell not in the file is named by its count


def test_a_cell_keeps_its_name_when_cells_above_it_are_skipped_or_run_later(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("## Plots"),
        nbformat.v4.new_code_cell("a = len('x')"),
        nbformat.v4.new_code_cell("import numpy as np"),  # no work: takes no name
        nbformat.v4.new_code_cell("b = a + 1"),
        nbformat.v4.new_code_cell("c = b + 1"),
    ]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    skipping = Namer(str(path))
    assert skipping.name("c = b + 1", 1) == "plots-3"  # as in a run from the top, where a and b came first
    assert skipping.name("a = len('x')", 2) == "plots"
    assert skipping.name("b = a + 1", 3) == "plots-2"
