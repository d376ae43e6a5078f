"""The JupyterLab server extension's REST reads against MLflow's own REST API on the same store.

A notebook with N job runs of 6 stages each (default 1,000; built as ``bench_read.py`` builds it) in an
embedded SQLite store. Two real servers on 127.0.0.1 read the same database:

- ``jupyter server`` with mlops-nb's extension: ``GET /mlops-nb/api/runs?notebook=...&max_results=100`` (a
  page of 100, newest first) and ``GET /mlops-nb/api/notebook?path=...`` (the latest run and its stages:
  what the sidebar shows);
- ``mlflow server``: ``POST /api/2.0/mlflow/runs/search`` for the same page (the anchor); for the notebook
  view, the two searches a client of MLflow's REST API needs (the latest run of the notebook, its stages).

Warm: medians of R requests on one kept-alive connection after a first request; the server keeps the answer of
an unchanged embedded store, so "warm, store read" also times requests that each read the store (a new query
string each time). Cold: the first request to a freshly started server, median of C server starts.
Goals: warm <= 100 ms, >= 5x faster than MLflow's search.

    python benchmarks/bench_lab.py [--jobs 1000] [--repeats 30] [--cold 3] [--store DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_read import STAGES, populate  # the same store as the read benchmark

NOTEBOOK = "notebooks/train.ipynb"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process on 127.0.0.1 and one kept-alive HTTP connection to it."""

    def __init__(
        self, args: list[str], port: int, ready: str, env: dict[str, str], log: Path, auth: dict | None = None
    ) -> None:
        self.port = port
        self.log = log.open("w")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{args[2]} exited: {log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{args[2]} did not start") from None
                time.sleep(0.1)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while self.request("GET", ready, headers=auth)[0] != 200:  # up: its routes answer (no MLflow touched yet)
            time.sleep(0.1)

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> tuple:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
        except (ConnectionError, http.client.RemoteDisconnected):  # the server closed an idle connection
            self.conn.close()
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
        return response.status, response.read()

    def stop(self) -> None:
        self.conn.close()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def jupyter(folder: Path, env: dict[str, str]) -> tuple[Server, dict[str, str]]:
    token = secrets.token_hex(16)
    port = free_port()
    args = [sys.executable, "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1", f"--port={port}"]
    args += [f"--ServerApp.token={token}", f"--ServerApp.root_dir={folder}", "--allow-root"]
    auth = {"Authorization": f"token {token}"}
    server = Server(args, port, "/api/status", env, folder / "jupyter.log", auth)
    return server, auth


def mlflow(folder: Path, uri: str, env: dict[str, str]) -> Server:
    port = free_port()
    args = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--backend-store-uri", uri, "--default-artifact-root", str(folder / "artifacts"), "--workers", "1"]
    return Server(args, port, "/health", env, folder / "mlflow.log")


def timed(call) -> float:
    started = time.perf_counter()
    status, body = call()
    elapsed = (time.perf_counter() - started) * 1000
    assert status == 200, body[:500]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--cold", type=int, default=3)
    parser.add_argument("--store", help="reuse a folder made by an earlier run (it is made when missing)")
    args = parser.parse_args()
    folder = Path(args.store or tempfile.mkdtemp(prefix="mlops-nb-bench-lab-")).resolve()
    (folder / "notebooks").mkdir(parents=True, exist_ok=True)
    home = folder / ".mlops_nb"
    home.mkdir(exist_ok=True)
    uri = f"sqlite:///{home / 'mlflow.db'}"
    if not (folder / "populated").exists():
        started = time.perf_counter()
        populate(uri, args.jobs, str(folder / NOTEBOOK))
        (folder / "populated").write_text(str(args.jobs))
        print(f"store: {args.jobs} jobs x {len(STAGES)} stages written in {time.perf_counter() - started:.0f} s")

    # Isolated Jupyter paths; the extension enabled the way the installed package enables it.
    jupyter_dirs = {name: folder / "jupyter" / name for name in ("config", "data", "runtime")}
    config = jupyter_dirs["config"] / "jupyter_server_config.d"
    config.mkdir(parents=True, exist_ok=True)
    source = Path(__file__).parent.parent / "jupyter-config" / "server-config" / "mlops_nb.json"
    (config / "mlops_nb.json").write_text(source.read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_NB_", "JUPYTER_"))}
    env.update(
        MLFLOW_TRACKING_URI=uri,
        MLOPS_NB_HOME=str(home),
        JUPYTER_CONFIG_DIR=str(jupyter_dirs["config"]),
        JUPYTER_DATA_DIR=str(jupyter_dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(jupyter_dirs["runtime"]),
        PYTHONPATH=os.pathsep.join([str(Path(__file__).parent.parent), env.get("PYTHONPATH", "")]),
        MLFLOW_LOGGING_LEVEL="WARNING",
    )

    from mlflow import MlflowClient

    experiment = MlflowClient(uri).get_experiment_by_name("bench").experiment_id
    notebook = str(folder / NOTEBOOK).replace("'", "\\'")
    quoted = urllib.parse.quote
    ours = {
        "runs": f"/mlops-nb/api/runs?notebook={quoted(NOTEBOOK)}&max_results=100",
        "notebook": f"/mlops-nb/api/notebook?path={quoted(NOTEBOOK)}",
    }
    page = {
        "experiment_ids": [experiment],
        "filter": f"tags.`mlops_nb.kind` != 'stage' and tags.`mlops_nb.notebook` LIKE '%{notebook}'",
        "max_results": 100,
        "order_by": ["attributes.start_time DESC"],
    }

    def our_call(server: Server, auth: dict, route: str):
        return lambda: server.request("GET", ours[route], headers=auth)

    def write_to_store() -> None:
        """A committed write, as a recording process makes: kept answers are read again. (A write of the same
        value would not do: SQLite commits nothing for it, and nothing read changes.)"""
        with sqlite3.connect(home / "mlflow.db") as con:
            query = "UPDATE experiments SET last_update_time = last_update_time + 1 WHERE experiment_id = ?"
            con.execute(query, (experiment,))

    def their_page(server: Server):
        return lambda: server.request("POST", "/api/2.0/mlflow/runs/search", page)

    def their_notebook(server: Server):
        def call():
            _, body = server.request("POST", "/api/2.0/mlflow/runs/search", {**page, "max_results": 1})
            run_id = json.loads(body)["runs"][0]["info"]["run_id"]
            stages = {"experiment_ids": [experiment], "filter": f"tags.`mlflow.parentRunId` = '{run_id}'"}
            return server.request("POST", "/api/2.0/mlflow/runs/search", {**stages, "max_results": 1000})

        return call

    cold: dict[str, list[float]] = {k: [] for k in ("runs", "notebook", "mlflow runs", "mlflow notebook")}
    for _ in range(args.cold):
        for route in ("runs", "notebook"):
            server, auth = jupyter(folder, env)
            try:
                cold[route].append(timed(our_call(server, auth, route)))
            finally:
                server.stop()
            server = mlflow(folder, uri, env)
            try:
                anchor = their_page(server) if route == "runs" else their_notebook(server)
                cold[f"mlflow {route}"].append(timed(anchor))
            finally:
                server.stop()

    # One server at a time: an idle `mlflow server` on the same SQLite file (its job runner polling the store)
    # made the extension's reads 6x slower here (26 -> 166 ms a page).
    warm: dict[str, float] = {}
    server, auth = jupyter(folder, env)
    try:
        body = json.loads(our_call(server, auth, "runs")()[1])
        assert len(body["runs"]) == min(100, args.jobs), "not a full page"
        assert json.loads(our_call(server, auth, "notebook")()[1])["run"]["stages"], "the notebook view is empty"
        for route in ("runs", "notebook"):
            call = our_call(server, auth, route)
            call()  # warm
            warm[route] = statistics.median(timed(call) for _ in range(args.repeats))
            read = []
            for _ in range(args.repeats):  # after each write the store is read again
                write_to_store()
                read.append(timed(call))
            warm[f"{route} read"] = statistics.median(read)
    finally:
        server.stop()
    anchor_server = mlflow(folder, uri, env)
    try:
        for label, call in (
            ("mlflow runs", their_page(anchor_server)),
            ("mlflow notebook", their_notebook(anchor_server)),
        ):
            call()
            warm[label] = statistics.median(timed(call) for _ in range(args.repeats))
    finally:
        anchor_server.stop()

    print(f"{args.jobs} jobs x {len(STAGES)} stages, SQLite; warm: medians of {args.repeats}, cold: of {args.cold}")
    for route, label in (("runs", "GET runs, page of 100"), ("notebook", "GET notebook (latest + stages)")):
        anchor = f"mlflow {route}"
        for kind, ours_ms, theirs_ms in (
            ("warm", warm[route], warm[anchor]),
            ("warm, store read", warm[f"{route} read"], warm[anchor]),
            ("cold", statistics.median(cold[route]), statistics.median(cold[anchor])),
        ):
            print(
                f"  {label:<31} {kind:<16}  mlops-nb {ours_ms:8.1f} ms   mlflow server REST {theirs_ms:8.1f} ms"
                f"   ratio {theirs_ms / ours_ms:5.2f}x"
            )


if __name__ == "__main__":
    main()
