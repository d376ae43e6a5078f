"""``mlops-nb promote`` against real MLflow stores: gates, must-beat, evidence, and concurrent promotions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import mlops_nb as mnb
from mlops_nb.cli import main
from mlops_nb.exceptions import StoreError
from mlops_nb.registry import promote
from mlops_nb.tracking import reading
from mlops_nb.tracking._client import client as mlflow_client
from mlops_nb.tracking.registry import LOCK_SUFFIX, model_lock
from tests.conftest import SETTING_VARS, MlflowServer, embedded_client, python


def record(accuracy: float, *, loss: float = 0.5, models: tuple[str, ...] = ("model",)) -> str:
    """A job run whose ``train`` stage logs ``models`` and the metrics; returns the job run's id."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    X = np.random.RandomState(0).rand(40, 3)
    y = (X[:, 0] > 0.5).astype(int)
    with mnb.start_run("train", kind="job") as job, mnb.stage("train"):
        for name in models:
            mnb.log_model(LogisticRegression().fit(X, y), name, input_example=X[:5])
        mnb.log_metrics({"accuracy": accuracy, "loss": loss})
    assert mnb.flush(120)
    return job.run_id


def cli(*args: str):
    return CliRunner().invoke(main, ["promote", *args])


def version_tags(name: str, version: str) -> dict[str, str]:
    return mlflow_client().get_model_version(name, version).tags


def test_passing_gates_register_the_version_move_the_alias_and_record_the_evidence(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "start"], check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    monkeypatch.setenv("MLOPS_NB_NOTEBOOK", "notebooks/train.ipynb")
    run_id = record(0.93)

    result = cli(run_id, "--name", "churn", "--require", "accuracy >= 0.9", "--require", "loss < 1")

    assert result.exit_code == 0, result.output
    assert "Registered churn version 1" in result.output
    assert "✓ accuracy >= 0.9: accuracy = 0.93, holds" in result.output
    assert "Promoted: churn@champion -> version 1 (was no version)." in result.output
    client = embedded_client(project)
    assert str(client.get_model_version_by_alias("churn", "champion").version) == "1"
    version = client.get_model_version("churn", "1")
    stage = reading.child_runs(run_id)[0]
    assert version.run_id == stage["run_id"] and version.source == f"runs:/{stage['run_id']}/model"
    assert (Path(client.download_artifacts(version.run_id, "model", str(project / "dl"))) / "MLmodel").is_file()
    tags = version.tags
    assert tags["mlops_nb.source_run"] == run_id
    assert tags["mlops_nb.model_run"] == stage["run_id"]
    assert tags["mlops_nb.stage"] == "train"
    assert tags["mlops_nb.notebook"] == "notebooks/train.ipynb"
    assert tags["mlops_nb.git.commit"] == commit
    assert tags["mlops_nb.promotion.status"] == "promoted"
    assert tags["mlops_nb.promotion.alias"] == "champion"
    assert "mlops_nb.promotion.previous_version" not in tags
    assert tags["mlops_nb.promotion.user"] and tags["mlops_nb.promotion.host"]
    assert tags["mlops_nb.promotion.time"].endswith("+00:00")
    gates = json.loads(tags["mlops_nb.promotion.gates"])
    assert [(g["name"], g["ok"]) for g in gates] == [("accuracy >= 0.9", True), ("loss < 1", True)]


def test_a_failing_gate_refuses_says_by_how_much_and_leaves_the_alias(project: Path) -> None:
    assert promote(record(0.93), "churn").promoted
    run_id = record(0.85)

    result = cli(run_id, "--name", "churn", "--require", "accuracy >= 0.9", "--require", "loss <= 0.5")

    assert result.exit_code == 3, result.output
    assert "✗ accuracy >= 0.9: accuracy = 0.85, 0.05 below the threshold" in result.output
    assert "✓ loss <= 0.5" in result.output
    assert "Refused by accuracy >= 0.9: churn@champion did not move (it points to version 1)" in result.output
    assert "nothing was registered" in result.output and "Registered" not in result.output
    client = embedded_client(project)
    assert str(client.get_model_version_by_alias("churn", "champion").version) == "1"
    tags = client.get_run(run_id).data.tags  # the evidence is on the run
    assert tags["mlops_nb.promotion.refused"] == (
        "churn@champion: accuracy >= 0.9: accuracy = 0.85, 0.05 below the threshold"
    )
    record_ = json.loads(tags["mlops_nb.promotion.refused_gates"])
    assert (record_["model"], record_["alias"]) == ("churn", "champion") and record_["time"]
    assert [(g["name"], g["ok"]) for g in record_["gates"]] == [("accuracy >= 0.9", False), ("loss <= 0.5", True)]


def test_refused_promotions_leave_the_registry_as_it_was(project: Path) -> None:
    assert promote(record(0.93), "churn").promoted
    client = embedded_client(project)
    before = [(v.version, dict(v.tags)) for v in client.search_model_versions("name = 'churn'")]
    runs = [record(accuracy) for accuracy in (0.8, 0.81, 0.82)]

    codes = [
        cli(run, "--name", "churn", "--require", "accuracy >= 0.9", "--must-beat", "champion", "--metric", "accuracy")
        for run in runs
    ]

    assert [c.exit_code for c in codes] == [3, 3, 3], [c.output for c in codes]
    assert [(v.version, dict(v.tags)) for v in client.search_model_versions("name = 'churn'")] == before
    assert str(client.get_model_version_by_alias("churn", "champion").version) == "1"
    for run, accuracy in zip(runs, (0.8, 0.81, 0.82), strict=True):
        tags = client.get_run(run).data.tags
        assert f"accuracy = {accuracy:g}, " in tags["mlops_nb.promotion.refused"]
        evidence = json.loads(tags["mlops_nb.promotion.refused_gates"])
        assert evidence["champion_version"] == "1" and evidence["value"] == repr(accuracy)


def test_must_beat_compares_with_the_metric_of_the_champions_source_run(project: Path) -> None:
    champion_run = record(0.9, loss=0.3)
    first = promote(champion_run, "churn", must_beat="champion", metric="accuracy")
    assert first.promoted and "nothing to beat" in first.gates[0].message
    beat = ("--name", "churn", "--must-beat", "champion", "--metric", "accuracy")

    worse = cli(record(0.88), *beat)
    assert worse.exit_code == 3, worse.output
    assert f"accuracy = 0.88 is 0.02 short of 0.9 of version 1 (run {champion_run}; higher is better)" in worse.output
    tie = cli(record(0.9), *beat)
    assert tie.exit_code == 3 and "only ties 0.9 of version 1" in tie.output
    better_run = record(0.95, loss=0.2)
    better = cli(better_run, *beat)
    assert better.exit_code == 0, better.output
    assert "Promoted: churn@champion -> version 2 (was version 1)." in better.output
    tags = version_tags("churn", "2")
    assert tags["mlops_nb.promotion.champion_version"] == "1"
    assert tags["mlops_nb.promotion.champion_run"] == champion_run
    assert tags["mlops_nb.promotion.champion_value"] == "0.9"
    assert tags["mlops_nb.promotion.metric"] == "accuracy" and tags["mlops_nb.promotion.value"] == "0.95"
    assert tags["mlops_nb.promotion.previous_version"] == "1"
    # Lower is better: the loss of the new champion's run (0.2) is what a candidate must go under.
    loss = ("--name", "churn", "--must-beat", "champion", "--metric", "loss", "--lower-is-better")
    assert cli(record(0.99, loss=0.25), *loss).exit_code == 3
    lower = cli(record(0.8, loss=0.1), *loss)
    assert lower.exit_code == 0, lower.output
    assert "loss = 0.1 beats 0.2 of version 2" in lower.output
    assert str(embedded_client(project).get_model_version_by_alias("churn", "champion").version) == "3"
    # A misspelt alias is not "nothing to beat".
    typo = cli(record(0.99), "--name", "churn", "--must-beat", "champoin", "--metric", "accuracy")
    assert typo.exit_code == 2 and "Did you mean 'champion'?" in typo.stderr
    # A champion whose metric is NaN is beaten by any number; a NaN beats nothing.
    assert cli(record(float("nan")), "--name", "churn", "--alias", "broken").exit_code == 0
    nan_beat = ("--name", "churn", "--alias", "broken", "--must-beat", "broken", "--metric", "accuracy")
    assert cli(record(float("nan")), *nan_beat).exit_code == 3
    fixed = cli(record(0.5), *nan_beat)
    assert fixed.exit_code == 0, fixed.output


def test_bad_input_exits_2_names_the_fix_and_registers_nothing(project: Path) -> None:
    run_id = record(0.9, models=("model", "baseline"))
    cases = {
        ("nope", "--name", "churn"): "No run 'nope'",
        (run_id, "--name", "churn", "--model", "model", "--require", "accuracy => 0.9"): "METRIC OP VALUE",
        (run_id, "--name", "churn", "--model", "model", "--require", "acuracy >= 0.9"): "Did you mean 'accuracy'?",
        (run_id, "--name", "churn", "--model", "model", "--must-beat", "champion"): "go together",
        (run_id, "--name", "churn", "--model", "model", "--alias", "latest"): "not a valid MLflow alias",
        (run_id, "--name", "a/b", "--model", "model"): "Choose another --name",
        (run_id, "--name", "churn"): "has 2 models: train/model, train/baseline. Say which with --model",
        (run_id, "--name", "churn", "--model", "other"): "Pass one of these to --model",
    }
    for args, message in cases.items():
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
    client = embedded_client(project)
    assert client.search_registered_models() == []
    with mnb.start_run("no-model", kind="job") as bare, mnb.stage("train"):
        mnb.log_metric("accuracy", 1.0)
    assert mnb.flush(60)
    result = cli(bare.run_id, "--name", "churn")
    assert result.exit_code == 2 and "logged no model" in result.stderr

    chosen = cli(run_id, "--name", "churn", "--model", "train/baseline")
    assert chosen.exit_code == 0, chosen.output
    assert client.get_model_version("churn", "1").source.endswith("/baseline")


SESSION = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
import mlops_nb as mnb

ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "mlops_nb")
cells = [
    "import numpy as np\\nfrom sklearn.linear_model import LogisticRegression\\nimport mlops_nb as mnb\\n"
    "X_train = np.random.RandomState(0).rand(40, 3)\\ny_train = (X_train[:, 0] > 0.5).astype(int)",
    "%%track train\\nmodel = LogisticRegression().fit(X_train, y_train)\\n"
    "mnb.log_metric('accuracy', model.score(X_train, y_train))\\n"
    "mnb.log_model(model, 'model', input_example=X_train[:5], reference=X_train)",
]
ids = []
for _ in range(2):  # the second notebook run is served from the cache
    run = mnb.start_run("train", kind="notebook")
    for code in cells:
        assert ip.run_cell(code).success
    run.end()
    ids.append(run.run_id)
assert mnb.flush(120)
print(json.dumps(ids))
"""


def test_the_model_of_a_stage_served_from_the_cache_is_found_on_the_run_that_produced_it(project: Path) -> None:
    out = python(SESSION, cwd=project)
    assert out.returncode == 0, out.stderr[-3000:]
    first, second = json.loads(out.stdout.strip().splitlines()[-1])
    produced, served = reading.child_runs(first)[0], reading.child_runs(second)[0]
    assert served["tags"]["mlops_nb.cache_hit"] == "true"

    result = cli(second, "--name", "wine", "--require", "accuracy > 0.5")

    assert result.exit_code == 0, result.output
    assert f"from runs:/{produced['run_id']}/model (train/model)" in result.output
    tags = version_tags("wine", "1")
    assert tags["mlops_nb.source_run"] == second
    assert tags["mlops_nb.model_run"] == produced["run_id"]
    fingerprints = {k: v for k, v in tags.items() if k.startswith("mlops_nb.input.")}
    assert {"mlops_nb.input.X_train", "mlops_nb.input.y_train"} <= set(fingerprints)
    assert fingerprints == {k: v for k, v in served["tags"].items() if k.startswith("mlops_nb.input.")}


RERUN = """
import json
from IPython.core.interactiveshell import InteractiveShell
import mlops_nb as mnb

ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "mlops_nb")
run = mnb.start_run("train", kind="notebook")
assert ip.run_cell(
    "import numpy as np\\nfrom sklearn.linear_model import LogisticRegression\\nimport mlops_nb as mnb\\n"
    "X_train = np.random.RandomState(0).rand(40, 3)\\ny_train = (X_train[:, 0] > 0.5).astype(int)"
).success
train = (
    "%%track train\\nmodel = LogisticRegression(C=C).fit(X_train, y_train)\\n"
    "mnb.log_metric('accuracy', model.score(X_train, y_train))\\n"
    "mnb.log_model(model, 'model', input_example=X_train[:5])"
)
for C in (1.0, 1.0, 0.5):  # the cell run again: from the cache, then with another C
    ip.user_ns["C"] = C
    assert ip.run_cell(train).success
run.end()
assert mnb.flush(120)
print(json.dumps(run.run_id))
"""


def test_a_stage_run_again_in_one_notebook_run_counts_once_its_latest_model(project: Path) -> None:
    """Running the training cell again (a cache hit, then new code or parameters) is what notebooks are for:
    the run still has one model, the one its latest run of the stage produced."""
    out = python(RERUN, cwd=project)
    assert out.returncode == 0, out.stderr[-3000:]
    run_id = json.loads(out.stdout.strip().splitlines()[-1])
    stages = reading.child_runs(run_id)
    assert [s["tags"]["mlops_nb.cache_hit"] for s in stages] == ["false", "true", "false"]

    result = cli(run_id, "--name", "rerun")

    assert result.exit_code == 0, result.output
    assert f"from runs:/{stages[-1]['run_id']}/model (train/model)" in result.output
    assert version_tags("rerun", "1")["mlops_nb.model_run"] == stages[-1]["run_id"]


def test_a_model_logged_with_plain_mlflow_is_found_registered_and_exported(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mlflow.sklearn.log_model (MLflow 3 logged models) inside a stage: promote finds it, the version points
    at the logged model, and export fetches it by runs:/, by models:/m-<id> and through the registry."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mlops_nb.serving import export

    X = np.random.RandomState(0).rand(40, 3)
    y = (X[:, 0] > 0.5).astype(int)
    with mnb.start_run("plain", kind="job") as job, mnb.stage("train") as stage:
        mnb.log_metric("accuracy", 0.9)
    assert mnb.flush(60)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_client()._tracking_client.tracking_uri)  # for mlflow's fluent API
    with mlflow.start_run(run_id=stage.run_id):
        info = mlflow.sklearn.log_model(LogisticRegression().fit(X, y), name="model", input_example=X[:5])

    result = cli(job.run_id, "--name", "plain", "--require", "accuracy >= 0.9")

    assert result.exit_code == 0, result.output
    assert f"from models:/{info.model_id} (train/model)" in result.output
    version = mlflow_client().get_model_version("plain", "1")
    assert version.run_id == stage.run_id and version.source == f"models:/{info.model_id}"
    for uri in ("models:/plain@champion", f"models:/{info.model_id}", f"runs:/{stage.run_id}/model"):
        out = project / f"serving-{len(list(project.glob('serving-*')))}"
        done = export(uri, out)
        assert (done.out / "model" / "model.skops").is_file(), uri


def test_a_stale_lock_is_broken_and_a_held_one_times_out(project: Path) -> None:
    client = mlflow_client()
    lock = "churn" + LOCK_SUFFIX
    client.create_registered_model(lock, tags={"mlops_nb.lock.token": "dead-process"})  # as a killed holder leaves it
    with pytest.raises(StoreError, match="delete that registered model"), model_lock("churn", timeout=0.5):
        pass
    started = time.monotonic()
    with model_lock("churn", stale_after=0.5, timeout=30):
        assert client.get_registered_model(lock).tags["mlops_nb.lock.token"] != "dead-process"
    assert time.monotonic() - started < 10
    assert [m.name for m in client.search_registered_models()] == []


def test_a_registered_model_that_is_not_a_lock_is_never_deleted_as_one(project: Path) -> None:
    run_id = record(0.9)
    refused = cli(run_id, "--name", "churn" + LOCK_SUFFIX)
    assert refused.exit_code == 2 and "promotion locks" in refused.stderr
    client = mlflow_client()
    client.create_registered_model("churn" + LOCK_SUFFIX)  # someone's own model, without mlops-nb's token
    with pytest.raises(StoreError, match="not an mlops-nb promotion lock"), model_lock("churn", stale_after=0):
        pass
    assert client.get_registered_model("churn" + LOCK_SUFFIX).name == "churn" + LOCK_SUFFIX


# The real command in separate processes, connected to MLflow and then started together, to race on the alias.
PROMOTER = """
import os, sys, time
from pathlib import Path
from mlops_nb.cli import main
from mlops_nb.tracking._client import client as mlflow_client

ready, go = Path(sys.argv[1]), Path(sys.argv[2])
if os.environ.get("LOCK_FLAG"):  # says when it tries to take the promotion lock (the gates held)
    import importlib

    registry = importlib.import_module("mlops_nb.tracking.registry")
    take = registry.model_lock
    registry.model_lock = lambda *args, **kwargs: (Path(os.environ["LOCK_FLAG"]).touch(), take(*args, **kwargs))[1]
mlflow_client().search_registered_models()  # connected to the tracking and the registry store
ready.touch()
while not go.exists():
    time.sleep(0.002)
main(["promote", *sys.argv[3:]], prog_name="mlops-nb")
"""


def promoters(
    project: Path, commands: list[tuple[str, ...]], tracking_uri: str | None = None, lock_flag: Path | None = None
) -> list[subprocess.Popen]:
    """Start ``mlops-nb promote`` with each argument tuple in its own process; all begin at once."""
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    if lock_flag:
        env["LOCK_FLAG"] = str(lock_flag)
    go, ready = project / "go", [project / f"ready-{i}" for i in range(len(commands))]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROMOTER, str(flag), str(go), *args],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for flag, args in zip(ready, commands, strict=True)
    ]
    deadline = time.monotonic() + 120
    while not all(flag.exists() for flag in ready):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a promoter did not start"
        time.sleep(0.05)
    go.touch()
    return procs


@pytest.fixture(params=["embedded", "mlflow-server"])
def tracking_uri(request: pytest.FixtureRequest, project: Path, monkeypatch: pytest.MonkeyPatch):
    """None for the embedded SQLite store, or the URI of a real ``mlflow server`` (also set for this process)."""
    if request.param == "embedded":
        yield None
        return
    server = MlflowServer(project / "server", f"sqlite:///{project / 'server' / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    yield server.uri
    from mlops_nb.tracking import recorder

    recorder.shutdown(timeout=60)  # before the server goes
    server.stop()


@pytest.mark.slow
def test_of_concurrent_promotions_to_one_alias_only_one_wins(project: Path, tracking_uri: str | None) -> None:
    champion = record(0.5)
    assert promote(champion, "churn").promoted
    candidates = [record(0.9) for _ in range(4)]  # equally good: whoever moves the alias first, the rest lose
    beat = ("--name", "churn", "--must-beat", "champion", "--metric", "accuracy")
    procs = promoters(project, [(run, *beat) for run in candidates], tracking_uri)
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    codes = [p.returncode for p in procs]

    assert sorted(codes) == [0, 3, 3, 3], outputs
    winner = candidates[codes.index(0)]
    client = mlflow_client()
    champion_now = client.get_model_version_by_alias("churn", "champion")
    assert champion_now.tags["mlops_nb.source_run"] == winner
    statuses = {
        v.tags["mlops_nb.source_run"]: v.tags["mlops_nb.promotion.status"]
        for v in client.search_model_versions("name = 'churn'")
    }
    assert statuses == {champion: "promoted", winner: "promoted"}  # the refused registered nothing
    for code, output in zip(codes, outputs, strict=True):
        if code == 3:  # lost the race, or came after the winner and only tied it
            assert "no concurrent promotion" in output or "only ties 0.9" in output, output
    assert [m.name for m in client.search_registered_models()] == ["churn"]  # no lock left behind


@pytest.mark.slow
def test_a_promotion_that_finds_the_alias_moved_while_it_waited_is_refused(project: Path) -> None:
    assert promote(record(0.5), "churn").promoted
    run_id = record(0.9)
    client = mlflow_client()
    waiting = project / "waiting"
    with model_lock("churn"):
        [proc] = promoters(project, [(run_id, "--name", "churn")], lock_flag=waiting)
        deadline = time.monotonic() + 120
        while not waiting.exists():  # the gates held: now waiting for the lock
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.1)
        client.delete_registered_model_alias("churn", "champion")  # another promotion's doing, say
    output = proc.communicate(timeout=120)[0]

    assert proc.returncode == 3, output
    assert "a concurrent promotion moved @champion from 1 to no version" in output
    assert "churn@champion did not move (it points to no version)" in output
    assert "champion" not in client.get_registered_model("churn").aliases
    assert [str(v.version) for v in client.search_model_versions("name = 'churn'")] == ["1"]
    assert "concurrent promotion" in client.get_run(run_id).data.tags["mlops_nb.promotion.refused"]


def test_a_model_name_mlflow_or_a_generated_file_would_choke_on_is_refused(project: Path) -> None:
    run_id = record(0.9)
    for name, rule in (
        ('x"""\nopen("INJECTED", "w")\n"""', "line break"),
        ("team/churn", "'/' or ':'"),
        ("..", "relative path"),
        (" churn", "starts or ends with a space"),
        ("""say "bob's" """.strip(), "both ' and \""),
    ):
        result = cli(run_id, "--name", name)
        assert result.exit_code == 2, (name, result.output)
        assert "not a valid registered model name" in result.stderr and rule in result.stderr, result.stderr
    assert embedded_client(project).search_registered_models() == []


def test_promote_compares_with_the_alias_on_the_projects_metric_and_warns_when_worse(project: Path) -> None:
    assert promote(record(0.933), "wine").promoted
    unset = cli(record(0.95), "--name", "wine")
    assert unset.exit_code == 0, unset.output
    assert "Not compared with version 1: pass --metric M, or set metric in [tool.mlops_nb.promote]" in unset.stderr
    (project / "pyproject.toml").write_text('[tool.mlops_nb.promote]\nmetric = "accuracy"\n')

    worse = cli(record(0.911), "--name", "wine")

    assert worse.exit_code == 0, worse.output
    assert "against wine@champion: accuracy: 0.911 against 0.95 of version 2 (0.039 worse; higher is better)" in (
        worse.stdout
    )
    assert "Promoted: wine@champion -> version 3 (was version 2)." in worse.stdout
    assert "Warning: wine@champion moved to a version with a worse accuracy than version 2's" in worse.stderr
    assert "--must-beat champion --metric accuracy" in worse.stderr
    better = cli(record(0.96), "--name", "wine")
    assert "accuracy: 0.96 against 0.911 of version 3 (0.049 better" in better.stdout and not better.stderr
    # The configured gate is the default of --must-beat; --no-must-beat skips it for one promotion.
    (project / "pyproject.toml").write_text('[tool.mlops_nb.promote]\nmetric = "accuracy"\nmust_beat = "champion"\n')
    refused = cli(record(0.9), "--name", "wine")
    assert refused.exit_code == 3, refused.output
    assert "✗ beats @champion on accuracy: accuracy = 0.9 is 0.06 short of 0.96 of version 4" in refused.stdout
    forced = cli(record(0.9), "--name", "wine", "--no-must-beat")
    assert forced.exit_code == 0 and "Warning: wine@champion moved" in forced.stderr
    assert str(embedded_client(project).get_model_version_by_alias("wine", "champion").version) == "5"
    (project / "pyproject.toml").write_text('[tool.mlops_nb.promote]\nmust_beat = "champion"\n')
    bad = cli(record(0.99), "--name", "wine")
    assert bad.exit_code == 2 and "Setting 'must_beat'" in bad.stderr and 'metric = "accuracy"' in bad.stderr
