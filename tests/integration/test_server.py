"""The Jupyter server extension: a real jupyter_server (pytest-jupyter) over real SQLite MLflow stores.

The fixtures of pytest-jupyter are imported into this module only (not registered as a plugin), so its
autouse fixtures (an event loop per test, server cleanup) stay out of the other tests; the tests drive the
server's event loop themselves.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403 - the jp_* fixtures, for this module only
from tornado.httpclient import HTTPClientError

import mlops_nb as mnb
from mlops_nb.server.handlers import ROUTES
from mlops_nb.tracking import reading
from mlops_nb.tracking.diff import diff_runs
from mlops_nb.tracking.records import STAGE_EVENT_SCHEMA
from tests.conftest import SETTING_VARS
from tests.notebooks import PIPELINE, PIPELINE_PARAMETERS, write_notebook

pytestmark = pytest.mark.slow
API = "mlops-nb/api"


@pytest.fixture
def jp_server_config():  # ours replaces pytest-jupyter's: load the extension
    from traitlets.config import Config

    return Config({"ServerApp": {"jpserver_extensions": {"mlops_nb.server": True}}})


@pytest.fixture
def jp_root_dir(project: Path) -> Path:  # the server's root is the test's project folder
    return project


@pytest.fixture
def api(jp_serverapp, jp_fetch, jp_asyncio_loop):
    """``api(path, method=..., body=..., params=..., headers=...)`` -> (status, JSON) on the running server."""

    def call(path: str, *, method: str = "GET", body: Any = None, params=None, headers=None) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"method": method, "params": params, "headers": headers}
        if body is not None:
            kwargs["body"] = body if isinstance(body, str) else json.dumps(body)
        elif method == "POST":
            kwargs["body"] = "{}"
        try:
            response = jp_asyncio_loop.run_until_complete(jp_fetch(API, *path.split("/"), **kwargs))
        except HTTPClientError as e:
            assert e.response is not None, e
            assert e.response.headers["Content-Type"].startswith("application/json")
            return e.code, json.loads(e.response.body)
        return response.code, json.loads(response.body)

    return call


def recorded(name: str, notebook: Path, params: dict[str, Any], score: float) -> str:
    """A notebook run of ``notebook`` with stages ``load`` and ``score`` (the real recorder, in this process)."""
    os.environ["MLOPS_NB_NOTEBOOK"] = str(notebook)  # as a kernel of that notebook says (removed by `project`)
    with mnb.start_run(name, kind="notebook") as run:
        mnb.log_params(params)
        with mnb.stage("load"):
            mnb.log_metric("rows", 10.0)
            time.sleep(0.01)  # stages are ordered by their start, in milliseconds
        with mnb.stage("score"):
            mnb.log_metric("accuracy", score)
    assert mnb.flush(60)
    return run.run_id


@pytest.fixture
def two_runs(project: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("MLOPS_NB_NOTEBOOK", str(project / "nb.ipynb"))
    return recorded("a", project / "nb.ipynb", {"C": 1.0}, 0.9), recorded("b", project / "nb.ipynb", {"C": 0.5}, 0.8)


def _concrete(pattern: str) -> str:
    return pattern.replace("([^/]+)", "some-id").removeprefix(f"/{API}/")


def test_every_route_answers_403_json_without_a_token(api) -> None:
    checked = []
    for pattern, handler in ROUTES:
        for method in ("GET", "POST"):
            if method.lower() not in vars(handler):
                continue
            status, body = api(_concrete(pattern), method=method, headers={"Authorization": ""})
            assert status == 403, (pattern, method, status)
            assert body["error"] == "forbidden" and body["message"]
            checked.append((pattern, method))
    assert len(checked) == len(ROUTES)  # each route has exactly one method, and none escaped


def test_status_names_the_store_without_its_credentials(api, monkeypatch: pytest.MonkeyPatch) -> None:
    status, body = api("status")
    assert status == 200 and body["event_schema"] == STAGE_EVENT_SCHEMA and body["version"]
    assert body["tracking_uri"].startswith("sqlite:///") and body["tracking_uri"].endswith(".mlops_nb/mlflow.db")


@pytest.fixture
def secret_uri(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:s3cret@127.0.0.1:9/")
    return "http://alice:***@127.0.0.1:9/"


def test_status_redacts_a_password_in_the_tracking_uri(secret_uri: str, api) -> None:
    status, body = api("status")
    assert status == 200 and body["tracking_uri"] == secret_uri


def test_bad_input_and_unknown_ids_answer_4xx_json(api, project: Path, two_runs) -> None:
    outside = project.parent / "outside"
    outside.mkdir()
    (project / "link").symlink_to(outside)
    cases = [
        ("runs/no-such-run", {}, 404, "No run 'no-such-run'"),
        ("models/no-such-model", {}, 404, "No registered model 'no-such-model'"),
        ("jobs/no-such-job", {}, 404, "No job 'no-such-job'"),
        ("diff", {"a": two_runs[0], "b": "no-such-run"}, 404, "No run 'no-such-run'"),
        ("diff", {"a": two_runs[0]}, 400, "diff?a=RUN_ID&b=RUN_ID"),
        ("notebook", {"path": "../../etc/passwd"}, 400, "outside the server's root folder"),
        ("notebook", {"path": "/etc/passwd"}, 400, "outside the server's root folder"),
        ("notebook", {"path": "link/nb.ipynb"}, 400, "outside the server's root folder"),  # a symlink out
        ("notebook", {}, 400, "Give path=PATH"),
        ("runs", {"notebook": "../../etc/passwd"}, 400, "outside the server's root folder"),
        ("runs", {"max_results": "abc"}, 400, "max_results takes a whole number"),
        ("runs", {"max_results": "0"}, 400, "max_results takes 1 to 1000"),
        ("runs", {"max_results": "1001"}, 400, "max_results takes 1 to 1000"),
        ("runs", {"kind": "stage"}, 400, "--kind takes one of"),
    ]
    for path, params, code, message in cases:
        status, body = api(path, params=params)
        assert (status, body["error"]) == (code, "not_found" if code == 404 else "bad_request"), (path, params, body)
        assert message in body["message"], (path, params, body)
    for body, message in [
        ("not json", "not JSON"),
        ("[1]", "must be a JSON object"),
        ({}, "Give the notebook to run"),
        ({"notebook": "../../etc/passwd"}, "outside the server's root folder"),
        ({"notebook": "missing.ipynb"}, "is not a notebook file"),
        ({"notebook": "link/x.ipynb"}, "outside the server's root folder"),
    ]:
        status, answer = api("jobs", method="POST", body=body)
        assert status == 400 and message in answer["message"], (body, answer)
    status, answer = api("models/churn/promote", method="POST", body={"run_id": two_runs[0], "require": "x"})
    assert status == 400 and "'require' takes a list of strings" in answer["message"]
    assert reading.list_models()["models"] == []  # nothing registered by the refused requests


def _json(record: Any) -> Any:
    return json.loads(json.dumps(record))


def test_runs_run_notebook_and_diff_answer_what_the_read_api_reads(api, project: Path, two_runs) -> None:
    a, b = two_runs
    status, page = api("runs", params={"notebook": "nb.ipynb", "max_results": "1"})
    assert status == 200 and page == _json(reading.list_runs(str(project / "nb.ipynb"), max_results=1))
    assert [r["run_id"] for r in page["runs"]] == [b] and page["next_page_token"]
    status, second = api("runs", params={"notebook": "nb.ipynb", "page_token": page["next_page_token"]})
    assert [r["run_id"] for r in second["runs"]] == [a] and second["next_page_token"] is None
    status, other = api("runs", params={"notebook": "other.ipynb"})
    assert status == 200 and other == {"runs": [], "next_page_token": None}

    status, view = api(f"runs/{b}")
    detail = {k: v for k, v in view.items() if k != "artifacts"}
    assert status == 200 and detail == _json(reading.run_detail(b))
    assert view["artifacts"] == _json(reading.run_artifacts(b))
    assert "environment/requirements.txt" in [a["path"] for a in view["artifacts"]]
    status, stage = api(f"runs/{detail['stages'][0]['run_id']}")  # a stage is a run too
    assert status == 200 and stage["kind"] == "stage" and stage["stages"] == []
    assert [(s["stage"], s["status"], s["cache_hit"]) for s in detail["stages"]] == [
        ("load", "FINISHED", False),
        ("score", "FINISHED", False),
    ]
    assert detail["stages"][1]["metrics"] == {"accuracy": 0.8} and detail["params"] == {"C": "0.5"}

    status, notebook = api("notebook", params={"path": "nb.ipynb"})
    assert status == 200 and notebook == {"path": "nb.ipynb", "run": detail}
    status, empty = api("notebook", params={"path": "sub/new.ipynb"})
    assert status == 200 and empty == {"path": "sub/new.ipynb", "run": None}

    kept = api("runs", params={"notebook": "nb.ipynb"})
    assert api("runs", params={"notebook": "nb.ipynb"}) == kept and len(kept[1]["runs"]) == 2
    c = recorded("c", project / "nb.ipynb", {"C": 0.1}, 0.7)
    status, changed = api("runs", params={"notebook": "nb.ipynb"})
    assert [r["run_id"] for r in changed["runs"]] == [c, b, a]  # a write is seen at once
    assert api("notebook", params={"path": "nb.ipynb"})[1]["run"]["run_id"] == c

    status, diff = api("diff", params={"a": a, "b": b})
    expected = diff_runs(reading.run_detail(a), reading.run_detail(b), reading.stage_code)
    assert status == 200 and diff == _json({**expected, "evaluations": []})  # these runs evaluated nothing
    assert diff["params"] == {"C": ["1.0", "0.5"]}
    assert diff["metrics"]["accuracy"][:2] == [0.9, 0.8]


def test_compare_serves_the_runs_and_the_chart_spec_built_in_python(api, project: Path, two_runs) -> None:
    from mlops_nb.widgets.charts import compare_spec

    a, b = two_runs
    # C only on the stage that read it, as an older mlops-nb recorded a notebook run
    with mnb.start_run("old", kind="notebook") as old, mnb.stage("score"):
        mnb.log_params({"C": 0.1})
        mnb.log_metric("accuracy", 0.7)
    assert mnb.flush(60)

    status, compared = api("compare", params=[("run", i) for i in (a, b, old.run_id, a)])

    assert status == 200
    assert [r["run_id"] for r in compared["runs"]] == [a, b, old.run_id]  # in the order asked, once each
    assert [r["params"] for r in compared["runs"]] == [{"C": "1.0"}, {"C": "0.5"}, {"C": "0.1"}]
    assert compared["spec"] == _json(compare_spec(compared["runs"]))  # the spec %mlops panel shows
    axes = {row["axis"] for row in compared["spec"]["vconcat"][0]["data"]["values"]}
    assert axes == {"C", "accuracy", "rows"}
    for ids, code, message in [
        ([a], 400, "Give two or more runs to compare"),
        ([a, "no-such-run"], 404, "No run 'no-such-run'"),
        ([f"{i:032x}" for i in range(501)], 400, "compare at most 500 at once"),
    ]:
        status, body = api("compare", params=[("run", i) for i in ids])
        assert status == code and message in body["message"], (ids, body)


def _evaluated_run(name: str, c: float, recall: float) -> str:
    """A run with the metrics an evaluation logs (its own, cv, worst slices, deltas): more than 12 axes."""
    metrics = {m: 0.9 for m in ("accuracy_score", "f1_score", "log_loss", "precision_score", "roc_auc")}
    metrics |= {f"cv.{m}.{k}": 0.9 for m in ("accuracy_score", "roc_auc") for k in ("mean", "low", "high")}
    metrics |= {"worst_slice.accuracy_score": 0.7, "worst_slice.recall_score": recall}
    with mnb.start_run(name, kind="notebook") as run:
        mnb.log_params({"C": c})
        mnb.log_metrics(metrics)
    assert mnb.flush(60)
    return run.run_id


def test_compare_draws_the_metrics_asked_for_and_refuses_unknown_ones_naming_the_runs_metrics(
    api, project: Path
) -> None:
    (project / "pyproject.toml").write_text('[tool.mlops_nb.promote]\nmetric = "roc_auc"\n')
    a, b = _evaluated_run("a", 1.0, 0.6), _evaluated_run("b", 0.1, 0.8)
    runs = [("run", a), ("run", b)]

    status, default = api("compare", params=runs)
    assert status == 200 and len(default["metrics"]) == 13
    # the promotion's metric first, then the evaluation's primary one and its worst slice: not alphabetical
    assert default["metrics"][:3] == ["roc_auc", "accuracy_score", "worst_slice.accuracy_score"]
    assert default["chosen"] == default["metrics"][:11] and default["left_out"] == default["metrics"][11:]
    title = default["spec"]["vconcat"][0]["title"]
    assert title["subtitle"] == "+2 more metrics: choose them above"

    for chosen in (
        [("metrics", "worst_slice.recall,accuracy_score")],
        [("metrics", m) for m in ("worst_slice.recall", "accuracy_score")],
    ):
        status, picked = api("compare", params=runs + chosen)
        assert status == 200 and picked["chosen"] == ["worst_slice.recall_score", "accuracy_score"], chosen
        assert picked["metrics"] == default["metrics"] and picked["left_out"] == []
        lines = picked["spec"]["vconcat"][0]["data"]["values"]
        assert sorted((r["axis"], r["value"]) for r in lines if r["axis"].startswith("worst")) == [
            ("worst_slice.recall_score", 0.6),
            ("worst_slice.recall_score", 0.8),
        ]
        assert "subtitle" not in picked["spec"]["vconcat"][0]["title"]
    status, only_params = api("compare", params=[*runs, ("metrics", "")])  # every box unticked: no metric
    assert status == 200 and only_params["chosen"] == [] and only_params["metrics"] == default["metrics"]

    status, body = api("compare", params=[*runs, ("metrics", "accuracy_score,worst_slice.recal")])
    assert status == 400 and body["error"] == "bad_request"
    assert "'worst_slice.recal'" in body["message"] and "worst_slice.recall_score" in body["message"]
    assert "Choose among: roc_auc, accuracy_score" in body["message"]
    status, body = api("compare", params=[*runs, ("params", "alpha")])
    assert status == 400 and "parameter 'alpha'" in body["message"] and "Choose among: C" in body["message"]
    status, body = api("compare", params=[("run", a), ("run", "no-such-run"), ("metrics", "roc_auc")])
    assert status == 404  # an unknown run is still not found, whatever the metrics


def _train(accuracy: float) -> str:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    X = np.random.RandomState(0).rand(40, 3)
    y = (X[:, 0] > 0.5).astype(int)
    with mnb.start_run("train", kind="job") as job, mnb.stage("train"):
        mnb.log_model(LogisticRegression().fit(X, y), "model", input_example=X[:5])
        mnb.log_metrics({"accuracy": accuracy})
    assert mnb.flush(120)
    return job.run_id


def test_promote_moves_the_alias_through_the_gates_and_a_refusal_answers_409(api) -> None:
    good, bad = _train(0.93), _train(0.6)
    gate = {"require": ["accuracy >= 0.9"]}

    status, promoted = api("models/churn/promote", method="POST", body={"run_id": good, **gate})
    assert status == 200, promoted
    assert promoted["promoted"] and promoted["version"] == "1" and promoted["alias_version"] == "1"
    assert promoted["model"] == "train/model" and promoted["gates"][0]["ok"]

    status, refused = api("models/churn/promote", method="POST", body={"run_id": bad, **gate})
    assert status == 409 and refused["error"] == "conflict" and not refused["promoted"]
    assert "accuracy >= 0.9" in refused["message"] and refused["gates"][0]["ok"] is False
    assert refused["version"] is None and refused["alias_version"] == "1"

    status, models = api("models")
    assert status == 200 and models == _json(reading.list_models())
    assert [(m["name"], m["aliases"], m["latest_version"]) for m in models["models"]] == [
        ("churn", {"champion": "1"}, "1")
    ]
    status, model = api("models/churn")
    assert status == 200 and model == _json(reading.model_detail("churn"))
    assert [v["version"] for v in model["versions"]] == ["1"] and model["aliases"] == {"champion": "1"}
    assert model["versions"][0]["evidence"]["mlops_nb.source_run"] == good
    assert model["versions"][0]["evidence"]["mlops_nb.promotion.status"] == "promoted"
    assert model["last_monitor"] is None


def test_a_posted_job_runs_in_the_background_and_is_followed_to_its_end(api, project: Path, jp_asyncio_loop) -> None:
    write_notebook(project / "notebooks" / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    started = time.monotonic()
    status, job = api("jobs", method="POST", body={"notebook": "notebooks/pipe.ipynb", "parameters": {"scale": 2.0}})
    assert time.monotonic() - started < 2, "the server waited for the job"
    assert status == 202 and job["status"] == "running" and job["notebook"] == "notebooks/pipe.ipynb"
    assert api("status")[0] == 200  # the server answers while the job runs
    deadline = time.monotonic() + 240
    while job["status"] == "running":
        assert time.monotonic() < deadline, job
        jp_asyncio_loop.run_until_complete(asyncio.sleep(0.3))
        status, job = api(f"jobs/{job['id']}")
        assert status == 200
        assert job["status"] != "running" or job["exit_code"] is None
    assert job["status"] == "succeeded" and job["exit_code"] == 0 and job["outcome"] == "succeeded", job
    assert "OK (succeeded)" in job["log_tail"]
    detail = reading.run_detail(job["run_id"])
    assert detail["kind"] == "job" and detail["params"] == {"n": "10", "scale": "2.0", "label": "a"}
    assert detail["notebook"] == str(project / "notebooks" / "pipe.ipynb")
    assert [s["stage"] for s in detail["stages"]] == ["load", "score"]

    status, failed = api("jobs", method="POST", body={"notebook": "notebooks/pipe.ipynb", "parameters": {"nope": 1}})
    assert status == 202
    while failed["status"] == "running":
        jp_asyncio_loop.run_until_complete(asyncio.sleep(0.3))
        failed = api(f"jobs/{failed['id']}")[1]
    assert failed["exit_code"] == 2 and failed["run_id"] is None and "nope" in failed["log_tail"]


RECORD_A_STAGE = """
import sys, time
import mlops_nb as mnb
with mnb.start_run("live", kind="notebook"):
    with mnb.stage("prepare"):
        pass
    sys.stdin.readline()  # the test is listening: go on
    with mnb.stage("train"):
        mnb.log_metric("accuracy", 0.75)
        time.sleep(0.3)
    print(time.time(), flush=True)
    sys.stdin.readline()
"""


RECORD_IN_A_KERNEL = """
import mlops_nb as mnb
with mnb.start_run("from-the-kernel", kind="notebook"):
    mnb.log_metric("m", 1.0)
assert mnb.flush(60)
"""


def test_a_run_that_ended_has_its_files_walked_once_and_a_running_one_every_time(api, project: Path) -> None:
    from mlflow import MlflowClient

    (project / "report.txt").write_text("r")
    with mnb.start_run("ended", kind="job") as run:
        mnb.log_artifact(project / "report.txt")
    assert mnb.flush(60)
    client = MlflowClient(f"sqlite:///{project / '.mlops_nb' / 'mlflow.db'}")
    running = client.create_run(client.get_run(run.run_id).info.experiment_id, run_name="running").info.run_id
    client.log_artifact(running, str(project / "report.txt"))

    def files(run_id: str) -> list[str]:
        status, view = api(f"runs/{run_id}")
        assert status == 200, view
        return [a["path"] for a in view["artifacts"]]

    assert "report.txt" in files(run.run_id) and files(running) == ["report.txt"]
    (project / "notes.txt").write_text("n")
    client.log_artifact(running, str(project / "notes.txt"))
    assert files(running) == ["notes.txt", "report.txt"]  # a running run's files are read again
    artifacts = project / ".mlops_nb" / "artifacts"
    artifacts.rename(project / "moved")  # the artifact store gone: an ended run's files are not walked again
    assert "report.txt" in files(run.run_id)
    assert files(running) == []


def test_a_kernel_in_a_subfolder_records_into_the_store_the_server_reads(
    api, jp_serverapp, jp_asyncio_loop, project: Path
) -> None:
    assert not any((folder / "pyproject.toml").exists() for folder in (project, *project.parents))
    (project / "notebooks").mkdir()
    manager = jp_serverapp.kernel_manager
    kernel_id = jp_asyncio_loop.run_until_complete(manager.start_kernel(path="notebooks"))  # as Lab starts one
    client = manager.get_kernel(kernel_id).client()
    client.start_channels()
    errors: list[str] = []

    async def record() -> dict[str, Any]:
        await client.wait_for_ready(timeout=60)
        hook = lambda m: errors.extend(m["content"].get("traceback", []))  # noqa: E731
        return await client.execute_interactive(RECORD_IN_A_KERNEL, timeout=120, output_hook=hook)

    try:
        reply = jp_asyncio_loop.run_until_complete(record())
        assert reply["content"]["status"] == "ok", "\n".join(errors)
    finally:
        client.stop_channels()
        jp_asyncio_loop.run_until_complete(manager.shutdown_kernel(kernel_id, now=True))
    assert not (project / "notebooks" / ".mlops_nb").exists()
    status, page = api("runs")
    assert status == 200
    assert [r["name"] for r in page["runs"]] == ["from-the-kernel"]


def test_a_stage_end_reaches_the_event_bus_within_a_second(jp_serverapp, jp_asyncio_loop, project: Path) -> None:
    loop = jp_asyncio_loop
    loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())
    events: list[tuple[float, dict[str, Any]]] = []

    async def listener(logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        events.append((time.time(), data))

    jp_serverapp.event_logger.add_listener(schema_id=STAGE_EVENT_SCHEMA, listener=listener)
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    env["MLOPS_NB_NOTEBOOK"] = str(project / "work" / "live.ipynb")
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(RECORD_A_STAGE)],
        cwd=project,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:

        async def until(test: Any, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            while not test():
                assert time.monotonic() < deadline, events
                await asyncio.sleep(0.05)

        loop.run_until_complete(until(lambda: any(e["stage"] == "prepare" for _, e in events), 60))
        process.stdin.write("\n")
        process.stdin.flush()
        ended = loop.run_until_complete(loop.run_in_executor(None, process.stdout.readline))
        loop.run_until_complete(
            until(lambda: any(e["stage"] == "train" and e["status"] != "RUNNING" for _, e in events), 5)
        )
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.wait(60) == 0
    finally:
        process.kill()
    train = [(t, e) for t, e in events if e["stage"] == "train"]
    assert [e["status"] for _, e in train] == ["RUNNING", "FINISHED"]
    arrived, end = train[1]
    assert arrived - float(ended) < 1.0, f"the stage end arrived {arrived - float(ended):.2f} s after the cell"
    assert end["notebook"] == "work/live.ipynb" and end["cache_hit"] is False
    assert end["metrics"] == {"accuracy": 0.75} and end["duration_s"] >= 0.3 and end["run_key"]
    assert end["time"] <= arrived * 1000


def _token(payload: Any) -> str:
    import base64

    return base64.b64encode(json.dumps(payload).encode()).decode()


def test_bad_input_that_broke_the_server_answers_400_and_leaves_nothing_behind(api, project: Path) -> None:
    write_notebook(project / "nb.ipynb", "x = 1", parameters="C = 1.0")
    deep = "[" * 100_000 + "]" * 100_000
    for body, message in [
        (deep, "nested too deeply"),
        ('{"notebook": "\\ud800.ipynb"}', "lone surrogate"),
        ({"notebook": "a" * 300 + ".ipynb"}, "longer than a path can be"),
        ({"notebook": "nb.ipynb", "parameters": {"C": "x" * 200_000}}, "at most 6,000"),
        ({"notebook": "nb.ipynb", "parameters": {"not a name": 1}}, "not a Python name"),
        ({"notebook": "nb.ipynb", "parameters": {"C": "caf\udce9"}}, "lone surrogate"),
    ]:
        status, answer = api("jobs", method="POST", body=body)
        assert (status, answer["error"]) == (400, "bad_request") and message in answer["message"], (body, answer)
    status, answer = api("models/churn/promote", method="POST", body=deep)
    assert status == 400 and "nested too deeply" in answer["message"]
    jobs = project / ".mlops_nb" / "server-jobs"
    assert not jobs.exists() or not list(jobs.iterdir()), "a refused job left its folder"
    for params, message in [  # a query cannot carry a lone surrogate: tornado decodes its bytes with U+FFFD
        ({"path": "b" * 300 + ".ipynb"}, "longer than a path can be"),
        ({"page_token": _token({"offset": 2**63})}, "not a page token"),
        ({"page_token": _token([1, 2])}, "not a page token"),
        ({"page_token": _token({"offset": True})}, "not a page token"),
        ({"page_token": "%%%"}, "not a page token"),
    ]:
        status, answer = api("notebook" if "path" in params else "runs", params=params)
        assert (status, answer["error"]) == (400, "bad_request") and message in answer["message"], (params, answer)


def test_a_body_over_the_limit_answers_413_and_the_server_goes_on(api) -> None:
    from mlops_nb.server.handlers import MAX_BODY

    status, answer = api("jobs", method="POST", body=json.dumps({"notebook": "x" * (2 * MAX_BODY)}))
    assert (status, answer["error"]) == (413, "too_large"), answer
    assert api("status")[0] == 200
    status, answer = api("jobs", method="POST", body=json.dumps({"notebook": "nb.ipynb", "pad": "x" * (MAX_BODY // 2)}))
    assert status == 400 and "is not a notebook file" in answer["message"]  # read whole, off the loop


def test_graph_answers_the_notebooks_stage_graph_and_refuses_paths_outside_the_root(api, project: Path) -> None:
    write_notebook(project / "nbs" / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    status, graph = api("graph", params={"path": "nbs/pipe.ipynb"})
    assert status == 200
    assert graph["notebook"] == "nbs/pipe.ipynb"  # as given: no absolute path of the server's machine
    assert [s["name"] for s in graph["stages"]] == ["load", "score"]
    assert graph["edges"] == [{"from": "load", "to": "score", "names": ["data"]}]
    assert graph["parameters"] == {"label": "a", "n": 10, "scale": 1.0} and graph["problems"] == []
    assert api("graph", params={"path": "../outside.ipynb"})[0] == 400
    assert api("graph", params={"path": "nbs/missing.ipynb"})[0] == 404
    assert api("graph")[0] == 400
