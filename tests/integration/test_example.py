"""The README's main job: the example pipeline runs on the embedded store and is fully recorded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import embedded_client

EXAMPLE = Path(__file__).parents[2] / "notebooks" / "train.py"


def test_example_pipeline_records_one_run_with_a_stage_per_step(project: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--c", "0.5"], cwd=project, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.split()[1]
    client = embedded_client(project)
    top = client.get_run(run_id)
    assert top.info.status == "FINISHED" and top.data.tags["mlops_nb.kind"] == "script"
    assert top.data.metrics["accuracy"] > 0.9  # rolled up from the evaluate stage
    stages = client.search_runs([top.info.experiment_id], filter_string="tags.`mlops_nb.kind` = 'stage'")
    assert sorted(s.data.tags["mlops_nb.stage"] for s in stages) == ["evaluate", "load", "split", "train"]
    assert all(s.data.tags["mlflow.parentRunId"] == run_id for s in stages)
    by_name = {s.data.tags["mlops_nb.stage"]: s for s in stages}
    assert by_name["train"].data.params == {"C": "0.5"}
    assert by_name["load"].data.metrics == {"rows": 178.0, "columns": 13.0}


def test_example_rejects_a_bad_flag_with_usage(project: Path) -> None:
    out = subprocess.run([sys.executable, str(EXAMPLE), "--c", "lots"], cwd=project, capture_output=True, text=True)
    assert out.returncode == 2 and "invalid float value" in out.stderr
    assert not (project / ".mlops_nb" / "mlflow.db").exists()
