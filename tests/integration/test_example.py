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

EXAMPLE = Path(__file__).parents[2] / "notebooks" / "train.ipynb"


@pytest.mark.slow
def test_readme_main_job_records_the_example_notebook(project: Path) -> None:
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (project / "notebooks").mkdir()
    shutil.copy(EXAMPLE, project / "notebooks" / "train.ipynb")
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    env["MLOPS_NB_NOTEBOOK"] = "notebooks/train.ipynb"
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
