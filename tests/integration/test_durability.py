"""Crashes, dead servers and read-only stores lose nothing that was journaled."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import SETTING_VARS, MlflowServer, embedded_client, free_port, python

VICTIM = """
import sys, time
import mlops_nb as mnb

run = mnb.start_run("victim", experiment="crash")
mnb.log_param("alpha", 0.5)
for i in range(50):
    mnb.log_metric("x", i, step=i)
if sys.argv[1] == "sent-half":
    assert mnb.flush(120)  # the run and the first half are in MLflow, RUNNING
with mnb.stage("inner"):
    for i in range(50, 100):
        mnb.log_metric("x", i, step=i)
    print("ready", flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.parametrize("when", ["nothing-sent", "sent-half"])
def test_a_killed_process_loses_nothing_and_its_runs_end_killed(project: Path, when: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    env["MLOPS_NB_FLUSH_INTERVAL"] = "600"  # nothing goes out on its own: the kill finds records unsent
    victim = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(VICTIM), when],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert victim.stdout.readline().strip() == "ready", victim.stderr.read()
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    journals = list((project / ".mlops_nb" / "journal").glob("*.jsonl"))
    assert len(journals) == 1

    client = embedded_client(project) if when == "sent-half" else None
    if client is not None:
        (before,) = client.search_runs(
            [client.get_experiment_by_name("crash").experiment_id], filter_string="tags.`mlops_nb.kind` = 'script'"
        )
        assert before.info.status == "RUNNING"
        assert len(client.get_metric_history(before.info.run_id, "x")) == 50

    # The next process that starts recording replays the journal.
    out = python("import mlops_nb as mnb; assert mnb.flush(120)", cwd=project)
    assert out.returncode == 0, out.stderr

    client = embedded_client(project)
    runs = client.search_runs([client.get_experiment_by_name("crash").experiment_id])
    by_kind = {r.data.tags["mlops_nb.kind"]: r for r in runs}
    assert sorted(by_kind) == ["script", "stage"]
    top, stage = by_kind["script"], by_kind["stage"]
    for run in (top, stage):
        assert run.info.status == "KILLED"
        assert "ended without ending this run" in run.data.tags["mlops_nb.end_reason"]
    assert top.data.params == {"alpha": "0.5"}
    assert stage.data.tags["mlflow.parentRunId"] == top.info.run_id
    assert [m.value for m in client.get_metric_history(top.info.run_id, "x")] == [float(i) for i in range(100)]
    assert [m.value for m in client.get_metric_history(stage.info.run_id, "x")] == [float(i) for i in range(50, 100)]
    assert not journals[0].exists()


@pytest.mark.slow
def test_unreachable_server_keeps_records_until_it_answers(project: Path) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {"MLFLOW_TRACKING_URI": uri, "MLOPS_NB_FLUSH_TIMEOUT": "3", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    out = python(
        """
        import mlops_nb as mnb
        with mnb.start_run("offline", experiment="offline"):
            mnb.log_param("p", 1)
            for i in range(10):
                mnb.log_metric("m", i, step=i)
        print("script finished")
        """,
        cwd=project,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "script finished" in out.stdout
    assert "did not reach MLflow at " + uri in out.stderr
    assert "will be sent the next time" in out.stderr
    (kept,) = (project / ".mlops_nb" / "journal").glob("*.jsonl")

    server = MlflowServer(project / "server", f"sqlite:///{project / 'server' / 'mlflow.db'}", port=port)
    try:
        out = python("import mlops_nb as mnb; assert mnb.flush(120)", cwd=project, env={"MLFLOW_TRACKING_URI": uri})
        assert out.returncode == 0, out.stderr
        from mlflow import MlflowClient

        client = MlflowClient(uri)
        (run,) = client.search_runs([client.get_experiment_by_name("offline").experiment_id])
        assert run.info.status == "FINISHED"
        assert run.data.params == {"p": "1"}
        assert [m.value for m in client.get_metric_history(run.info.run_id, "m")] == [float(i) for i in range(10)]
        assert not kept.exists()
    finally:
        server.stop()


@contextlib.contextmanager
def read_only(folder: Path):
    """Make a folder unwritable, for root too (chattr +i); skip where that is impossible."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield
        folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a folder read-only for root here (chattr +i failed)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.slow
def test_read_only_store_folder_keeps_the_records_and_the_old_runs(project: Path) -> None:
    store = project / "store"
    uri = f"sqlite:///{store / 'mlflow.db'}"
    out = python(
        "import mlops_nb as mnb\nwith mnb.start_run('old', experiment='e'): mnb.log_metric('m', 1)",
        cwd=project,
        env={"MLFLOW_TRACKING_URI": uri},
    )
    assert out.returncode == 0, out.stderr
    with read_only(store):
        out = python(
            "import mlops_nb as mnb\nwith mnb.start_run('new', experiment='e'): mnb.log_metric('m', 2)",
            cwd=project,
            env={"MLFLOW_TRACKING_URI": uri, "MLOPS_NB_FLUSH_TIMEOUT": "3"},
        )
        assert out.returncode == 0, out.stderr
        assert "did not reach MLflow" in out.stderr and "kept in" in out.stderr
    out = python("import mlops_nb as mnb; assert mnb.flush(120)", cwd=project, env={"MLFLOW_TRACKING_URI": uri})
    assert out.returncode == 0, out.stderr
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("e").experiment_id])
    assert sorted((r.info.run_name, r.data.metrics["m"]) for r in runs) == [("new", 2.0), ("old", 1.0)]


def test_read_only_home_is_a_clear_error_that_records_nothing(project: Path) -> None:
    home = project / ".mlops_nb"
    home.mkdir()
    with read_only(home):
        out = python("import mlops_nb as mnb; mnb.log_metric('m', 1)", cwd=project)
    assert out.returncode == 1
    assert "JournalError" in out.stderr and "cannot write its journal" in out.stderr
    assert "MLOPS_NB_HOME" in out.stderr
    assert not (home / "mlflow.db").exists()


def test_bad_setting_is_reported_at_first_use(project: Path) -> None:
    out = python("import mlops_nb as mnb; mnb.log_metric('m', 1)", cwd=project, env={"MLOPS_NB_FLUSH_INTERVAL": "fast"})
    assert out.returncode == 1
    assert "ConfigError" in out.stderr and "MLOPS_NB_FLUSH_INTERVAL" in out.stderr


def test_a_script_that_raises_ends_its_run_failed(project: Path) -> None:
    out = python(
        """
        import mlops_nb as mnb
        mnb.log_metric("progress", 0.5)
        raise RuntimeError("data missing")
        """,
        cwd=project,
    )
    assert out.returncode == 1 and "RuntimeError: data missing" in out.stderr
    client = embedded_client(project)
    (run,) = client.search_runs(["0"])
    assert run.info.status == "FAILED"
    assert run.data.tags["mlops_nb.error"] == "RuntimeError: data missing"
    assert run.data.metrics == {"progress": 0.5}
    assert list((project / ".mlops_nb" / "journal").glob("*.jsonl")) == []


def test_plain_mlflow_runs_get_mlops_nb_provenance(project: Path) -> None:
    (project / "nb.ipynb").write_text("{}")
    out = python(
        """
        import mlflow
        mlflow.set_tracking_uri("sqlite:///plain.db")
        with mlflow.start_run() as run:
            pass
        tags = mlflow.get_run(run.info.run_id).data.tags
        print(tags["mlops_nb.notebook"], tags["mlops_nb.host"] != "", len(tags["mlops_nb.env_hash"]))
        """,
        cwd=project,
        env={"MLOPS_NB_NOTEBOOK": "nb.ipynb"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["nb.ipynb", "True", "16"]


@pytest.mark.slow
def test_a_handoff_helper_sends_what_a_terminated_process_left(project: Path) -> None:
    """What a kernel does when Jupyter will SIGTERM it before MLflow has loaded in it."""
    out = python(
        """
        import os
        import mlops_nb as mnb
        from mlops_nb.tracking import handoff, recorder

        with mnb.start_run("short-lived", experiment="handoff"):
            mnb.log_metrics({"a": 1.0, "b": 2.0})
        rec = recorder.current_recorder()
        s = rec.settings
        handoff.spawn(rec.journal.path, s.tracking_uri, s.home, s.artifact_root, 120)
        os._exit(0)  # like SIGTERM: no exit flush at all
        """,
        cwd=project,
        env={"MLOPS_NB_FLUSH_INTERVAL": "600"},
    )
    assert out.returncode == 0, out.stderr
    journals = project / ".mlops_nb" / "journal"
    deadline = time.monotonic() + 120
    while list(journals.glob("*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(journals.glob("*.jsonl")) == []
    assert "sent" in (project / ".mlops_nb" / "handoff.log").read_text()
    client = embedded_client(project)
    (run,) = client.search_runs([client.get_experiment_by_name("handoff").experiment_id])
    assert run.info.status == "FINISHED" and run.data.metrics == {"a": 1.0, "b": 2.0}


FIRST = """
import time
import mlops_nb as mnb

with mnb.start_run("first", experiment="fresh"):
    mnb.log_param("alpha", 0.5)
    for i in range(20):
        mnb.log_metric("x", i, step=i)
print("journaled", flush=True)  # the run has ended (journaled); the sender is now creating the store
mnb.flush(120)
time.sleep(600)
"""

SECOND = """
import mlops_nb as mnb

with mnb.start_run("second", experiment="fresh"):
    mnb.log_metric("y", 1.0)
assert mnb.flush(120)
"""


@pytest.mark.extended
@pytest.mark.slow
def test_a_store_whose_creation_was_killed_is_rebuilt_and_loses_nothing(project: Path) -> None:
    # The first process to use a fresh embedded store is SIGKILLed at several points while it creates the
    # store's schema (MLflow's migration: a cache folder without the schema template) or keeps the template;
    # the next process must find a working store with the dead process's run in it.
    outcomes = []
    for delay in (0.0, 0.05, 0.15, 0.4, 0.8, 1.5):
        folder = project / f"killed-after-{delay}"  # a project of its own: a fresh store each time
        (folder / "pyproject.toml").parent.mkdir()
        (folder / "pyproject.toml").write_text("[project]\nname = 'x'\n")
        home = folder / ".mlops_nb"
        cache = {"XDG_CACHE_HOME": str(folder / "user-cache")}
        env = {**{k: v for k, v in os.environ.items() if k not in SETTING_VARS}, **cache}
        first = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(FIRST)],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert first.stdout.readline().strip() == "journaled", first.stderr.read()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not [p for p in home.glob("mlflow.db*") if p.suffix != ".lock"]:
            time.sleep(0.002)  # the store's file appears: schema creation has begun
        time.sleep(delay)
        first.send_signal(signal.SIGKILL)
        first.wait(30)

        second = python(SECOND, cwd=folder, env=cache)
        assert second.returncode == 0, f"killed {delay} s into the store's creation: {second.stderr[-2000:]}"
        client = embedded_client(folder)
        exp = client.get_experiment_by_name("fresh")
        runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
        outcomes.append((delay, sorted(runs)))
        assert sorted(runs) == ["first", "second"], outcomes
        assert runs["first"].data.params == {"alpha": "0.5"}
        assert [m.value for m in client.get_metric_history(runs["first"].info.run_id, "x")] == [
            float(i) for i in range(20)
        ]
        assert not list((home / "journal").glob("*.jsonl"))  # nothing is left to replay


def _half_made_store(db: Path, *, with_run: bool, scratch: bool = True) -> None:
    """What a process killed during MLflow's schema migration leaves: an old schema version, alembic's
    temporary table of a table rebuild (``scratch``; without it, an older MLflow's store), maybe a run."""
    import sqlite3

    db.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        con.execute("INSERT INTO alembic_version VALUES ('451aebb31d03')")
        con.execute("CREATE TABLE experiments (experiment_id INTEGER, name VARCHAR(256))")
        con.execute("INSERT INTO experiments VALUES (0, 'Default')")
        con.execute("CREATE TABLE runs (run_uuid VARCHAR(32))")
        if scratch:
            con.execute("CREATE TABLE _alembic_tmp_jobs (id VARCHAR(36))")
        if with_run:
            con.execute("INSERT INTO runs VALUES ('0123456789abcdef')")
    con.close()


def test_a_half_made_store_without_runs_is_created_again(project: Path) -> None:
    db = project / ".mlops_nb" / "mlflow.db"
    _half_made_store(db, with_run=False)
    out = python(SECOND, cwd=project)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "left incomplete (alembic's scratch tables _alembic_tmp_jobs are left)" in out.stderr
    client = embedded_client(project)
    (run,) = client.search_runs([client.get_experiment_by_name("fresh").experiment_id])
    assert run.data.metrics == {"y": 1.0}


@pytest.mark.parametrize("scratch", [True, False], ids=["interrupted", "older-mlflow"])
def test_a_half_made_store_with_runs_is_never_replaced(project: Path, scratch: bool) -> None:
    import sqlite3

    db = project / ".mlops_nb" / "mlflow.db"
    _half_made_store(db, with_run=True, scratch=scratch)
    code = """
        import time
        import mlops_nb as mnb
        from mlops_nb.tracking.recorder import get_recorder

        mnb.log_metric("y", 1.0)
        deadline = time.monotonic() + 120
        while get_recorder().sender.last_error is None and time.monotonic() < deadline:
            time.sleep(0.1)
        print(get_recorder().sender.last_error)
    """
    out = python(code, cwd=project, env={"MLOPS_NB_FLUSH_TIMEOUT": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    if scratch:
        assert "holds runs, so mlops-nb leaves it as it is" in out.stdout and "mlflow db upgrade" in out.stdout
    else:  # MLflow's own error about an older schema: not ours to reword
        assert "holds runs" not in out.stdout and out.stdout.strip() != "None"
    with contextlib.closing(sqlite3.connect(db)) as con:
        assert con.execute("SELECT run_uuid FROM runs").fetchall() == [("0123456789abcdef",)]
    assert list((project / ".mlops_nb" / "journal").glob("*.jsonl"))  # the new records wait in the journal


def test_a_relative_sqlite_uri_is_created_beside_the_working_directory(project: Path) -> None:
    out = python(SECOND, cwd=project, env={"MLFLOW_TRACKING_URI": "sqlite:///rel.db"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert (project / "rel.db").is_file() and (project / "rel.db.lock").is_file()
    assert not list(project.glob("rel.db.creating*"))
