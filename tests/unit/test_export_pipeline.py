"""``mlops-nb export-pipeline``: the task layout, and what it refuses (exit 2, naming the fix, nothing written).
The files run by the real Airflow and kfp: tests/integration/test_export_pipeline.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlops_nb.cli import main
from mlops_nb.pipelines.graph import build_graph
from mlops_nb.pipelines.tasks import plan
from tests.notebooks import write_notebook

CELLS = (
    "%load_ext mlops_nb",
    "%%track load\ndata = list(range(n))",
    "%%track double\ndoubled = [2 * x for x in data]",
    "%%track side\nother = [x + 1 for x in data]",
    "%%track score\ntotal = sum(doubled) + sum(other)",
)


def _export(project: Path, *args: str):
    return CliRunner().invoke(main, ["export-pipeline", *args], catch_exceptions=False)


@pytest.fixture
def notebook(project: Path) -> Path:
    return write_notebook(project / "pipe.ipynb", *CELLS, parameters="n = 3")


def _assigned(source: str) -> dict[str, object]:
    """The module-level constants of a generated file that are literals, as the values they hold."""
    tree = ast.parse(source)
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id.isupper()
        and not any(isinstance(n, ast.Attribute) for n in ast.walk(node.value))  # KFP's run id placeholder
    }


def test_a_task_per_stage_with_the_graphs_edges_and_the_parameters(project: Path, notebook: Path) -> None:
    result = _export(project, "pipe.ipynb", "--to", "airflow", "--out", "dags", "--schedule", "@daily")
    assert result.exit_code == 0, result.output
    source = (project / "dags" / "pipe.py").read_text()
    constants = _assigned(source)
    assert list(constants["TASKS"]) == ["load", "double", "side", "score"]
    assert constants["UPSTREAM"] == {"double": ["load"], "side": ["load"], "score": ["double", "side"]}
    assert constants["PARAMS"] == {"n": 3}
    assert constants["NOTEBOOK"] == str(notebook)
    assert 'schedule="@daily"' in source and 'dag_id="pipe"' in source


def test_groups_run_their_stages_in_one_task(project: Path, notebook: Path) -> None:
    layout = plan(build_graph(notebook), [["side", "load"]])
    assert [(t.task_id, t.stages, t.upstream) for t in layout.tasks] == [
        ("load__side", ("load", "side"), ()),
        ("double", ("double",), ("load__side",)),
        ("score", ("score",), ("load__side", "double")),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--group", "load,dubble"], "has no stage 'dubble'. Did you mean double?"),
        (["--group", "load,double", "--group", "double"], "stage 'double' is in two groups"),
        (["--group", "load,score"], "the groups depend on each other in a cycle"),
        (["--group", "load,"], "give stage names separated by commas"),
        (["--schedule", "every day"], "give a cron line of 5 fields"),
        (["--mlops-nb-command", " "], "--mlops-nb-command is empty"),
        (["--alias", "prod"], "go with --promote NAME"),
        (["--promote", "wine", "--must-beat", "champion"], "give --metric M"),
        (["--promote", "wine", "--require", "accuracy >>= 1"], 'write it as "METRIC OP VALUE"'),
        (["--monitor-data", "new.csv"], "say which model to check"),
        (["--promote", "wine\nx"], "give a non-empty name or path on one line"),
    ],
)
def test_bad_options_are_refused_naming_the_fix(project: Path, notebook: Path, args: list[str], message: str) -> None:
    result = _export(project, "pipe.ipynb", "--to", "airflow", "--out", "dags", *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (project / "dags").exists()


def test_notebooks_that_cannot_run_as_tasks_are_refused(project: Path) -> None:
    write_notebook(project / "plain.ipynb", "x = 1", "y = x + 1")
    result = _export(project, "plain.ipynb", "--to", "kfp", "--out", "out")
    assert result.exit_code == 2 and "has no stages: mark a cell as one with %%track NAME" in result.output

    write_notebook(project / "missing.ipynb", "%%track use\ny = undefined_name + 1")
    result = _export(project, "missing.ipynb", "--to", "airflow", "--out", "out")
    assert result.exit_code == 2, result.output
    assert "the pre-flight check (mlops-nb graph missing.ipynb) found" in result.output
    assert "use: " in result.output and "Fix these in the notebook" in result.output

    result = _export(project, "nowhere.ipynb", "--to", "airflow", "--out", "out")
    assert result.exit_code == 2 and "Cannot read nowhere.ipynb as a notebook" in result.output
    assert not (project / "out").exists()


def test_an_out_folder_that_cannot_be_written_is_refused(project: Path, notebook: Path) -> None:
    (project / "taken").write_text("a file, not a folder")
    result = _export(project, "pipe.ipynb", "--to", "airflow", "--out", "taken")
    assert result.exit_code == 2, result.output
    assert (
        "--out taken: cannot write pipe.py there" in result.output and "Give a folder you can write to" in result.output
    )


def test_the_kfp_file_is_valid_python_with_one_component_per_task(project: Path, notebook: Path) -> None:
    result = _export(project, "pipe.ipynb", "--to", "kfp", "--out", "kfp", "--group", "double,side")
    assert result.exit_code == 0, result.output
    source = (project / "kfp" / "pipe_pipeline.py").read_text()
    tree = ast.parse(source)
    components = [f.name for f in tree.body if isinstance(f, ast.FunctionDef) and f.name.startswith("task_")]
    assert components == ["task_load", "task_double__side", "task_score"]
    assert _assigned(source)["NOTEBOOK"] == "pipe.ipynb"  # relative: the image's working directory is the root
    assert '        tasks["score"].after(tasks["double__side"])' in source  # inside the exit handler
