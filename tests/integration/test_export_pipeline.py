"""``mlops-nb export-pipeline``: the DAG run by a real Airflow (``airflow dags test`` on SQLite), the KFP
pipeline compiled by the real kfp. Both live in their own venv, found through ``MLOPS_NB_TEST_AIRFLOW`` (the
``airflow`` executable; its ``python`` beside it has kfp): the tests skip without it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import SETTING_VARS
from tests.notebooks import mlops_nb, runs, write_notebook

AIRFLOW = os.environ.get("MLOPS_NB_TEST_AIRFLOW")
needs_airflow = pytest.mark.skipif(not AIRFLOW, reason="set MLOPS_NB_TEST_AIRFLOW to an airflow executable (.ci/run)")
MLOPS_NB = str(Path(sys.executable).parent / "mlops-nb")

PARAMETERS = "n = 10\nscale = 1.0"
CELLS = (
    "%load_ext mlops_nb",
    "%%track load\nimport numpy as np\ndata = np.arange(n) * scale",
    "%%track double\ndoubled = data * 2",
    "%%track score\nimport mlops_nb as mnb\ntotal = float(doubled.sum())\nmnb.log_metric('total', total)",
)


def _airflow(*args: str, home: Path, dags: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    return subprocess.run([AIRFLOW, *args], cwd=home, env=env, capture_output=True, text=True, timeout=600)


@needs_airflow
@pytest.mark.extended
@pytest.mark.slow  # Airflow's migration, then two DAG runs of three kernels each
def test_the_dag_runs_green_in_airflow_and_its_second_run_is_served_from_the_cache(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    write_notebook(project / "pipe.ipynb", *CELLS, parameters=PARAMETERS)
    dags = project / "dags"
    done = mlops_nb(
        "export-pipeline", "pipe.ipynb", "--to", "airflow", "--out", "dags", "--mlops-nb-command", MLOPS_NB, cwd=project
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(Path("dags") / "pipe.py")
    home = tmp_path_factory.mktemp("airflow")
    migrated = _airflow("db", "migrate", home=home, dags=dags)
    assert migrated.returncode == 0, migrated.stderr[-2000:]

    for number in (1, 2):
        ran = _airflow("dags", "test", "pipe", home=home, dags=dags)
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
        assert "state=success" in ran.stdout + ran.stderr
        recorded = runs(project, "pipe")
        jobs = [r for r in recorded if r.data.tags.get("mlops_nb.kind") == "job"]
        # One job run per DAG run (its first task opened it, its teardown ended it), no job run per task.
        assert len(jobs) == number and len({j.data.tags["mlops_nb.pipeline.run"] for j in jobs}) == number
        latest = max(jobs, key=lambda j: j.info.start_time)
        assert latest.info.status == "FINISHED" and latest.data.tags["mlops_nb.job.outcome"] == "succeeded"
        assert latest.data.params == {"n": "10", "scale": "1.0"}  # the DAG's params: the notebook's defaults
        assert latest.data.metrics == {"total": 90.0}  # rolled up from the stage that logged it
        nested = [s for s in recorded if s.data.tags.get("mlflow.parentRunId") == latest.info.run_id]
        # Each stage once under it (the upstream stages a task restores are recorded by their own tasks).
        assert sorted(s.data.tags["mlops_nb.stage"] for s in nested) == ["double", "load", "score"]
        assert all(s.info.status == "FINISHED" for s in nested)
        hits = {s.data.tags["mlops_nb.stage"]: s.data.tags.get("mlops_nb.cache_hit") for s in nested}
        # The first run computes each stage in its own task; the second is served from the shared cache.
        assert all((hit == "true") == (number == 2) for hit in hits.values()), hits
    # The same records as a run of the whole notebook: one job run, the same params and metrics, the same
    # stages nested under it.
    whole = mlops_nb("run", "pipe.ipynb", "--experiment", "whole", cwd=project)
    assert whole.returncode == 0, whole.stderr
    (job,) = [r for r in runs(project, "whole") if r.data.tags.get("mlops_nb.kind") == "job"]
    stages = [s for s in runs(project, "whole") if s.data.tags.get("mlops_nb.kind") == "stage"]
    assert all(s.data.tags["mlflow.parentRunId"] == job.info.run_id for s in stages)
    assert sorted(s.data.tags["mlops_nb.stage"] for s in stages) == sorted(hits)
    assert (job.data.params, job.data.metrics) == (latest.data.params, latest.data.metrics)
    assert (project / "pipe.score.out.ipynb").is_file()  # each task's executed notebook apart


@needs_airflow
def test_the_kfp_pipeline_compiles_with_a_task_per_task_and_its_dependencies(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", *CELLS, parameters=PARAMETERS)
    python = str(Path(AIRFLOW).parent / "python")
    done = mlops_nb(
        "export-pipeline", "pipe.ipynb", "--to", "kfp", "--out", "kfp", "--group", "load,double",
        "--image", "registry.example/pipe:1", "--kfp-python", python, cwd=project,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    spec = yaml.safe_load((project / "kfp" / "pipe_pipeline.yaml").read_text())
    # The pipeline: its exit handler (the tasks), then the task that ends the job run whatever happened in it.
    outer = spec["root"]["dag"]["tasks"]
    assert outer["pipeline-run-close"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    handler = outer["pipeline-run-close"]["dependentTasks"][0]
    tasks = spec["components"][outer[handler]["componentRef"]["name"]]["dag"]["tasks"]
    assert {t["taskInfo"]["name"] for t in tasks.values()} == {"pipeline-run-open", "load__double", "score"}
    by_name = {t["taskInfo"]["name"]: t for t in tasks.values()}
    key = {t["taskInfo"]["name"]: k for k, t in tasks.items()}
    assert by_name["score"]["dependentTasks"] == [key["load__double"]]
    assert by_name["load__double"]["dependentTasks"] == [key["pipeline-run-open"]]
    assert set(spec["root"]["inputDefinitions"]["parameters"]) == {"n", "scale"}
    executors = spec["deploymentSpec"]["executors"]
    score = next(e["container"] for e in executors.values() if "score" in e["container"].get("args", []))
    assert score["image"] == "registry.example/pipe:1"
    assert score["command"] == ["mlops-nb"]
    assert score["args"][:6] == ["run", "pipe.ipynb", "--stage", "score", "--pipeline-run", "{{$.pipeline_job_uuid}}"]
    closing = next(e["container"] for e in executors.values() if "close" in e["container"].get("args", []))
    assert closing["args"] == ["pipeline-run", "close", "pipe.ipynb", "--pipeline-run", "{{$.pipeline_job_uuid}}"]


HOSTILE_STAGE = "$(touch PWNED) {{ 7*7 }} '"
HOSTILE_CELLS = (
    "%load_ext mlops_nb",
    '%%track "$(touch PWNED) {{ 7*7 }} \'"\nx = label * 2',
    '%%track "b\\"; echo"\ny = x + "1"',
)
HOSTILE_PARAMETERS = "label = \"'; touch PWNED; echo '{{ 7*7 }}\""
# Loads the DAG file as Airflow does, then renders each task's command and environment as a DAG run would.
RENDER = """
import json, runpy, sys
dag = runpy.run_path(sys.argv[1])["dag"]
context = {"params": {k: p.value for k, p in dag.params.items()}, "run_id": "manual__$(touch PWNED)"}
print(json.dumps({t.task_id: [t.render_template(t.bash_command, context), t.render_template(t.env, context),
                              [u for u in sorted(t.upstream_task_ids)]] for t in dag.tasks}))
"""
# Stands in for mlops-nb: records the arguments it was given, prints a run id.
RECORD_ARGV = (
    "#!{python}\nimport json, sys\nwith open({log!r}, 'a') as f:\n    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
    "print('run-1')\n"
)
HOSTILE_MODEL = "m'; touch PWNED; {{ 7*7 }}"


@needs_airflow
def test_hostile_names_reach_the_dag_and_the_shell_as_plain_data(project: Path) -> None:
    import json

    notebook = write_notebook(
        project / "we'ird $(touch PWNED) {{ 7*7 }}.ipynb", *HOSTILE_CELLS, parameters=HOSTILE_PARAMETERS
    )
    log = project / "argv.jsonl"
    recorder = project / "record-argv"
    recorder.write_text(RECORD_ARGV.format(python=sys.executable, log=str(log)))
    recorder.chmod(0o755)
    done = mlops_nb(
        "export-pipeline", notebook.name, "--to", "airflow", "--out", "dags", "--mlops-nb-command", str(recorder),
        "--schedule", "0 6 * * *", "--promote", HOSTILE_MODEL, "--require", "total >= 1",
        "--monitor-data", "$(touch PWNED).csv", cwd=project,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    dag_file = project / done.stdout.strip()
    assert dag_file.name == "we_ird_touch_PWNED_7_7.py"
    python = str(Path(AIRFLOW).parent / "python")
    rendered = subprocess.run([python, "-c", RENDER, str(dag_file)], capture_output=True, text=True, timeout=300)
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    tasks = json.loads(rendered.stdout.strip().splitlines()[-1])
    first, second, opened, closed, promoted, monitored = tasks  # ids in Airflow's characters, in this order
    assert first == "touch_PWNED_7_7" and tasks[second][2] == [first]
    assert (promoted, monitored) == ("promote", "monitor") and tasks[monitored][2] == [promoted]
    assert tasks[first][2] == [opened] and tasks[promoted][2] == [second]
    assert tasks[closed][2] == sorted([opened, monitored])
    for command, env, _ in tasks.values():
        subprocess.run(["bash", "-c", command], cwd=project, env={**os.environ, **env}, check=True, timeout=60)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    run_id = ["--pipeline-run", "manual__$(touch PWNED)"]
    params = ["-y", json.dumps({"label": "'; touch PWNED; echo '{{ 7*7 }}"}).replace("'", "\\u0027")]
    assert [c[:4] for c in calls] == [
        ["run", str(notebook), "--stage", HOSTILE_STAGE],
        ["run", str(notebook), "--stage", 'b"; echo'],
        ["pipeline-run", "open", str(notebook), *run_id[:1]],
        ["pipeline-run", "close", str(notebook), *run_id[:1]],
        ["pipeline-run", "open", str(notebook), *run_id[:1]],  # the promote task asks for the job run's id
        ["promote", "--name", HOSTILE_MODEL, "--alias"],
        ["monitor", f"models:/{HOSTILE_MODEL}@champion", "--data", "$(touch PWNED).csv"],
    ]
    assert calls[0][6:] == run_id + params  # after -o OUTPUT
    assert calls[2][4:] == run_id[1:] + params and calls[3][4:] == run_id[1:]
    assert calls[5][4:] == ["champion", "--require", "total >= 1", "run-1"]
    assert not list(project.rglob("PWNED")), "a name from the notebook ran as a shell command"
