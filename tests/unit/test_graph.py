"""The stage graph read from notebook files: edges, parameters, files, and the pre-flight check's refusals."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from mlops_nb.exceptions import UsageError
from mlops_nb.pipelines.graph import CELL, STAGE, Edge, build_graph
from mlops_nb.pipelines.select import select
from mlops_nb.pipelines.show import dot, table
from tests.notebooks import write_notebook


def _graph(tmp_path: Path, *cells: str, parameters: str | None = None):
    return build_graph(write_notebook(tmp_path / "nb.ipynb", *cells, parameters=parameters))


def _edges(graph) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(e.source, e.target, e.names) for e in graph.edges}


def test_the_example_notebook_is_a_chain_with_its_parameters() -> None:
    graph = build_graph(Path(__file__).parents[2] / "notebooks" / "train.ipynb")
    assert graph.names == ["load", "clean", "split", "train", "evaluate"]
    assert graph.problems == ()
    assert ("split", "evaluate", ("X_test", "y_test")) in _edges(graph)
    assert ("train", "evaluate", ("model",)) in _edges(graph)  # mnb.log_model(...) does not make mnb an output
    split = graph.node("split")
    assert split.params == ("test_size", "seed") and split.inputs == ("features", "target")
    assert graph.node("train").params == ("C",)
    assert graph.parameters == {"C": 1.0, "seed": 0, "test_size": 0.25}
    assert graph.upstream("evaluate") == ["load", "clean", "split", "train"]
    assert graph.dependencies("evaluate") == ["split", "train"]


def test_a_name_redefined_in_two_stages_comes_from_the_last_one_above(tmp_path: Path) -> None:
    graph = _graph(
        tmp_path,
        "%%track a\nx = 1",
        "%%track b\ny = x + 1",
        "%%track c\nx = y * 2",
        "%%track d\nz = x + y",
    )
    assert _edges(graph) == {("a", "b", ("x",)), ("b", "c", ("y",)), ("c", "d", ("x",)), ("b", "d", ("y",))}
    assert graph.problems == ()
    assert graph.upstream("d") == ["a", "b", "c"]


def test_a_change_in_place_makes_the_changing_stage_the_provider(tmp_path: Path) -> None:
    graph = _graph(
        tmp_path,
        "%%track load\nimport pandas as pd\ndf = pd.DataFrame({'a': [1, None]})",
        "%%track clean\ndf.dropna(inplace=True)",
        "%%track use\nn = len(df)",
    )
    assert ("clean", "use", ("df",)) in _edges(graph) and ("load", "use", ("df",)) not in _edges(graph)
    assert graph.node("clean").outputs == ("df",)


def test_parameters_setup_cells_and_functions(tmp_path: Path) -> None:
    graph = _graph(
        tmp_path,
        "import numpy as np\nTHRESHOLD = 0.5\ndef score(m):\n    return m.predict(X_test).mean() > THRESHOLD",
        "%%track split\nX_test = np.arange(n)",
        "%%track train\nfrom sklearn.dummy import DummyRegressor\n"
        "model = DummyRegressor().fit(X_test.reshape(-1, 1), X_test)",
        "%%track check\nok = score(model)",
        parameters="n = 10\nlabel = 'a'",
    )
    assert graph.parameters == {"label": "a", "n": 10}
    assert graph.node("split").params == ("n",) and graph.node("split").inputs == ()
    # score() reads X_test when it is called: check depends on split through it
    assert graph.dependencies("check") == ["split", "train"]
    assert graph.setup == (0, 1)  # the parameters cell and the setup cell run in every run
    assert graph.problems == ()


def test_declared_params_and_inputs_win(tmp_path: Path) -> None:
    graph = _graph(
        tmp_path,
        "%%track a\nx = 1\ny = 2",
        "%%track b --in x --params label\nz = eval('x + y')",
        parameters="label = 'a'",
    )
    b = graph.node("b")
    assert b.inputs == ("x",) and b.params == ("label",)
    assert _edges(graph) == {("a", "b", ("x",))}


def test_files_written_by_one_stage_and_read_by_another_are_edges(tmp_path: Path) -> None:
    graph = _graph(
        tmp_path,
        "%%track prepare\nimport pandas as pd\npd.DataFrame({'a': [1]}).to_csv('data/clean.csv')",
        "%%track model --out model.bin\nopen('model.bin', 'wb').write(b'x')",
        "%%track fit\nimport pandas as pd\nframe = pd.read_csv('data/clean.csv')",
        "%%track serve --in model.bin\nsize = 1",
    )
    assert graph.node("prepare").writes == ("data/clean.csv",)
    assert graph.node("fit").files == ("data/clean.csv",)
    assert ("prepare", "fit", ("data/clean.csv",)) in _edges(graph)
    assert ("model", "serve", ("model.bin",)) in _edges(graph)


def test_cells_outside_stages_are_named_with_what_they_define(tmp_path: Path) -> None:
    graph = _graph(
        tmp_path,
        "%%track load\nrows = [3, 1, 2]",
        "ordered = sorted(rows)\nfirst = ordered[0]",
        "print(first)",
        "%%track report\nline = f'{first}'",
    )
    kinds = {s.name: s.kind for s in graph.stages}
    assert kinds == {"load": STAGE, "ordered, first": CELL, "cell 3": CELL, "report": STAGE}
    assert graph.names == ["load", "report"]
    assert graph.dependencies("report") == ["load"]  # through the cell, which runs inside its task
    assert graph.upstream("report") == ["load", "ordered, first"]
    with pytest.raises(UsageError, match="no stage 'ordered, first'"):
        graph.node("ordered, first")


def test_mlops_auto_names_stages_as_the_kernel_does(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext mlops_nb\n%mlops auto"),
        nbformat.v4.new_code_cell("import numpy as np"),
        nbformat.v4.new_markdown_cell("## Load the data"),
        nbformat.v4.new_code_cell("data = np.arange(5)"),
        nbformat.v4.new_code_cell("# Fit the model\nmean = data.mean()"),
        nbformat.v4.new_code_cell("%%track report\ntext = str(mean)"),
        nbformat.v4.new_code_cell("%mlops auto --off"),
        nbformat.v4.new_code_cell("extra = mean * 2"),
    ]
    path = tmp_path / "auto.ipynb"
    nbformat.write(nb, path)
    graph = build_graph(path)
    assert graph.names == ["load-the-data", "fit-the-model", "report"]
    assert [s.kind for s in graph.stages] == [STAGE, STAGE, STAGE, CELL]
    assert Edge("load-the-data", "fit-the-model", ("data",)) in graph.edges


def test_unstageable_values_crossing_a_stage_boundary_are_refused(tmp_path: Path) -> None:
    graph = _graph(
        tmp_path,
        "def numbers():\n    yield 1",
        "%%track setup\nimport threading, sqlite3\nlock = threading.Lock()\nconn = sqlite3.connect('x.db')\n"
        "gen = (i for i in range(3))\nit = numbers()\nsafe = 1",
        "%%track use\nwith lock:\n    rows = conn.execute('select 1').fetchall()\n"
        "values = list(gen) + list(it) + [safe]",
        "%%track inside\nimport threading\nmine = threading.Lock()\nwith mine:\n    total = 1",
    )
    details = [p.detail for p in graph.problems]
    assert all(p.stage == "setup" for p in graph.problems)
    assert any(d.startswith("lock is a lock (threading.Lock())") for d in details)
    assert any(d.startswith("conn is an open connection (sqlite3.connect())") for d in details)
    assert any(d.startswith("gen is a generator") for d in details)
    assert any(d.startswith("it is a generator (what numbers() returns)") for d in details)
    assert len(details) == 4  # safe crosses too, and a lock used inside its own stage is fine


def test_a_name_no_one_provides_and_a_name_read_too_early(tmp_path: Path) -> None:
    graph = _graph(tmp_path, "%%track a\ny = x + missing", "%%track b\nx = 1")
    details = {p.stage: [] for p in graph.problems}
    for p in graph.problems:
        details[p.stage].append(p.detail)
    assert any("reads missing, which no stage, parameter or setup cell provides" in d for d in details["a"])
    assert any("reads x before the cell that provides it (b, cell 2)" in d for d in details["a"])


def test_a_star_import_hides_where_names_come_from(tmp_path: Path) -> None:
    graph = _graph(tmp_path, "from math import *", "%%track a\ny = pi * 2")
    assert graph.problems == ()


def test_a_cycle_through_in_place_mutation(tmp_path: Path) -> None:
    graph = _graph(
        tmp_path,
        "%%track prepare\nlog.append('prepared')\ndata = [1, 2, 3]",
        "%%track init\nlog = list(data)",
    )
    cycle = [p for p in graph.problems if "cycle" in p.detail]
    assert len(cycle) == 1 and cycle[0].stage == "prepare"
    assert "cycle with init through log, changed in place" in cycle[0].detail


def test_duplicate_names_syntax_errors_and_bad_track_lines(tmp_path: Path) -> None:
    graph = _graph(
        tmp_path,
        "%%track load\nx = 1",
        "%%track load\ny = 2",
        "%%track broken\nz = (",
        '%%track "unclosed\nw = 1',
    )
    by_stage = {p.stage: p.detail for p in graph.problems}
    assert by_stage["load"].startswith("2 stages have this name (cells 1, 2)")
    assert by_stage["broken"].startswith("has a syntax error (line 1)")
    assert "close the quote" in by_stage["cell 4"]


def test_unknown_stages_suggest_close_names_and_a_notebook_without_stages_says_how(tmp_path: Path) -> None:
    graph = _graph(tmp_path, "%%track train\nx = 1", "%%track evaluate\ny = x")
    with pytest.raises(UsageError, match="Did you mean train"):
        graph.node("trian")
    empty = _graph(tmp_path, "x = 1\nprint(x)")
    with pytest.raises(UsageError, match="has no stages: mark a cell as one with %%track NAME"):
        empty.node("train")


def test_the_json_has_the_documented_fields(tmp_path: Path) -> None:
    data = _graph(tmp_path, "%%track a\nx = n", "%%track b\ny = x", parameters="n = 1").to_json()
    assert set(data) >= {"stages", "edges", "problems", "parameters"}
    assert set(data["stages"][0]) >= {"name", "inputs", "outputs", "params", "files"}
    assert data["edges"] == [{"from": "a", "to": "b", "names": ["x"]}]
    assert data["stages"][0]["params"] == ["n"]


def test_a_file_that_is_not_a_notebook(tmp_path: Path) -> None:
    (tmp_path / "x.ipynb").write_text("{not json")
    with pytest.raises(UsageError, match="Cannot read"):
        build_graph(tmp_path / "x.ipynb")


def _selection(tmp_path: Path, stage: str, **kwargs):
    path = write_notebook(
        tmp_path / "sel.ipynb",
        "%load_ext mlops_nb",
        "%%track load\nrows = list(range(n))",
        "%%track side\nother = len(rows)",
        "shown = sorted(rows)",
        "def helper(x):\n    return x * 2",
        "%%track score\ntotal = helper(sum(shown))",
        "%%track after\nlast = total + 1",
        parameters="n = 3",
    )
    nb = nbformat.read(path, as_version=4)
    graph = build_graph(path)
    return select(graph, [i for i, c in enumerate(nb.cells) if c.cell_type == "code"], stage=stage, **kwargs)


def test_a_stage_runs_with_what_it_depends_on_and_the_setup_cells(tmp_path: Path) -> None:
    chosen = _selection(tmp_path, "score")
    # cells: 0 parameters, 1 load_ext, 2 load, 3 side, 4 shown, 5 helper, 6 score, 7 after
    assert chosen.run == (0, 1, 2, 4, 5, 6) and chosen.skip == (3, 7)
    assert chosen.upstream == ("load",) and chosen.cache_only == ()
    assert _selection(tmp_path, "score", no_upstream=True).cache_only == ("load",)
    until = _selection(tmp_path, "score", until=True)
    assert until.run == (0, 1, 2, 3, 4, 5, 6) and until.upstream == ("load", "side")
    assert "upstream load: restored from the cache, or run first" in chosen.describe()


def test_a_selection_with_a_problem_upstream_is_refused_and_one_elsewhere_is_not(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "p.ipynb",
        "%%track a\nimport threading\nlock = threading.Lock()",
        "%%track b\nwith lock:\n    x = 1",
        "%%track c\ny = 2",
        "%%track d --no-cache\nz = y",
        "%%track e\nw = z",
    )
    graph = build_graph(path)
    cells = list(range(5))
    with pytest.raises(UsageError, match=r"b cannot run apart(.|\n)*a: lock is a lock"):
        select(graph, cells, stage="b")
    assert select(graph, cells, stage="c").run == (2,)
    with pytest.raises(UsageError, match="upstream stage\\(s\\) d are %%track --no-cache"):
        select(graph, cells, stage="e", no_upstream=True)


def test_dot_escapes_names_and_the_table_shows_problems(tmp_path: Path) -> None:
    graph = _graph(tmp_path, "%%track 'a\"b\\c'\nx = 1", "%%track next\ny = x + missing")
    text = dot(graph)
    assert '"a\\"b\\\\c" -> "next" [label="x"];' in text
    shown = table(graph)
    assert "next: reads missing, which no stage" in shown


def test_names_a_magic_may_bring_are_not_reported_missing(tmp_path: Path) -> None:
    graph = _graph(tmp_path, "%store -r table", "%%track a\nrows = len(table)")
    assert graph.problems == ()
    late = _graph(tmp_path, "%%track a\ny = helper(1)", "def helper(x):\n    return x")
    assert [p.detail.split(":")[0] for p in late.problems] == [
        "reads helper before the cell that provides it (a setup cell, cell 2) has run"
    ]


def test_control_characters_in_names_reach_no_terminal(tmp_path: Path) -> None:
    graph = _graph(tmp_path, "%%track 'red\x1b[31m'\nx = 1", "%%track next\ny = x + missing")
    with pytest.raises(UsageError) as refused:
        graph.node("nope\x1b[2J")
    assert "\x1b" not in str(refused.value) and "\\x1b[2J" in str(refused.value)
    assert "\x1b" not in table(graph)
