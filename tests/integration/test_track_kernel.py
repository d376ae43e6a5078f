"""The example notebook in real kernels: recorded, served from the cache, and invalidated precisely."""

from __future__ import annotations

import time
from pathlib import Path

import joblib
import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from tests.conftest import embedded_client

EXAMPLE = Path(__file__).parents[2] / "notebooks" / "train.ipynb"
STAGES = ["load", "clean", "split", "train", "evaluate"]
DUMP = (
    "import joblib\n"
    "joblib.dump({'raw': raw, 'features': features, 'X_train': X_train, 'y_test': y_test,\n"
    "             'predictions': predictions, 'accuracy': accuracy}, 'outputs.joblib')\n"
    "print('RUN', mnb.active_run().root.run_id)"
)

pytestmark = pytest.mark.slow


@pytest.fixture
def notebook(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example notebook in a project of its own, plus a last cell that saves its outputs."""
    (project / "pyproject.toml").write_text("[project]\nname = 'wine'\n")
    path = project / "notebooks" / "train.ipynb"
    path.parent.mkdir()
    nb = nbformat.read(EXAMPLE, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(DUMP))
    nbformat.write(nb, path)
    monkeypatch.setenv("MLOPS_NB_NOTEBOOK", str(path))  # what mlops-nb's papermill engine tells the kernel
    return path


def execute(path: Path, edit=None) -> tuple[str, dict]:
    """Run the notebook in a fresh kernel (optionally edited first); returns its run id and outputs."""
    nb = nbformat.read(path, as_version=4)
    if edit:
        edit(nb)
        nbformat.write(nb, path)
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(path.parent)}}).execute()
    journals = path.parents[1] / ".mlops_nb" / "journal"
    deadline = time.monotonic() + 60
    while list(journals.glob("*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)  # a kernel shut down right after its last cell may leave the rest to its helper
    run_id = nb.cells[-1].outputs[-1]["text"].split()[-1]
    return run_id, joblib.load(path.parent / "outputs.joblib")


def stages_of(project: Path, run_id: str) -> dict:
    client = embedded_client(project)
    run = client.get_run(run_id)
    children = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'")
    return {r.data.tags["mlops_nb.stage"]: r for r in children}


def hits(project: Path, run_id: str) -> dict[str, bool]:
    return {name: r.data.tags["mlops_nb.cache_hit"] == "true" for name, r in stages_of(project, run_id).items()}


def edit_cell(stage: str, old: str, new: str):
    def edit(nb) -> None:
        (cell,) = [c for c in nb.cells if c.source.startswith(f"%%track {stage}\n")]
        assert old in cell.source
        cell.source = cell.source.replace(old, new)

    return edit


def test_example_notebook_is_recorded_and_reruns_from_the_cache(project: Path, notebook: Path) -> None:
    run_id, outputs = execute(notebook)
    client = embedded_client(project)
    top = client.get_run(run_id)
    assert top.data.tags["mlops_nb.kind"] == "notebook" and top.info.status == "FINISHED"
    assert client.get_experiment(top.info.experiment_id).name == "train"  # the notebook's stem
    assert top.data.tags["mlops_nb.notebook"] == str(notebook)
    assert top.data.metrics["accuracy"] > 0.9  # rolled up from evaluate
    stages = stages_of(project, run_id)
    assert sorted(stages) == sorted(STAGES)
    assert all(s.info.status == "FINISHED" and s.data.tags["mlops_nb.cache_hit"] == "false" for s in stages.values())
    assert stages["split"].data.params == {"test_size": "0.25", "seed": "0"}
    assert stages["train"].data.params == {"C": "1.0"}
    assert stages["load"].data.params == {}  # reads no parameter
    assert stages["evaluate"].data.metrics["accuracy"] == outputs["accuracy"]
    for name in ("X_train", "X_test", "y_train", "y_test"):
        assert len(stages["split"].data.tags[f"mlops_nb.output.{name}"]) == 40
    assert stages["train"].data.tags["mlops_nb.input.X_train"] == stages["split"].data.tags["mlops_nb.output.X_train"]

    # The model: signature, pinned requirements, reference profile beside it.
    from mlflow.models import Model

    model_dir = Path(client.download_artifacts(stages["train"].info.run_id, "model", str(project / "m")))
    mlmodel = Model.load(str(model_dir / "MLmodel"))
    assert [c["name"] for c in mlmodel.signature.inputs.to_dict()][:2] == ["alcohol", "malic_acid"]
    assert "scikit-learn==" in (model_dir / "requirements.txt").read_text()
    import json

    profile = json.loads((model_dir / "reference_profile.json").read_text())
    assert profile["rows"] == len(outputs["X_train"])
    assert profile["columns"]["alcohol"]["kind"] == "numeric"
    assert len(profile["columns"]["alcohol"]["histogram"]["counts"]) == 20
    assert stages["train"].data.tags["mlops_nb.models"] == "model"

    # A fresh kernel, nothing changed: every stage is a cache hit with identical outputs and metrics.
    again_id, again = execute(notebook)
    assert hits(project, again_id) == dict.fromkeys(STAGES, True)
    served = stages_of(project, again_id)
    for name in STAGES:
        assert served[name].data.tags["mlops_nb.cache_source_run"] == stages[name].info.run_id
    pd.testing.assert_frame_equal(again["raw"], outputs["raw"])
    pd.testing.assert_frame_equal(again["features"], outputs["features"])
    pd.testing.assert_frame_equal(again["X_train"], outputs["X_train"])
    pd.testing.assert_series_equal(again["y_test"], outputs["y_test"])
    assert (again["predictions"] == outputs["predictions"]).all()
    assert served["evaluate"].data.metrics == stages["evaluate"].data.metrics
    assert client.get_run(again_id).data.metrics == top.data.metrics


def test_edits_rerun_exactly_the_affected_stages(project: Path, notebook: Path) -> None:
    execute(notebook)
    # A comment and formatting: still all hits.
    run_id, _ = execute(
        notebook, edit_cell("clean", 'frame["alcohol"] / frame["ash"]', 'frame["alcohol"]/frame["ash"]  # ratio')
    )
    assert hits(project, run_id) == dict.fromkeys(STAGES, True)
    # A code change in clean: clean and everything downstream re-run, load does not.
    run_id, outputs = execute(notebook, edit_cell("clean", '/frame["ash"]', '/(frame["ash"] * 2)'))
    assert hits(project, run_id) == {"load": True, "clean": False, "split": False, "train": False, "evaluate": False}
    assert (outputs["features"]["alcohol_per_ash"] == outputs["raw"]["alcohol"] / (outputs["raw"]["ash"] * 2)).all()

    # A parameter change, injected the way papermill does it: only the stages that read C re-run.
    def inject(nb) -> None:
        index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        nb.cells.insert(
            index + 1, nbformat.v4.new_code_cell("# Parameters\nC = 0.3\n", metadata={"tags": ["injected-parameters"]})
        )

    run_id, _ = execute(notebook, inject)
    assert hits(project, run_id) == {"load": True, "clean": True, "split": True, "train": False, "evaluate": False}
    assert stages_of(project, run_id)["train"].data.params == {"C": "0.3"}


def test_a_corrupted_cache_entry_is_run_again_not_restored(project: Path, notebook: Path) -> None:
    _, original = execute(notebook)
    (x_train,) = (project / ".mlops_nb" / "cache").rglob("X_train.parquet")
    data = bytearray(x_train.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip the bits of one byte in the middle
    x_train.write_bytes(bytes(data))
    run_id, outputs = execute(notebook)
    stages = stages_of(project, run_id)
    assert stages["split"].data.tags["mlops_nb.cache_hit"] == "false"
    assert "SHA-256" in stages["split"].data.tags["mlops_nb.cache_miss_reason"]
    assert hits(project, run_id)["load"] and hits(project, run_id)["clean"]
    pd.testing.assert_frame_equal(outputs["X_train"], original["X_train"])
    assert outputs["accuracy"] == original["accuracy"]


def test_mlops_init_in_a_kernel_switches_the_experiment(project: Path) -> None:
    """%load_ext starts the recorder; a %mlops init after it must still move the notebook's runs."""
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(code)
        for code in (
            "%load_ext mlops_nb",
            "%mlops init --experiment churn-model",
            "%%track s\nimport mlops_nb as mnb\nmnb.log_metric('m', 1.0)\nx = 1",
            "assert mnb.flush(60)",
        )
    ]
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(project)}}).execute()
    assert "experiment 'churn-model'" in nb.cells[1].outputs[0]["text"]
    client = embedded_client(project)
    experiment = client.get_experiment_by_name("churn-model")
    assert experiment is not None
    kinds = sorted(r.data.tags["mlops_nb.kind"] for r in client.search_runs([experiment.experiment_id]))
    assert kinds == ["notebook", "stage"]
