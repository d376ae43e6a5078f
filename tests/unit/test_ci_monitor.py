"""`mlops-nb ci --init github` adds a scheduled monitoring workflow when the project configures monitoring."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mlops_nb.cli import main


def _init(project: Path, *args: str):
    return CliRunner().invoke(main, ["ci", "--init", "github", *args])


def test_a_configured_monitor_gets_a_scheduled_workflow_that_runs_mlops_nb_monitor(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.mlops_nb.monitor]\nmodel = "models:/churn@champion"\ndata = "live"\nschedule = "15 4 * * 1"\n'
    )
    done = _init(project)
    assert done.exit_code == 0, done.output
    workflow = yaml.safe_load((project / ".github" / "workflows" / "monitor.yml").read_text())
    assert workflow[True]["schedule"] == [{"cron": "15 4 * * 1"}]  # YAML 1.1 reads the key `on` as true
    steps = [step.get("run", "") for step in workflow["jobs"]["monitor"]["steps"]]
    assert "mlops-nb monitor --json reports/monitor.json --report reports/monitor.html" in steps
    assert workflow["jobs"]["monitor"]["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    assert "'15 4 * * 1' (UTC)" in done.output
    assert (project / ".github" / "workflows" / "notebooks.yml").is_file()

    again = _init(project)
    assert again.exit_code == 2 and "--force" in again.output


def test_no_monitor_table_no_monitoring_workflow(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.mlops_nb]\n")
    assert _init(project).exit_code == 0
    assert not (project / ".github" / "workflows" / "monitor.yml").exists()


@pytest.mark.parametrize("schedule", ['0 6 * * "1', "0 6 * * 1 # x: {y}"])
def test_the_schedule_is_written_as_data(project: Path, schedule: str) -> None:
    from mlops_nb.jobs.ci import write_monitor_workflow

    path = write_monitor_workflow(project, schedule)
    assert yaml.safe_load(path.read_text())[True]["schedule"] == [{"cron": schedule}]
