"""The README's main job, run exactly as a new user runs it: papermill on the example notebook."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SETTING_VARS, embedded_client
from tests.notebooks import mlops_nb

EXAMPLE = Path(__file__).parents[2] / "notebooks" / "train.ipynb"


@pytest.mark.slow
def test_readme_main_job_records_the_example_notebook(project: Path) -> None:
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (project / "notebooks").mkdir()
    shutil.copy(EXAMPLE, project / "notebooks" / "train.ipynb")
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}  # plain papermill: no engine, no hints
    papermill = [
        sys.executable,
        "-m",
        "papermill",
        "notebooks/train.ipynb",
        "notebooks/train.out.ipynb",
        "-p",
        "C",
        "0.5",
    ]
    out = subprocess.run(papermill, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    deadline = time.monotonic() + 60
    while list((project / ".mlops_nb" / "journal").glob("*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)
    client = embedded_client(project)
    exp = client.get_experiment_by_name("train")
    runs = client.search_runs([exp.experiment_id])
    kinds = sorted(r.data.tags["mlops_nb.kind"] for r in runs)
    assert kinds == ["notebook"] + ["stage"] * 5
    (train,) = [r for r in runs if r.data.tags.get("mlops_nb.stage") == "train"]
    assert train.data.params == {"C": "0.5"}  # papermill's injected parameter reached the stage


@pytest.mark.slow
def test_readme_sweep_has_one_best_and_it_beats_the_champion(project: Path) -> None:
    """The README's sweep over C has a clear winner, and promoting it with --must-beat champion works."""
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (project / "notebooks").mkdir()
    shutil.copy(EXAMPLE, project / "notebooks" / "train.ipynb")
    out = mlops_nb(
        "sweep", "notebooks/train.ipynb", "--grid", "C=0.1,1,10", "--parallel", "2", "--metric", "accuracy", cwd=project
    )
    assert out.returncode == 0, out.stderr[-3000:]
    sweep_id = out.stdout.split()[-1]
    client = embedded_client(project)
    jobs = client.search_runs(
        [client.get_run(sweep_id).info.experiment_id], f"tags.`mlflow.parentRunId` = '{sweep_id}'"
    )
    accuracy = {r.data.params["C"]: r.data.metrics["accuracy"] for r in jobs}
    assert sorted(accuracy) == ["0.1", "1.0", "10.0"]  # typed like the notebook's `C = 1.0`
    assert len(set(accuracy.values())) == 3, accuracy  # C matters: no tie
    best = client.get_run(sweep_id).data.tags["mlops_nb.sweep.best_run"]
    default = next(r.info.run_id for r in jobs if r.data.params["C"] == "1.0")
    assert best != default
    promote = ("--name", "wine", "--alias", "champion", "--require", "accuracy >= 0.85")
    gate = ("--must-beat", "champion", "--metric", "accuracy")
    first = mlops_nb("promote", default, *promote, *gate, cwd=project)
    assert first.returncode == 0, first.stdout + first.stderr
    second = mlops_nb("promote", best, *promote, *gate, cwd=project)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Promoted: wine@champion -> version 2 (was version 1)." in second.stdout
