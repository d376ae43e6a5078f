"""The closed loop on a real registry: drift -> retraining job -> promotion gates -> alias moved (or kept)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

import mlops_nb as mnb
from mlops_nb.config import load_monitor_settings
from mlops_nb.exceptions import ConfigError
from mlops_nb.jobs.retrain import JOB_FAILED, NO_DRIFT, PROMOTED, REFUSED, retrain
from mlops_nb.monitoring.monitor import monitor
from mlops_nb.monitoring.profile import reference_of
from mlops_nb.registry import promote
from mlops_nb.tracking.tags import KIND, TRIGGER
from tests.conftest import embedded_client
from tests.notebooks import runs, write_notebook

TRAIN = (
    "%load_ext mlops_nb",
    "%%track train\nimport numpy as np\nfrom sklearn.linear_model import LogisticRegression\n"
    "import mlops_nb as mnb\nif fail:\n    raise RuntimeError('the training data is unreadable')\n"
    "X = np.random.RandomState(0).rand(40, 3)\ny = (X[:, 0] > 0.5).astype(int)\n"
    "mnb.log_model(LogisticRegression().fit(X, y), 'model', input_example=X[:5])\n"
    "mnb.log_metric('accuracy', accuracy)",
)
LOOP = """
[tool.mlops_nb.monitor]
model = "models:/churn@champion"
data = "live/*.parquet"

[tool.mlops_nb.monitor.retrain]
notebook = "notebooks/train.ipynb"
parameters = {{ accuracy = {accuracy}, fail = {fail} }}
promote = "churn"
alias = "champion"
must_beat = "champion"
metric = "accuracy"
require = ["accuracy >= 0.5"]
"""


def _champion(accuracy: float) -> str:
    """Version 1 of churn, @champion, from a run with ``accuracy``; its training data stored as its reference."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame(np.random.RandomState(1).rand(400, 3), columns=["a", "b", "c"])
    with mnb.start_run("first", kind="job") as job, mnb.stage("train"):
        model = LogisticRegression().fit(X, X["a"] > 0.5)
        mnb.log_model(model, "model", input_example=X[:5], reference=X)
        mnb.log_metric("accuracy", accuracy)
    assert mnb.flush(120)
    assert promote(job.run_id, "churn").version == "1"
    return job.run_id


def _monitor_run(project: Path) -> str:
    """A monitor's run, as ``mlops-nb monitor MODEL_URI`` records it."""
    client = embedded_client(project)
    experiment = client.create_experiment("monitor")
    run = client.create_run(experiment, tags={KIND: "monitor", "mlops_nb.model": "churn/1"}, run_name="monitor")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _result(shift: float):
    rng = np.random.default_rng(0)
    reference = reference_of({"a": rng.normal(0, 1, 5000), "b": rng.normal(0, 1, 5000)})
    return monitor(reference, {"a": rng.normal(shift, 1, 5000), "b": rng.normal(shift, 1, 5000)})


def _loop(project: Path, accuracy: float, fail: bool = False):
    (project / "pyproject.toml").write_text(LOOP.format(accuracy=accuracy, fail=str(fail).lower()))
    settings = load_monitor_settings(project)
    assert settings.retrain is not None
    return settings.retrain


def _champion_version(project: Path) -> str:
    return str(embedded_client(project).get_model_version_by_alias("churn", "champion").version)


@pytest.mark.slow
def test_drift_starts_the_job_whose_model_beats_the_champion_and_moves_the_alias(project: Path) -> None:
    write_notebook(project / "notebooks" / "train.ipynb", *TRAIN, parameters="accuracy = 0.0\nfail = False")
    _champion(0.80)
    monitor_run = _monitor_run(project)
    drifted = _result(shift=1.0)
    assert drifted["dataset_drift"]

    done = retrain(drifted, _loop(project, 0.93), monitor_run_id=monitor_run)

    assert done.outcome == PROMOTED, done.summary()
    assert done.promoted and done.promotion is not None and done.promotion.version == "2"
    assert _champion_version(project) == "2"
    assert "churn@champion moved to version 2 (was version 1)" in done.message
    job = embedded_client(project).get_run(done.job.run_id)
    assert job.data.tags[TRIGGER] == f"monitor:{monitor_run}" and job.data.tags[KIND] == "job"
    assert job.data.params == {"accuracy": "0.93", "fail": "False"}
    assert done.as_dict()["alias_version"] == "2" and all(g["ok"] for g in done.as_dict()["gates"])

    # A challenger that loses to the new champion: the job runs, the gate refuses, the alias stays.
    lost = retrain(drifted, _loop(project, 0.90), monitor_run_id=monitor_run)

    assert lost.outcome == REFUSED and not lost.promoted, lost.summary()
    assert "beats @champion on accuracy" in lost.message and "churn@champion stays at version 2" in lost.message
    assert _champion_version(project) == "2"
    assert sorted(str(v.version) for v in embedded_client(project).search_model_versions("name = 'churn'")) == [
        "1",
        "2",
    ]
    assert embedded_client(project).get_run(lost.job.run_id).data.tags[TRIGGER] == f"monitor:{monitor_run}"


@pytest.mark.slow
def test_a_failed_job_leaves_the_champion_and_says_why(project: Path) -> None:
    write_notebook(project / "notebooks" / "train.ipynb", *TRAIN, parameters="accuracy = 0.0\nfail = False")
    _champion(0.80)

    done = retrain(_result(shift=1.0), _loop(project, 0.99, fail=True), monitor_run_id=_monitor_run(project))

    assert done.outcome == JOB_FAILED and done.promotion is None
    assert "the training data is unreadable" in done.message and "churn@champion stays where it was" in done.message
    assert done.job is not None and embedded_client(project).get_run(done.job.run_id).info.status == "FAILED"
    assert _champion_version(project) == "1"


def test_no_drift_starts_nothing(project: Path) -> None:
    write_notebook(project / "notebooks" / "train.ipynb", *TRAIN, parameters="accuracy = 0.0\nfail = False")
    calm = _result(shift=0.0)
    assert not calm["dataset_drift"]

    done = retrain(calm, _loop(project, 0.99), monitor_run_id="abc")

    assert done.outcome == NO_DRIFT and done.job is None and done.promotion is None
    assert "no retraining started" in done.message
    assert runs(project, "train") == []


def test_a_notebook_that_is_not_there_is_a_failed_loop_not_a_crash(project: Path) -> None:
    done = retrain(_result(shift=1.0), _loop(project, 0.99), monitor_run_id="abc")
    assert done.outcome == JOB_FAILED and "could not start" in done.message and "does not exist" in done.message


def test_loop_settings_errors_name_the_setting_the_source_and_the_fix(project: Path) -> None:
    pyproject = project / "pyproject.toml"
    cases = {
        "[tool.mlops_nb.monitor]\ndrift_shar = 0.3\n": ("drift_shar", "Did you mean 'drift_share'?"),
        "[tool.mlops_nb.monitor]\ndrift_share = 2\n": ("drift_share", "share in (0, 1]"),
        '[tool.mlops_nb.monitor]\nschedule = "daily"\n': ("schedule", "cron schedule of 5 fields"),
        "[tool.mlops_nb.monitor]\nthresholds = { psi = -1 }\n": ("thresholds", "must be a number >= 0"),
        '[tool.mlops_nb.monitor.retrain]\npromote = "churn"\n': ("notebook", 'notebook = "notebooks/train.ipynb"'),
        '[tool.mlops_nb.monitor.retrain]\nnotebook = "t.ipynb"\npromote = "c"\nmetric = "acc"\n': (
            "metric",
            'must_beat = "champion"',
        ),
    }
    for text, (setting, fix) in cases.items():
        pyproject.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_monitor_settings(project)
        assert caught.value.setting == setting, text
        assert str(pyproject) in str(caught.value) and fix in str(caught.value), str(caught.value)
    pyproject.write_text(
        textwrap.dedent("""
        [tool.mlops_nb.monitor]
        data = "live"
        thresholds = { wasserstein = 0.2 }
        schedule = "30 2 * * 1"
        """)
    )
    settings = load_monitor_settings(project, env={"MLOPS_NB_MONITOR_MODEL": "models:/churn/3"})
    assert settings.model == "models:/churn/3" and settings.data == str(project / "live")
    assert settings.thresholds == {"wasserstein": 0.2} and settings.schedule == "30 2 * * 1"
    assert settings.retrain is None and settings.configured


@pytest.mark.slow
def test_a_scheduler_runs_mlops_nb_monitor_with_no_options_and_the_loop_closes(project: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.notebooks import mlops_nb

    write_notebook(project / "notebooks" / "train.ipynb", *TRAIN, parameters="accuracy = 0.0\nfail = False")
    _champion(0.80)
    (project / "live").mkdir()
    rng = np.random.default_rng(5)
    shifted = {name: rng.random(2000) + 0.5 for name in ("a", "b", "c")}  # every feature moved by half its range
    pq.write_table(pa.table(shifted), project / "live" / "today.parquet")
    (project / "pyproject.toml").write_text(LOOP.format(accuracy=0.93, fail="false"))

    done = mlops_nb("monitor", cwd=project)

    assert done.returncode == 0, done.stderr
    assert "churn@champion moved to version 2 (was version 1)" in done.stderr
    client = embedded_client(project)
    assert str(client.get_model_version_by_alias("churn", "champion").version) == "2"
    monitors = [
        r
        for e in client.search_experiments()
        for r in client.search_runs([e.experiment_id], "tags.`mlops_nb.kind` = 'monitor'")
    ]
    (monitor_run,) = monitors
    (job,) = [r for r in runs(project, "train") if r.data.tags.get(KIND) == "job"]
    assert job.data.tags[TRIGGER] == f"monitor:{monitor_run.info.run_id}"

    # version 1 again (the champion is version 2 now), the loop left out this time: drift, and nothing started
    skipped = mlops_nb("monitor", "models:/churn/1", "--no-retrain", "--json", "-", cwd=project)
    assert skipped.returncode == 0, skipped.stderr
    assert json.loads(skipped.stdout)["dataset_drift"] and "retraining" not in json.loads(skipped.stdout)
    assert str(client.get_model_version_by_alias("churn", "champion").version) == "2"
    assert len([r for r in runs(project, "train") if r.data.tags.get(KIND) == "job"]) == 1
    bad = mlops_nb("monitor", "--promote", "churn", cwd=project)
    assert bad.returncode == 2 and "go with --retrain NOTEBOOK" in bad.stderr
