"""Run All again in the same kernel, as a user does in JupyterLab: every unchanged stage is a hit, a changed
parameter re-runs only the stages that read it, and the diff never blames a module that did not change."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import embedded_client
from tests.notebooks import mlops_nb

EXAMPLE = Path(__file__).parents[2] / "notebooks" / "train.ipynb"
STAGES = ["load", "clean", "split", "train", "evaluate"]
ROOT_RUN = "print('RUN', mnb.active_run().root.run_id)"

pytestmark = pytest.mark.slow


@pytest.fixture
def notebook(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example notebook in a project of its own, with a last cell that prints the notebook's run id."""
    (project / "pyproject.toml").write_text("[project]\nname = 'wine'\n")
    path = project / "notebooks" / "train.ipynb"
    path.parent.mkdir()
    nb = nbformat.read(EXAMPLE, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(ROOT_RUN))
    nbformat.write(nb, path)
    monkeypatch.setenv("MLOPS_NB_NOTEBOOK", str(path))  # what mlops-nb's papermill engine tells the kernel
    return path


def stage_passes(project: Path, run_id: str) -> list[dict[str, bool]]:
    """The notebook run's stages in the order they ran, one {stage: cache hit} per Run All."""
    client = embedded_client(project)
    run = client.get_run(run_id)
    children = client.search_runs(
        [run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'", order_by=["attributes.start_time ASC"]
    )
    passes: list[dict[str, bool]] = []
    for child in children:
        name = child.data.tags["mlops_nb.stage"]
        if not passes or name in passes[-1]:
            passes.append({})
        passes[-1][name] = child.data.tags["mlops_nb.cache_hit"] == "true"
    return passes


def run_all(client: NotebookClient, nb) -> str:
    for index, cell in enumerate(nb.cells):
        client.execute_cell(cell, index)
    return nb.cells[-1].outputs[-1]["text"].split()[-1]


def test_a_second_run_all_in_the_same_kernel_serves_every_unchanged_stage(project: Path, notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(notebook.parent)}}
    )
    with client.setup_kernel():
        run_id = run_all(client, nb)
        assert run_all(client, nb) == run_id  # one notebook run for the kernel's life
        (parameters,) = [c for c in nb.cells if c.source.startswith("# Parameters")]
        parameters.source = parameters.source.replace("C = 1.0", "C = 0.5")
        run_all(client, nb)
        nb.cells.append(nbformat.v4.new_code_cell("assert mnb.flush(60)"))
        client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
        nb.cells.pop()

    first, second, changed = stage_passes(project, run_id)
    assert first == dict.fromkeys(STAGES, False)
    assert second == dict.fromkeys(STAGES, True)  # modules imported by the first pass are keyed as before it
    assert changed == {"load": True, "clean": True, "split": True, "train": False, "evaluate": False}

    # A fresh kernel with C = 0.5 is served from the same entries; the diff with the same-kernel run finds
    # nothing changed in any stage: no "module:sklearn.datasets" for a package nobody touched.
    nbformat.write(nb, notebook)
    fresh = nbformat.read(notebook, as_version=4)
    NotebookClient(
        fresh, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(notebook.parent)}}
    ).execute()
    fresh_id = fresh.cells[-1].outputs[-1]["text"].split()[-1]
    assert stage_passes(project, fresh_id) == [dict.fromkeys(STAGES, True)]
    done = mlops_nb("diff", run_id, fresh_id, "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    stages = {s["stage"]: s for s in json.loads(done.stdout)["stages"]}
    assert sorted(stages) == sorted(STAGES)
    assert {name: s["inputs_changed"] for name, s in stages.items()} == {name: [] for name in STAGES}
    assert not any(s["code_changed"] or s["params_changed"] for s in stages.values())
    load = stages["load"]["run_ids"][1]
    tag = embedded_client(project).get_run(load).data.tags["mlops_nb.module.sklearn.datasets"]
    assert tag.startswith("version scikit-learn ")
