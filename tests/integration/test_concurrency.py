"""Many processes recording at once into one store: nothing lost, nothing misfiled.

MLflow alone loses all 240 runs into a fresh SQLite store (migration race) and files some under experiment 0
when experiments are created concurrently; these tests hold mlops-nb to 0 errors and 240 complete runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import SETTING_VARS, MlflowServer

PROCESSES, RUNS, PARAMS, METRICS = 8, 30, 10, 20

WORKER = """
import sys, time
from pathlib import Path
import mlops_nb as mnb

worker, experiment, go = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
runs, params, metrics = (int(n) for n in sys.argv[4:7])
while not go.exists():  # start together, to race on store creation and get-or-create of the experiment
    time.sleep(0.005)
for j in range(runs):
    with mnb.start_run(f"w{worker}-r{j}", experiment=experiment):
        mnb.log_params({f"p{i}": worker * 1000 + j * 10 + i for i in range(params)})
        for i in range(metrics):
            mnb.log_metric(f"m{i}", worker + j / 100 + i, step=j)
assert mnb.flush(240), "not everything reached MLflow"
"""


def record_concurrently(project: Path, tracking_uri: str | None, experiment: str) -> None:
    go = project / "go"
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(w), experiment, str(go), str(RUNS), str(PARAMS), str(METRICS)],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(PROCESSES)
    ]
    time.sleep(0.5)
    go.touch()
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert "Traceback" not in err and "refused" not in err, err[-3000:]


def check_store(tracking_uri: str, experiment: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    assert len(runs) == PROCESSES * RUNS
    assert sorted(r.info.run_name for r in runs) == sorted(f"w{w}-r{j}" for w in range(PROCESSES) for j in range(RUNS))
    for run in runs:
        w, j = (int(x) for x in run.info.run_name[1:].split("-r"))
        assert run.info.status == "FINISHED"
        assert run.data.params == {f"p{i}": str(w * 1000 + j * 10 + i) for i in range(PARAMS)}
        assert run.data.metrics == {f"m{i}": pytest.approx(w + j / 100 + i) for i in range(METRICS)}
        assert run.data.tags["mlops_nb.kind"] == "script"
    misfiled = client.search_runs(["0"], filter_string="tags.`mlops_nb.kind` = 'script'")
    assert misfiled == []


@pytest.mark.slow
def test_parallel_processes_into_a_fresh_embedded_store(project: Path) -> None:
    assert not (project / ".mlops_nb").exists()
    record_concurrently(project, None, "concurrent")
    check_store(f"sqlite:///{project / '.mlops_nb' / 'mlflow.db'}", "concurrent")
    assert list((project / ".mlops_nb" / "journal").glob("*.jsonl")) == []


@pytest.mark.slow
def test_parallel_processes_through_an_mlflow_server(project: Path, mlflow_server: MlflowServer) -> None:
    record_concurrently(project, mlflow_server.uri, "concurrent-server")
    check_store(mlflow_server.uri, "concurrent-server")


@pytest.mark.extended
@pytest.mark.slow
@pytest.mark.postgres
def test_parallel_processes_through_an_mlflow_server_on_postgresql(project: Path) -> None:
    uri = os.environ.get("MLOPS_NB_TEST_POSTGRES_URI")
    if not uri:
        pytest.skip("MLOPS_NB_TEST_POSTGRES_URI is not set (.ci/run starts PostgreSQL and sets it)")
    server = MlflowServer(project / "server", uri)
    try:
        experiment = f"concurrent-pg-{uuid.uuid4().hex[:8]}"
        record_concurrently(project, server.uri, experiment)
        check_store(server.uri, experiment)
    finally:
        server.stop()
