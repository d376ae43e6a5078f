"""Every test gets its own project folder (cwd) with a fresh embedded MLflow store under .mlops_nb/."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import IO

import pytest

SETTING_VARS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "MLOPS_NB_EXPERIMENT",
    "MLOPS_NB_HOME",
    "MLOPS_NB_CACHE_DIR",
    "MLOPS_NB_CACHE",
    "MLOPS_NB_CACHE_URI",
    "MLOPS_NB_JOB_RUN",
    "MLOPS_NB_JOURNAL_ONLY",
    "MLOPS_NB_FLUSH_INTERVAL",
    "MLOPS_NB_FLUSH_TIMEOUT",
    "MLOPS_NB_NOTEBOOK",
    "MLOPS_NB_PROJECT_ROOT",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--corpus",
        action="store_true",
        help="also run the whole corpus of real notebooks (tests/corpus/test_corpus.py; or MLOPS_NB_CORPUS=1)",
    )
    parser.addoption(
        "--extended",
        action="store_true",
        help="also run the tests marked extended (wheels, fresh virtual environments, fuzzing; or MLOPS_NB_EXTENDED=1)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``extended`` run in CI's own step (.ci/run), not in the README's test command."""
    if config.getoption("--extended") or os.environ.get("MLOPS_NB_EXTENDED") == "1":
        return
    skip = pytest.mark.skip(reason="an extended test: run with --extended or MLOPS_NB_EXTENDED=1 (CI's own step)")
    for item in items:
        if "extended" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def postgres_schema(tmp_path_factory: pytest.TempPathFactory) -> None:
    """MLflow's schema in the shared PostgreSQL database, made once before any test starts a server on it:
    servers started at once on an empty database (pytest-xdist's workers) would each migrate it, and leave
    it half-migrated."""
    uri = os.environ.get("MLOPS_NB_TEST_POSTGRES_URI")
    if not uri:
        return
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # the same folder for every worker of this session
    with FileLock(str(shared / "postgres-schema.lock")):
        done = shared / "postgres-schema.done"
        if not done.exists():
            init = (
                "import sys; from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as S; S(*sys.argv[1:])"
            )
            subprocess.run(
                [sys.executable, "-c", init, uri, str(shared / "pg-artifacts")],
                check=True,
                capture_output=True,
                timeout=300,
            )
            done.write_text(uri)


@pytest.fixture(autouse=True)
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean project folder as cwd, no mlops-nb/MLflow settings inherited; the recorder reset after."""
    for var in SETTING_VARS:
        monkeypatch.delenv(var, raising=False)
    # Kernels ("python3") and MLflow's CLI are found on PATH: make it this environment's, as an activated venv.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    from mlops_nb.tracking import recorder, runs

    runs.end_all_runs()
    recorder.shutdown(timeout=60)


def embedded_client(project: Path):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{project / '.mlops_nb' / 'mlflow.db'}")


def python(
    code: str, *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300, args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet in a fresh interpreter (a real process, as users run scripts)."""
    full_env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server started as a real process (``proc``, writing to ``log``): waiting for it, stopping it."""

    proc: subprocess.Popen
    log: IO[str]

    def wait_until_up(self, what: str, url: str, log: Path, seconds: float) -> None:
        """Return once ``url`` answers 200; raise (the log's end included) if the process exits or ``seconds`` pass."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{what} exited: {log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{what} did not come up within {seconds:.0f} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class MlflowServer(ServerProcess):
    """A real ``mlflow server`` process on 127.0.0.1."""

    def __init__(self, folder: Path, backend_uri: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        # MLflow 3's server also starts a job runner and its huey consumers (GenAI jobs: ten processes, each
        # importing mlflow); nothing here uses them.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        self.log = (folder / "server.log").open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--backend-store-uri",
                backend_uri,
                "--artifacts-destination",
                str(folder / "artifacts"),
                "--workers",
                "2",
            ],
            cwd=folder,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait_until_up("mlflow server", f"{self.uri}/health", folder / "server.log", 180)


@pytest.fixture
def mlflow_server(tmp_path: Path):
    server = MlflowServer(tmp_path / "server", f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}")
    yield server
    server.stop()
