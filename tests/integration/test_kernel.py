"""Recording from a real IPython kernel: the notebook's own run, provenance, and the flush at shutdown."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import embedded_client

CELLS = [
    "import mlops_nb as mnb",
    "mnb.log_param('source', 'kernel')",
    "with mnb.stage('prep'):\n    mnb.log_metric('rows', 150)",
    "try:\n    with mnb.stage('broken'):\n        raise ValueError('bad column')\nexcept ValueError:\n    pass",
    "print(mnb.active_run().kind, mnb.active_run().experiment)",
]


@pytest.mark.slow
@pytest.mark.parametrize("notebook_time", ["instant", "settled"])
def test_a_notebook_kernel_records_its_own_run_and_flushes_at_shutdown(
    project: Path, monkeypatch: pytest.MonkeyPatch, notebook_time: str
) -> None:
    """ "instant": the kernel is shut down right after its first records, perhaps before MLflow loaded in it
    (then a helper process finishes the sending after the kernel exits); "settled": the kernel flushes itself."""
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")  # the project root, above the notebook
    path = project / "analysis" / "churn.ipynb"
    path.parent.mkdir()
    cells = [*CELLS, "import time; time.sleep(5)"] if notebook_time == "settled" else CELLS
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(nb, path)
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))  # what jupyter_server gives a notebook's kernel
    monkeypatch.setenv("MLOPS_NB_FLUSH_INTERVAL", "600")  # only the shutdown flush can send the records
    executed = NotebookClient(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    assert executed.cells[len(CELLS) - 1].outputs[0]["text"].strip() == "notebook churn"
    journals = project / ".mlops_nb" / "journal"
    if notebook_time == "instant":
        deadline = time.monotonic() + 60
        while list(journals.glob("*.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert list(journals.glob("*.jsonl")) == []

    client = embedded_client(project)
    experiment = client.get_experiment_by_name("churn")  # named after the notebook
    runs = {
        r.data.tags["mlops_nb.kind"] + ":" + (r.info.run_name or ""): r
        for r in client.search_runs([experiment.experiment_id])
    }
    assert sorted(runs) == ["notebook:churn", "stage:broken", "stage:prep"]
    top = runs["notebook:churn"]
    assert top.info.status == "FINISHED"  # ended when the kernel shut down
    assert top.data.params == {"source": "kernel"} and top.data.metrics == {"rows": 150.0}
    assert top.data.tags["mlops_nb.notebook"] == str(path)
    assert top.data.tags["mlflow.source.type"] == "NOTEBOOK"
    assert "ipykernel" in top.data.tags["mlops_nb.kernel"]
    assert runs["stage:broken"].info.status == "FAILED"
    assert runs["stage:prep"].data.tags["mlflow.parentRunId"] == top.info.run_id
