"""Records MLflow refuses: at the call when we can tell, else set aside with the reason, never taking their
neighbours down with them nor poisoning the project (a real embedded store and a real ``mlflow server``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import mlops_nb as mnb
from mlops_nb.config import load_settings
from mlops_nb.exceptions import InvalidRecordError
from mlops_nb.tracking.journal import Journal
from tests.conftest import MlflowServer, embedded_client, python

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("call", "name", "message"),
    [
        (lambda: mnb.log_metrics({"accuracy": 0.9, "f1 (macro)": 0.8}), "f1 (macro)", "characters MLflow refuses"),
        (lambda: mnb.log_params({"C": 1.0, "penalty?": "l2"}), "penalty?", "characters MLflow refuses"),
        (lambda: mnb.set_tags({"team": "ml", "owner=": "bob"}), "owner=", "characters MLflow refuses"),
        (lambda: mnb.log_metrics({"accuracy": 0.9, "caf\udce9": 0.8}), "caf\udce9", "lone surrogate"),
        (lambda: mnb.set_tags({"team": "ml", "\ud800": "x"}), "\ud800", "lone surrogate"),
        (lambda: mnb.log_text("notes", "caf\udce9.txt"), "caf\udce9.txt", "lone surrogate"),
    ],
)
def test_a_record_mlflow_would_refuse_fails_at_the_call_and_nothing_of_the_call_is_recorded(
    project: Path, call, name: str, message: str
) -> None:
    with mnb.start_run("bad-names") as run:
        with pytest.raises(InvalidRecordError, match=message) as refused:
            call()
        assert repr(name) in str(refused.value)
        mnb.log_metric("after", 1.0)  # the run goes on
    assert mnb.flush(60)
    data = embedded_client(project).get_run(run.run_id).data
    assert data.metrics == {"after": 1.0}  # not 'accuracy': the call was refused whole
    assert data.params == {}
    assert "team" not in data.tags


@pytest.fixture(params=["embedded", "server"])
def store(request, project: Path, monkeypatch: pytest.MonkeyPatch):
    """(tracking URI, client, environment for a process of the project) for the embedded store or a server."""
    if request.param == "embedded":
        yield load_settings().tracking_uri, embedded_client(project), {}
        return
    server = MlflowServer(project.parent / "mlflow-server", f"sqlite:///{project.parent / 'mlflow-server.db'}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    from mlflow import MlflowClient

    try:
        yield server.uri, MlflowClient(server.uri), {"MLFLOW_TRACKING_URI": server.uri}
    finally:
        server.stop()


def _poisoned_journal(tracking_uri: str) -> Path:
    """The journal a process of an older mlops-nb left: a run whose batch holds a metric name MLflow refuses,
    a param value and a tag name with a lone surrogate (file names decoded by os.fsdecode), and good records
    around them; a stage whose metrics are rolled up onto the run."""
    settings = load_settings()
    journal = Journal(settings.journal_dir, tracking_uri)
    t = 1796650459000
    records = [
        {"op": "start", "run": "job", "exp": "refusals", "name": "poisoned", "parent": None, "tags": {}, "t": t},
        {"op": "param", "run": "job", "k": "C", "v": "0.5"},
        {"op": "param", "run": "job", "k": "data", "v": "landing/caf\udce9.csv"},
        {"op": "tag", "run": "job", "k": "team", "v": "ml"},
        {"op": "tag", "run": "job", "k": "src\udcff", "v": "x"},
        {"op": "metric", "run": "job", "k": "accuracy", "v": 0.9, "step": 0, "t": t, "rollup": None},
        {"op": "metric", "run": "job", "k": "f1 (macro)", "v": 0.8, "step": 0, "t": t, "rollup": None},
        {"op": "start", "run": "stage", "exp": "refusals", "name": "train", "parent": "job", "tags": {}, "t": t},
        {"op": "metric", "run": "stage", "k": "loss", "v": 0.1, "step": 0, "t": t, "rollup": "job"},
        {"op": "end", "run": "stage", "status": "FINISHED", "t": t + 1},
        {"op": "end", "run": "job", "status": "FINISHED", "t": t + 2},
    ]
    for record in records:
        journal.append(record)
    journal.close(remove=False)  # as a process that exited with its records unsent: the lock is free
    return journal.path


def test_refused_records_are_set_aside_with_the_reason_and_the_rest_of_their_batch_arrives(
    project: Path, store
) -> None:
    uri, client, env = store
    journal = _poisoned_journal(uri)
    # A later, clean process of the project: it replays the journal, is not held up by it, and ends.
    out = python(
        """
        import mlops_nb as mnb
        with mnb.start_run("clean", experiment="clean"):
            mnb.log_metric("m", 1.0)
        print(mnb.flush(120))
        """,
        cwd=project,
        env={**env, "MLOPS_NB_FLUSH_TIMEOUT": "120"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True"], out.stderr
    assert "did not reach MLflow" not in out.stderr
    assert not journal.exists()

    runs = client.search_runs([client.get_experiment_by_name("refusals").experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    job, stage = by_name["poisoned"], by_name["train"]
    assert job.info.status == "FINISHED" and stage.info.status == "FINISHED"
    assert job.data.params == {"C": "0.5", "data": "landing/caf\\udce9.csv"}  # a value: kept, escaped
    assert job.data.metrics == {"accuracy": 0.9, "loss": 0.1}  # the good ones, and the rolled-up one
    assert job.data.tags["team"] == "ml"
    assert "2 record(s) MLflow refused are kept in" in job.data.tags["mlops_nb.dead_letter"]
    assert stage.data.metrics == {"loss": 0.1}

    dead = project / ".mlops_nb" / "dead-letter.jsonl"
    assert oct(dead.stat().st_mode & 0o777) == "0o600"
    lines = [json.loads(line) for line in dead.read_text().splitlines()]
    by_op = {(line["op"], line["record"]["k"]): line for line in lines}
    assert sorted(by_op) == [("metric", "f1 (macro)"), ("tag", "src\udcff")]  # names no store can hold
    metric, tag = by_op["metric", "f1 (macro)"], by_op["tag", "src\udcff"]
    assert metric["record"]["v"] == 0.8 and metric["run_id"] == job.info.run_id
    assert "Names may only contain" in metric["reason"]
    assert tag["record"]["v"] == "x" and "lone surrogate" in tag["reason"]
    assert {line["journal"] for line in lines} == {journal.name}
    assert {line["tracking_uri"] for line in lines} == {uri}
    assert "refused a metric record" in out.stderr or "refused a tag record" in out.stderr


def test_a_lone_surrogate_in_a_value_is_kept_escaped(project: Path) -> None:
    """Values often come from file names (os.fsdecode), tracebacks and outputs: the byte is kept as its escape."""
    path = "landing/caf\udce9.csv"
    with mnb.start_run("values") as run:
        mnb.log_params({"data": path, "huge": "\udcff" * 1000})
        mnb.set_tag("source", path)
        mnb.log_text(f"read {path}", "notes.txt")
        with pytest.raises(InvalidRecordError, match="7000 characters"):  # escaped, it is over MLflow's limit
            mnb.log_param("too_big", "\udcff" * 1000 + "x" * 1000)
    assert mnb.flush(60)
    client = embedded_client(project)
    data = client.get_run(run.run_id).data
    assert data.params == {"data": "landing/caf\\udce9.csv", "huge": "\\udcff" * 1000}
    assert data.tags["source"] == "landing/caf\\udce9.csv"
    notes = Path(client.download_artifacts(run.run_id, "notes.txt", str(project / "dl")))
    assert notes.read_text() == "read landing/caf\\udce9.csv"


def test_a_surrogate_in_a_notebook_path_still_makes_its_run(project: Path) -> None:
    """Run names and start tags come from file names: a byte that is not UTF-8 is written as its escape."""
    os.environ["MLOPS_NB_NOTEBOOK"] = str(project / "caf\udce9.ipynb")  # removed by the project fixture
    with mnb.start_run(kind="notebook") as run:
        mnb.log_metric("m", 1.0)
    assert mnb.flush(60)
    got = embedded_client(project).get_run(run.run_id)
    assert got.info.run_name == "caf\\udce9" and got.info.status == "FINISHED"
    assert got.data.tags["mlops_nb.notebook"].endswith("caf\\udce9.ipynb")
