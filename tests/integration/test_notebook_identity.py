"""A notebook's runs are named after it however it runs: JupyterLab, nbconvert, plain papermill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mlops_nb.tracking.provenance import notebooks_in_command
from tests.conftest import SETTING_VARS, embedded_client, free_port
from tests.notebooks import write_notebook

CELLS = (
    "%load_ext mlops_nb",
    "%%track scale\nbeta = alpha * 2",
    "import mlops_nb as mnb\nassert mnb.flush(120)",
)


def _notebook(project: Path) -> Path:
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")  # the project root, above the notebook
    return write_notebook(project / "analysis" / "churn model.ipynb", *CELLS, parameters="alpha = 1")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS and k != "JPY_SESSION_NAME"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _assert_recorded_as(project: Path, notebook: Path, alpha: str) -> None:
    client = embedded_client(project)
    assert client.get_experiment_by_name("Default") is None or not client.search_runs(
        [client.get_experiment_by_name("Default").experiment_id]
    )
    experiment = client.get_experiment_by_name("churn model")  # named after the notebook
    assert experiment is not None, [e.name for e in client.search_experiments()]
    runs = {r.data.tags["mlops_nb.kind"]: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["notebook", "stage"]
    top, stage = runs["notebook"], runs["stage"]
    assert top.info.run_name == "churn model"
    assert top.data.tags["mlops_nb.notebook"] == str(notebook)
    assert top.data.tags["mlflow.source.type"] == "NOTEBOOK"
    assert stage.info.run_name == "scale"
    assert stage.data.params == {"alpha": alpha}  # the notebook's parameter, found in its parameters cell


@pytest.mark.slow
def test_plain_papermill_records_under_the_notebook(project: Path) -> None:
    notebook = _notebook(project)
    out = subprocess.run(
        [str(Path(sys.executable).parent / "papermill"), "analysis/churn model.ipynb", "out.ipynb", "-p", "alpha", "3"],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    _assert_recorded_as(project, notebook, "3")


NBCONVERT = ["nbconvert", "--execute", "--to", "notebook", "--output-dir", "out", "analysis/churn model.ipynb"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "session"),
    [
        (NBCONVERT, None),
        (["execute", "analysis/churn model.ipynb"], None),
        # started from a cell of another notebook (`!jupyter nbconvert ...`) or from a Jupyter console: the
        # kernel inherits that session's JPY_SESSION_NAME, which is not the notebook nbconvert runs
        (NBCONVERT, "o.ipynb"),
        (["nbconvert", "--execute", "--to", "notebook", "--inplace", "analysis/churn model.ipynb"], "console-1"),
    ],
    ids=["nbconvert", "execute", "from-a-notebook-cell", "from-a-console"],
)
def test_jupyter_nbconvert_and_execute_record_under_the_notebook(
    project: Path, command: list[str], session: str | None
) -> None:
    notebook = _notebook(project)
    env = _env() if session is None else {**_env(), "JPY_SESSION_NAME": str(project / session)}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter"), *command],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    _assert_recorded_as(project, notebook, "1")
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "mlops-nb"), "runs", "analysis/churn model.ipynb", "--json"],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    (run,) = json.loads(listed.stdout)["runs"]
    assert (run["kind"], run["name"], run["status"]) == ("notebook", "churn model", "FINISHED")


class JupyterServer:
    """A real ``jupyter server`` on 127.0.0.1 whose kernels' connection files land in ``runtime``."""

    def __init__(self, root: Path, runtime: Path) -> None:
        self.port = free_port()
        self.token = "test-token"
        self.base = f"http://127.0.0.1:{self.port}"
        self.runtime = runtime
        env = _env()
        env["JUPYTER_RUNTIME_DIR"] = str(runtime)
        self.log = (runtime.parent / "server.log").open("w")
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "jupyter"),
                "server",
                "--no-browser",
                "--allow-root",
                f"--port={self.port}",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={root}",
            ],
            cwd=root,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (runtime.parent / "server.log").read_text()[-3000:]
            try:
                self.rest("GET", "/api/status")
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("jupyter server did not come up within 120 s")

    def rest(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.mark.slow
@pytest.mark.parametrize("client_names_the_file", [True, False], ids=["jupyterlab", "path-only"])
def test_a_jupyter_server_session_records_under_its_notebook(project: Path, client_names_the_file: bool) -> None:
    """JupyterLab creates a session with the notebook's path and name (the kernel gets an absolute path);
    other clients may send the path only (the kernel gets it relative to the server's root)."""
    from jupyter_client import BlockingKernelClient

    notebook = _notebook(project)
    runtime = project / "runtime"
    runtime.mkdir()
    server = JupyterServer(project, runtime)
    try:
        body = {"path": "analysis/churn model.ipynb", "type": "notebook", "kernel": {"name": "python3"}}
        if client_names_the_file:
            body["name"] = "churn model.ipynb"
        session = server.rest("POST", "/api/sessions", body)
        kernel = BlockingKernelClient(connection_file=str(runtime / f"kernel-{session['kernel']['id']}.json"))
        kernel.load_connection_file()
        # no heartbeat: a client outside the server judges the kernel by it, and a loaded machine's kernel still
        # importing misses the 1 s beat, so wait_for_ready says "Kernel died" of a kernel that is starting
        kernel.start_channels(hb=False)
        kernel.wait_for_ready(timeout=120)
        for cell in ("alpha = 1", *CELLS):
            reply = kernel.execute_interactive(cell, timeout=120, output_hook=lambda msg: None)
            assert reply["content"]["status"] == "ok", (cell, reply["content"])
        kernel.stop_channels()
        server.rest("DELETE", f"/api/sessions/{session['id']}")
    finally:
        server.stop()
    _assert_recorded_as(project, notebook, "1")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["python", "/venv/bin/papermill", "in.ipynb", "out.ipynb", "-p", "x", "y.ipynb"], ["/p/in.ipynb"]),
        (["python", "-m", "papermill", "-p", "nb", "a.ipynb", "nbs/in.ipynb", "-"], ["/p/nbs/in.ipynb"]),
        (["papermill", "s3://bucket/train.ipynb", "out.ipynb"], ["s3://bucket/train.ipynb"]),
        (
            ["python", "/venv/bin/jupyter-nbconvert", "--execute", "a.ipynb", "/abs/b.ipynb"],
            ["/p/a.ipynb", "/abs/b.ipynb"],
        ),
        (["python", "-m", "jupyter", "execute", "a.ipynb"], ["/p/a.ipynb"]),
        (["python", "-m", "pytest", "tests"], []),
        (["python", "script.py", "data.ipynb"], []),  # not a launcher: its notebooks are its business
        (["/venv/bin/jupyter-lab", "a.ipynb"], []),  # its kernels have a server session instead
    ],
)
def test_the_notebooks_a_launcher_names(argv: list[str], expected: list[str]) -> None:
    assert notebooks_in_command(argv, Path("/p")) == expected
