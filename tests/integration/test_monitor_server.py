"""``mlops-nb monitor MODEL_URI`` against a real ``mlflow server`` (SQLite behind it, or PostgreSQL): the
monitor run, its artifacts and the version's tag through the server, and what happens when the server goes."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SETTING_VARS, MlflowServer, free_port, python
from tests.integration.test_monitor import SHIFTED, drifted, training
from tests.integration.test_monitor_model import TRAIN, labels_of

pytestmark = pytest.mark.slow


def child_env(uri: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    return {**env, "MLFLOW_TRACKING_URI": uri, **extra}


def train_on(project: Path, uri: str, name: str, experiment: str) -> str:
    """Train and log the model in a fresh interpreter recording into ``uri``; register it as NAME version 1,
    alias champion, through the server."""
    from mlflow import MlflowClient

    frame = training(5000, 0)
    frame.to_parquet(project / "train.parquet")
    labels_of(frame).to_frame().to_parquet(project / "labels.parquet")
    code = TRAIN.replace("WITH_LABELS", "True").replace('kind="job")', f'kind="job", experiment="{experiment}")')
    done = python(code, cwd=project, env={"MLFLOW_TRACKING_URI": uri})
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id], "tags.`mlops_nb.stage` = 'train'"
    )
    client.create_registered_model(name)
    version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    return run.info.run_id


def mlops_nb(*args: str | Path, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["mlops-nb", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, project: Path) -> Iterator[MlflowServer]:
    """A real ``mlflow server`` on 127.0.0.1, its backend SQLite or the PostgreSQL of
    MLOPS_NB_TEST_POSTGRES_URI (shared: every name a test creates there is unique)."""
    if request.param == "sqlite":
        backend = f"sqlite:///{project / 'server' / 'mlflow.db'}"
    else:
        backend = os.environ.get("MLOPS_NB_TEST_POSTGRES_URI", "")
        if not backend:
            pytest.skip("MLOPS_NB_TEST_POSTGRES_URI is not set (.ci/run starts PostgreSQL and sets it)")
    started = MlflowServer(project / "server", backend)
    yield started
    started.stop()


def test_monitor_through_a_server_records_the_run_its_artifacts_and_the_versions_tag(
    project: Path, server: MlflowServer
) -> None:
    from mlflow import MlflowClient

    unique = uuid.uuid4().hex[:8]
    name, experiment = f"churn-{unique}", f"monitor-server-{unique}"
    train_run = train_on(project, server.uri, name, experiment)
    drifted(4000, 1).to_csv(project / "current.csv", index=False)
    env = child_env(server.uri)

    start = time.monotonic()
    done = mlops_nb(
        "monitor", f"models:/{name}@champion", "--data", "current.csv", "--json", "out.json", "--fail-on-drift",
        cwd=project, env=env,
    )  # fmt: skip
    took = time.monotonic() - start
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Warning" not in done.stderr, done.stderr
    assert took < 60, took
    result = json.loads((project / "out.json").read_text())
    assert {n for n, f in result["features"].items() if f["drift"]} == SHIFTED
    assert (result["model"], result["version"], result["rows"]) == (name, "1", 4000)
    assert re.fullmatch(r"[0-9a-f]{32}", result["run_id"])

    # On the server: the run, its tags and metrics, both artifacts (downloaded through it), the version's tag.
    client = MlflowClient(server.uri)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == client.get_run(train_run).info.experiment_id  # beside the model's run
    assert run.data.tags["mlops_nb.kind"] == "monitor" and run.data.tags["mlops_nb.model"] == f"{name}/1"
    assert run.data.metrics["dataset_drift"] == 1.0 and run.data.metrics["drift_share"] == pytest.approx(0.5)
    assert run.data.metrics["rows"] == 4000 and run.data.metrics["drift.age"] == 1.0
    assert run.data.metrics["drift.plan"] == 0.0
    assert {a.path for a in client.list_artifacts(run.info.run_id, "monitor")} == {
        "monitor/result.json",
        "monitor/report.html",
    }
    (project / "dl").mkdir()
    stored = Path(client.download_artifacts(run.info.run_id, "monitor/result.json", str(project / "dl")))
    assert json.loads(stored.read_text()) == result
    report = Path(client.download_artifacts(run.info.run_id, "monitor/report.html", str(project / "dl")))
    assert "Dataset drift: 3 of 6 features drifted" in report.read_text()
    last = json.loads(client.get_model_version(name, "1").tags["mlops_nb.monitor.last"])
    assert last["run_id"] == result["run_id"] and last["dataset_drift"] is True and last["drift_share"] == 0.5

    # The read side, in its own process through the server.
    done = mlops_nb("runs", "--kind", "monitor", "--experiment", experiment, "--json", cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    assert [r["run_id"] for r in json.loads(done.stdout)["runs"]] == [result["run_id"]]


def test_a_server_gone_before_the_monitor_exits_5_naming_it_and_writes_nothing(project: Path) -> None:
    server = MlflowServer(project / "server", f"sqlite:///{project / 'server' / 'mlflow.db'}")
    try:
        train_on(project, server.uri, "churn", "monitor-server")
    finally:
        server.stop()
    drifted(2000, 1).to_csv(project / "current.csv", index=False)

    start = time.monotonic()
    done = mlops_nb(
        "monitor", "models:/churn@champion", "--data", "current.csv", "--json", "out.json", "--report", "r.html",
        cwd=project, env=child_env(server.uri),
    )  # fmt: skip
    took = time.monotonic() - start
    # 5, the documented status of "MLflow could not be reached" (2 is bad input, which this is not)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert server.uri in done.stderr and "MLFLOW_TRACKING_URI" in done.stderr, done.stderr
    assert took < 60, took
    # Nothing was computed (the model's reference is on the server): nothing written, nothing half.
    assert not (project / "out.json").exists() and not (project / "r.html").exists()
    assert done.stdout == ""


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of a server, that cuts every connection and refuses new ones from
    the first request whose start contains ``cut_at`` on, until :meth:`restore`: a server vanishing at a
    chosen point of a real client's conversation."""

    def __init__(self, target_port: int, cut_at: bytes) -> None:
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.target = target_port
        self.cut_at = cut_at
        self.cut = threading.Event()
        self.seen: list[bytes] = []
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def restore(self) -> None:
        self.cut_at = b"\0never"
        self.cut.clear()

    def close(self) -> None:
        self._listener.close()
        self._cut_all()

    def _cut_all(self) -> None:
        with self._lock:
            for s in self._open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self._open.clear()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if self.cut.is_set():
                conn.close()  # as a dead server: the connection ends at once
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self._open += [conn, upstream]
            threading.Thread(target=self._pipe, args=(conn, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, conn, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, requests: bool) -> None:
        try:
            while data := src.recv(65536):
                if requests:
                    self.seen.append(data[:200])
                    if self.cut_at in data[:300]:
                        self.cut.set()
                        self._cut_all()
                        return
                if self.cut.is_set():
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def test_a_server_gone_once_the_monitor_run_started_keeps_the_json_and_the_run(project: Path) -> None:
    """The server vanishes when the monitor creates its run: exit 5 naming it, the JSON result written all the
    same, and the run (metrics, artifacts) kept in the journal and sent whole once the server is back."""
    from mlflow import MlflowClient

    server = MlflowServer(project / "server", f"sqlite:///{project / 'server' / 'mlflow.db'}")
    proxy = Proxy(server.port, b"POST /api/2.0/mlflow/runs/create")
    try:
        train_on(project, server.uri, "churn", "monitor-server")
        drifted(2000, 1).to_csv(project / "current.csv", index=False)
        env = child_env(proxy.uri, MLOPS_NB_FLUSH_TIMEOUT="5")
        start = time.monotonic()
        done = mlops_nb(
            "monitor", "models:/churn@champion", "--data", "current.csv", "--json", "out.json", "--report", "r.html",
            "--fail-on-drift", cwd=project, env=env,
        )  # fmt: skip
        took = time.monotonic() - start
        assert proxy.cut.is_set(), proxy.seen
        assert done.returncode == 5, done.stdout + done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        assert f"MLflow at {proxy.uri} did not create the monitor run" in done.stderr, done.stderr
        assert "MLFLOW_TRACKING_URI" in done.stderr and "its result is written to out.json and r.html" in done.stderr
        assert "is kept in the journal" in done.stderr and "churn/1 is not tagged" in done.stderr
        assert took < 90, took
        result = json.loads((project / "out.json").read_text())  # nothing computed is lost
        assert {n for n, f in result["features"].items() if f["drift"]} == SHIFTED and result["rows"] == 2000
        assert result["run_id"] is None  # MLflow never said it
        assert "Dataset drift: 3 of 6 features drifted" in (project / "r.html").read_text()

        # The server back: the journal sends the monitor run, whole.
        proxy.restore()
        sent = python(
            "import mlops_nb as mnb; assert mnb.flush(120)", cwd=project, env={"MLFLOW_TRACKING_URI": proxy.uri}
        )
        assert sent.returncode == 0, sent.stderr
        client = MlflowClient(server.uri)
        (run,) = client.search_runs(
            [client.get_experiment_by_name("monitor-server").experiment_id], "tags.`mlops_nb.kind` = 'monitor'"
        )
        assert run.info.status == "FINISHED" and run.data.tags["mlops_nb.model"] == "churn/1"
        assert run.data.metrics["dataset_drift"] == 1.0 and run.data.metrics["rows"] == 2000
        (project / "dl").mkdir()
        stored = Path(client.download_artifacts(run.info.run_id, "monitor/result.json", str(project / "dl")))
        assert json.loads(stored.read_text())["features"] == result["features"]
        assert "mlops_nb.monitor.last" not in client.get_model_version("churn", "1").tags  # nothing half
    finally:
        proxy.close()
        server.stop()
