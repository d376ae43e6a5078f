"""The public API in a real process against a real embedded MLflow store."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

import mlops_nb as mnb
from mlops_nb.exceptions import InvalidRecordError, TrackingError
from tests.conftest import embedded_client, python


def test_import_loads_nothing_heavy() -> None:
    out = python(
        "import sys, mlops_nb; print(sorted(m for m in ('mlflow', 'pandas', 'IPython', 'sklearn', 'numpy') "
        "if m in sys.modules))",
        cwd=Path.cwd(),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_script_into_a_fresh_store_prints_nothing_of_its_own(project: Path) -> None:
    """Recording goes on in the background: nothing it does (creating the store) may land in the user's
    output, which in a notebook is whatever cell is running."""
    out = python(
        "import mlops_nb as mnb\nwith mnb.start_run('quiet'):\n    mnb.log_metric('m', 1.0)\nassert mnb.flush(60)",
        cwd=project,
    )
    assert out.returncode == 0, out.stderr
    assert (project / ".mlops_nb" / "mlflow.db").is_file()
    assert out.stdout == "" and out.stderr == ""


def test_stage_in_a_script_records_a_nested_run_with_rolled_up_metrics(project: Path) -> None:
    mnb.log_param("dataset", "iris")
    with mnb.stage("train") as stage:
        mnb.log_params({"lr": 0.1, "layers": [2, 3]})
        for step in range(3):
            mnb.log_metric("loss", 1.0 / (step + 1), step=step)
        mnb.log_metrics({"acc": 0.9})
        mnb.set_tag("owner", "ds-team")
    top = mnb.active_run()
    assert top is not None and top.kind == "script"
    run_id, top_id = stage.run_id, top.run_id
    mnb.end_run()
    assert mnb.flush(60)

    client = embedded_client(project)
    stage_run, top_run = client.get_run(run_id), client.get_run(top_id)
    assert stage_run.data.tags["mlflow.parentRunId"] == top_id
    assert stage_run.data.tags["mlops_nb.kind"] == "stage"
    assert stage_run.data.tags["mlops_nb.stage"] == "train"
    assert stage_run.data.tags["mlops_nb.cache_hit"] == "false"
    assert stage_run.data.tags["owner"] == "ds-team"
    assert stage_run.data.params == {"lr": "0.1", "layers": "[2, 3]"}
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [1.0, 0.5, 1 / 3]
    assert stage_run.info.status == "FINISHED"
    # Rolled up: the top-level run has the stage's metrics (latest value) but not its params.
    assert top_run.data.metrics == {"loss": pytest.approx(1 / 3), "acc": 0.9}
    assert top_run.data.params == {"dataset": "iris"}
    assert top_run.data.tags["mlops_nb.kind"] == "script"
    assert top_run.info.status == "FINISHED"
    # Provenance on every run, environment frozen on the top-level run.
    for run in (stage_run, top_run):
        tags = run.data.tags
        assert tags["mlops_nb.host"] and tags["mlops_nb.python"] == ".".join(map(str, sys.version_info[:3]))
        assert len(tags["mlops_nb.env_hash"]) == 16
    top_artifacts = [a.path for a in client.list_artifacts(top_id, "environment")]
    assert top_artifacts == ["environment/requirements.txt"]
    freeze = Path(client.download_artifacts(top_id, "environment/requirements.txt", str(project)))
    assert "mlflow==" in freeze.read_text().lower()
    # Everything sent: the journal is gone after shutdown.
    from mlops_nb.tracking import recorder

    journal = recorder.current_recorder().journal.path
    assert recorder.shutdown(30) and not journal.exists()


def test_a_raising_stage_is_failed_with_its_traceback_and_the_error_propagates(project: Path) -> None:
    with pytest.raises(ZeroDivisionError), mnb.stage("boom") as stage:
        mnb.log_metric("before", 1)
        1 / 0  # noqa: B018
    assert stage.status == "FAILED"
    with mnb.stage("after") as later:  # the session goes on
        mnb.log_metric("ok", 1)
    assert mnb.flush(60)
    client = embedded_client(project)
    failed = client.get_run(stage.run_id)
    assert failed.info.status == "FAILED"
    assert failed.data.tags["mlops_nb.error"].startswith("ZeroDivisionError")
    trace = Path(client.download_artifacts(stage.run_id, "traceback.txt", str(project))).read_text()
    assert "1 / 0" in trace and "ZeroDivisionError" in trace
    assert client.get_run(later.run_id).info.status == "FINISHED"


def test_artifacts_are_copied_when_logged(project: Path) -> None:
    report = project / "report.txt"
    report.write_text("v1")
    folder = project / "plots"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    with mnb.start_run("artifacts", experiment="files") as run:
        mnb.log_artifact(report, "reports")
        mnb.log_artifact(folder)
        mnb.log_text("hello", "notes/hello.md")
        mnb.log_dict({"a": 1}, "config.json")
        report.write_text("v2 (changed after logging)")
    assert mnb.flush(60)
    client = embedded_client(project)
    got = Path(client.download_artifacts(run.run_id, "", str(project / "dl")))
    assert (got / "reports" / "report.txt").read_text() == "v1"
    assert (got / "plots" / "a.txt").read_text() == "a"
    assert (got / "notes" / "hello.md").read_text() == "hello"
    assert '"a": 1' in (got / "config.json").read_text()
    assert client.get_experiment(client.get_run(run.run_id).info.experiment_id).name == "files"
    assert str(project / ".mlops_nb" / "artifacts") in client.get_run(run.run_id).info.artifact_uri


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mnb.log_metric("loss", "high"), "must be a number"),
        (lambda: mnb.log_metric("", 1.0), "non-empty"),
        (lambda: mnb.log_metric("a/../b", 1.0), "clean relative path"),
        (lambda: mnb.log_metric("loss", 1.0, step=0.5), "integer"),
        (lambda: mnb.log_param("big", "x" * 7000), "log_text"),
        (lambda: mnb.set_tag("t", "x" * 9000), "8000"),
        (lambda: mnb.log_artifact("no/such/file.txt"), "no such file"),
    ],
)
def test_bad_records_fail_in_the_caller_and_record_nothing(project: Path, call, message: str) -> None:
    with mnb.start_run("bad-input") as run, pytest.raises(InvalidRecordError, match=message):
        call()
    assert mnb.flush(60)
    data = embedded_client(project).get_run(run.run_id).data
    assert data.metrics == {} and data.params == {}
    assert not any(k == "t" for k in data.tags)


def test_params_cannot_change_within_a_run(project: Path) -> None:
    with mnb.start_run("params"):
        mnb.log_param("lr", 0.1)
        mnb.log_param("lr", 0.1)  # the same value again is fine, as in MLflow
        with pytest.raises(InvalidRecordError, match=r"already logged as '0\.1'"):
            mnb.log_param("lr", 0.2)


def test_nan_metrics_are_kept(project: Path) -> None:
    with mnb.start_run("nan") as run:
        mnb.log_metric("loss", float("nan"))
    assert mnb.flush(60)
    assert math.isnan(embedded_client(project).get_run(run.run_id).data.metrics["loss"])


def test_one_top_level_run_at_a_time(project: Path) -> None:
    with mnb.start_run("first"), pytest.raises(TrackingError, match=r"mnb\.stage"):
        mnb.start_run("second")
    ended = mnb.start_run("third")
    ended.end()
    with pytest.raises(TrackingError, match="has ended"):
        ended.log_metric("late", 1.0)


def test_experiment_from_environment(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-mlflow-env")
    with mnb.start_run("env-exp") as run:
        mnb.log_metric("x", 1)
    assert mnb.flush(60)
    client = embedded_client(project)
    assert client.get_experiment(client.get_run(run.run_id).info.experiment_id).name == "from-mlflow-env"


def test_records_from_many_threads_all_arrive(project: Path) -> None:
    import threading

    with mnb.start_run("threads") as run:
        threads = [
            threading.Thread(target=lambda t=t: [mnb.log_metric(f"t{t}", i, step=i) for i in range(300)])
            for t in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert mnb.flush(60)
    client = embedded_client(project)
    for t in range(4):
        assert [m.value for m in client.get_metric_history(run.run_id, f"t{t}")] == [float(i) for i in range(300)]


@pytest.mark.slow
def test_forked_pool_workers_record_their_own_finished_runs(project: Path) -> None:
    out = python(
        """
        import multiprocessing as mp
        import mlops_nb as mnb

        def work(i):
            with mnb.stage(f"task-{i}"):
                mnb.log_metric("square", i * i)
            return i

        if __name__ == "__main__":
            with mnb.start_run("parent", experiment="pool"):
                mnb.log_metric("tasks", 4)
                pool = mp.get_context("fork").Pool(2)
                assert sorted(pool.map(work, range(4))) == [0, 1, 2, 3]
                pool.close()
                pool.join()
        """,
        cwd=project,
        env={"MLOPS_NB_EXPERIMENT": "pool"},
    )
    assert out.returncode == 0, out.stderr
    client = embedded_client(project)
    runs = client.search_runs([client.get_experiment_by_name("pool").experiment_id])
    assert all(r.info.status == "FINISHED" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    stages = [r for r in runs if r.data.tags["mlops_nb.kind"] == "stage"]
    assert sorted(r.data.metrics["square"] for r in stages) == [0.0, 1.0, 4.0, 9.0]
    assert list((project / ".mlops_nb" / "journal").glob("*.jsonl")) == []
