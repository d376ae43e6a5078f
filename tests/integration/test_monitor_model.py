"""``mlops-nb monitor MODEL_URI``: a real model logged with mnb.log_model in a real store, its stored reference,
the monitor's MLflow run and version tag, the HTML report, the served model's prediction log, webhooks."""

from __future__ import annotations

import http.server
import json
import re
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mlops_nb.cli import main
from tests.conftest import embedded_client, python
from tests.integration.test_monitor import SHIFTED, cli, drifted, training

HOSTILE = '<img src=x onerror="alert(1)">'  # a column name: must reach the HTML report as text
TRAIN = """
import mlops_nb as mnb
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

X = pd.read_parquet("train.parquet")
y = pd.read_parquet("labels.parquet")["churn"]
model = make_pipeline(
    make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
        remainder=make_pipeline(SimpleImputer(), StandardScaler()),
    ),
    LogisticRegression(max_iter=1000),
).fit(X[:4000], y[:4000])
with mnb.start_run("train", kind="job"), mnb.stage("train"):
    mnb.log_model(model, "model", input_example=X[:5], reference=X, reference_y=y if WITH_LABELS else None)
assert mnb.flush(120)
"""


def labels_of(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(np.where((frame["age"] > 40) & (frame["city"] != "Nice"), "yes", "no"), name="churn")


def train(project: Path, name: str = "churn", with_labels: bool = True) -> str:
    """Train and log the model in a fresh interpreter; register it as NAME version 1, alias champion."""
    frame = training(5000, 0)
    frame.to_parquet(project / "train.parquet")
    labels_of(frame).to_frame().to_parquet(project / "labels.parquet")
    done = python(TRAIN.replace("WITH_LABELS", str(with_labels)), cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    client = embedded_client(project)
    (run, *_) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "tags.`mlops_nb.stage` = 'train'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    client.create_registered_model(name)
    version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    return run.info.run_id


def monitor(*args: Any) -> Any:
    return CliRunner().invoke(main, ["monitor", *map(str, args)])


def problems(result: dict) -> set[tuple[str, str]]:
    return {(p["column"], p["check"]) for p in result["validation"]["problems"]}


def fetches(page: str) -> list[str]:
    """Every URL the page would load: the src/href/xlink:href/action attributes of its elements (SVG's too),
    and url()/@import in its styles."""
    import html.parser

    found: list[str] = []

    class Parser(html.parser.HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.extend(v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action", "srcset", "poster"))
            found.extend(re.findall(r"url\(\s*['\"]?([^)'\"]+)", dict(attrs).get("style") or ""))

        def handle_data(self, data: str) -> None:
            if self.lasttag == "style":
                found.extend(re.findall(r"url\(\s*['\"]?([^)'\"]+)", data))
                found.extend(re.findall(r"@import\s+['\"]?([^'\";]+)", data))

    Parser().feed(page)
    return [u for u in found if not u.startswith("#")]


def test_the_stored_reference_beside_the_model(project: Path) -> None:
    import mlflow.sklearn

    run_id = train(project)
    folder = Path(embedded_client(project).download_artifacts(run_id, "model", str(project / "dl")))
    sample = pq.read_table(folder / "reference_sample.parquet").to_pandas()
    frame = training(5000, 0)
    model = mlflow.sklearn.load_model(str(folder))
    assert len(sample) == 5000  # every row up to 100,000
    pd.testing.assert_frame_equal(sample.drop(columns="prediction"), frame)
    assert sample["prediction"].tolist() == model.predict(frame).tolist()
    scores = pq.read_table(folder / "reference_scores.parquet").to_pandas()
    assert list(scores.columns) == ["score_no", "score_yes", "label", "prediction"]
    np.testing.assert_allclose(scores[["score_no", "score_yes"]].to_numpy(), model.predict_proba(frame))
    assert scores["label"].tolist() == labels_of(frame).tolist()
    profile = json.loads((folder / "reference_profile.json").read_text())
    assert profile["schema_version"] == 2 and profile["rows"] == 5000
    edges = profile["columns"]["visits"]["psi"]["edges"]  # Poisson counts: equal deciles merged
    assert edges == sorted(set(edges)) and len(edges) < 9


def test_monitor_a_registered_model_flags_the_shifts_records_a_run_and_tags_the_version(project: Path) -> None:
    from mlops_nb.tracking.reading import lineage, list_runs

    train(project)
    current = drifted(4000, 1)
    current[HOSTILE] = "x"  # an unexpected column with a hostile name
    current.to_csv(project / "current.csv", index=False)
    training(4000, 2).to_csv(project / "same.csv", index=False)

    done = cli(  # the real command, in its own process: what it recorded is in MLflow once it has exited
        "models:/churn@champion",
        "--data",
        "current.csv",
        "--json",
        "out.json",
        "--report",
        "r.html",
        "--fail-on-drift",
        cwd=project,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    result = json.loads((project / "out.json").read_text())
    assert {n for n, f in result["features"].items() if f["drift"]} == SHIFTED
    assert problems(result) == {
        ("balance", "missing_column"),
        ("tenure", "empty"),
        ("city", "unseen_category"),
        (HOSTILE, "unexpected_column"),
    }
    assert (result["model"], result["version"], result["rows"]) == ("churn", "1", 4000)
    assert re.fullmatch(r"[0-9a-f]{32}", result["run_id"])
    # KS needs the stored sample: a model's monitor has every method, as with the training data at hand
    assert set(result["features"]["age"]["scores"]) == {"ks", "wasserstein", "psi"}

    html = (project / "r.html").read_text()
    assert fetches(html) == [] and "Content-Security-Policy" in html and "default-src 'none'" in html
    assert HOSTILE not in html and "&lt;img src=x onerror=" in html
    assert html.count("<svg") >= 1 + len(result["features"]) - 1  # scores + a plot per drawn feature
    assert "Dataset drift: 3 of 6 features drifted" in html

    # The run in MLflow: kind, model, metrics, artifacts; the version's tag; lineage lists it.
    client = embedded_client(project)
    run = client.get_run(result["run_id"])
    assert run.data.tags["mlops_nb.kind"] == "monitor" and run.data.tags["mlops_nb.model"] == "churn/1"
    assert run.info.status == "FINISHED"
    assert run.data.metrics["dataset_drift"] == 1.0 and run.data.metrics["drift_share"] == pytest.approx(0.5)
    assert run.data.metrics["drift.age"] == 1.0 and run.data.metrics["drift.plan"] == 0.0
    assert {a.path for a in client.list_artifacts(run.info.run_id, "monitor")} == {
        "monitor/result.json",
        "monitor/report.html",
    }
    stored = json.loads(
        Path(client.download_artifacts(run.info.run_id, "monitor/result.json", str(project))).read_text()
    )
    assert stored == result
    last = json.loads(client.get_model_version("churn", "1").tags["mlops_nb.monitor.last"])
    assert last["run_id"] == result["run_id"] and last["dataset_drift"] is True and last["drift_share"] == 0.5
    assert [m["run_id"] for m in lineage("models:/churn/1")["monitors"]] == [result["run_id"]]
    assert [r["run_id"] for r in list_runs(kind="monitor")["runs"]] == [result["run_id"]]  # mlops-nb runs --kind

    # Data like the training data: exit 0 even with --fail-on-drift; the tag follows the last monitor.
    done = monitor("models:/churn/1", "--data", "same.csv", "--fail-on-drift")
    assert done.exit_code == 0, done.output + done.stderr
    assert "No dataset drift" in done.output and "MLflow run: " in done.output
    last = json.loads(client.get_model_version("churn", "1").tags["mlops_nb.monitor.last"])
    assert last["dataset_drift"] is False and last["run_id"] != result["run_id"]
    assert len(lineage("models:/churn/1")["monitors"]) == 2

    # A run's model: monitored and recorded too, no version to tag.
    stage_run = client.get_model_version("churn", "1").run_id
    done = monitor(f"runs:/{stage_run}/model", "--data", "current.csv", "--json", "-")
    assert done.exit_code == 0, done.output + done.stderr
    by_run = json.loads(done.output)
    assert by_run["model"] == f"runs:/{stage_run}/model" and by_run["features"] == result["features"]


def test_bad_input_exits_2_naming_the_fix(project: Path) -> None:
    train(project, with_labels=False)
    training(300, 3).to_csv(project / "current.csv", index=False)
    cases = [
        (("models:/nope@champion", "--data", "current.csv"), "No model version 'models:/nope@champion'"),
        (("models:/churn@challenger", "--data", "current.csv"), "challenger"),
        (("models:/churn/9", "--data", "current.csv"), "not found"),
        (("runs:/0123456789abcdef0123456789abcdef/model", "--data", "current.csv"), "No run"),
        (("models:/churn/1",), "--data PATH or --logs DIR"),
        (("models:/churn/1", "--data", "current.csv", "--logs", "logs"), "--data PATH or --logs DIR"),
        (("models:/churn/1", "--logs", "nowhere"), "--logs nowhere: no such folder"),
        (("models:/churn/1", "--data", "current.csv", "--window", "1 fortnight"), "--window '1 fortnight'"),
        (("models:/churn/1", "--data", "current.csv", "--window", "1h"), "no column 'timestamp'"),
        (("models:/churn/1", "--data", "current.csv", "--window", "1h", "--timestamp", "city"), "--timestamp city"),
        (("models:/churn/1", "--data", "current.csv", "--webhook", "ftp://host/x"), "http:// or https://"),
        (("models:/churn/1", "--data", "nope.csv"), "nope.csv: no such file or folder"),
    ]
    client = embedded_client(project)
    for args, message in cases:
        done = monitor(*args)
        assert done.exit_code == 2, (args, done.output, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    # None of them recorded a monitor.
    assert not client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`mlops_nb.kind` = 'monitor'"
    )

    # A model logged without any reference: exit 2 saying what to do; --reference makes it work.
    done = python(
        "import mlops_nb as mnb\nfrom sklearn.dummy import DummyClassifier\n"
        "m = DummyClassifier().fit([[0], [1]], [0, 1])\n"
        "with mnb.start_run('bare', kind='job'), mnb.stage('train'):\n    mnb.log_model(m, 'model')\n"
        "assert mnb.flush(120)\n",
        cwd=project,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (bare,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "tags.`mlops_nb.stage` = 'train' and attributes.run_name != ''",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    done = monitor(f"runs:/{bare.info.run_id}/model", "--data", "current.csv")
    assert done.exit_code == 2
    assert "has no stored reference" in done.stderr and "--reference" in done.stderr
    assert "log_model(..., reference=" in done.stderr
    done = monitor(f"runs:/{bare.info.run_id}/model", "--data", "current.csv", "--reference", "train.parquet")
    assert done.exit_code == 0, done.output + done.stderr


def test_time_windows_on_data_and_in_the_run(project: Path) -> None:
    """Three days of data, the third shifted: a time series whose last window alone drifts, in the JSON, the
    run's metric history and the report."""
    train(project, with_labels=False)
    days = [training(1500, 10 + i) for i in range(3)]
    days[2]["age"] += 15  # four of the eight features move: the dataset drifts (share 0.5)
    days[2]["income"] *= 2
    days[2]["score"] += 0.5
    days[2]["visits"] += 4
    for i, day in enumerate(days):
        day["seen"] = (
            pd.Timestamp("2026-11-01", tz="UTC")
            + pd.Timedelta(days=i)
            + pd.to_timedelta(np.arange(1500) * 50, unit="s")
        )
    pd.concat(days[::-1]).to_parquet(project / "days.parquet")  # newest first: windows come out in time order

    done = monitor(
        "models:/churn@champion",
        "--data",
        "days.parquet",
        "--window",
        "1d",
        "--timestamp",
        "seen",
        "--json",
        "w.json",
        "--report",
        "w.html",
    )
    assert done.exit_code == 0, done.output + done.stderr
    result = json.loads((project / "w.json").read_text())
    windows = result["windows"]
    assert [w["start"] for w in windows] == ["2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"]
    assert [w["rows"] for w in windows] == [1500, 1500, 1500]
    assert [w["dataset_drift"] for w in windows] == [False, False, True]
    assert windows[2]["features"]["age"]["drift"] is True and windows[0]["features"]["age"]["drift"] is False
    assert "seen" not in result["features"] and ("seen", "unexpected_column") not in problems(result)

    history = embedded_client(project).get_metric_history(result["run_id"], "window.drift_share")
    assert [h.step for h in history] == [0, 1, 2]
    assert [h.timestamp for h in history] == [int(pd.Timestamp(w["start"]).timestamp() * 1000) for w in windows]
    assert "Over time" in (project / "w.html").read_text()

    done = monitor("models:/churn@champion", "--data", "days.parquet", "--window", "2000rows", "--json", "-")
    assert done.exit_code == 0, done.stderr
    rows = json.loads(done.output)["windows"]
    assert [(w["first_row"], w["rows"]) for w in rows] == [(0, 2000), (2000, 2000), (4000, 500)]
    assert rows[0]["dataset_drift"] is True  # read order: the shifted day comes first in the file


class _Hook(http.server.BaseHTTPRequestHandler):
    status = 200
    received: list[Any]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, json.loads(body)))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def hook_server(status: int) -> tuple[http.server.ThreadingHTTPServer, list[Any]]:
    received: list[Any] = []
    handler = type("Hook", (_Hook,), {"status": status, "received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


@pytest.mark.slow
def test_webhooks_get_the_summary_and_a_failing_one_loses_nothing(project: Path) -> None:
    train(project, with_labels=False)
    drifted(2000, 1).to_csv(project / "current.csv", index=False)
    client = embedded_client(project)
    ok, received = hook_server(200)
    broken, attempts = hook_server(500)
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        url = f"http://hook:s3cret@127.0.0.1:{ok.server_port}/services/T0KEN?token=abc"
        done = monitor("models:/churn/1", "--data", "current.csv", "--webhook", url, "--fail-on-drift")
        assert done.exit_code == 3, done.output + done.stderr
        ((path, summary),) = received
        assert path == "/services/T0KEN?token=abc"
        assert summary["model"] == "churn" and summary["version"] == "1" and summary["dataset_drift"] is True
        assert set(summary["drifted_features"]) == SHIFTED and summary["problems"] == 3
        # the one line a Slack incoming webhook shows (it refuses a body without text)
        assert summary["text"].startswith("mlops-nb monitor: churn version 1, 2000 rows: drift in ")
        assert summary["text"].endswith(f"; 3 data problem(s); run {summary['run_id']}")
        assert client.get_run(summary["run_id"]).data.tags["mlops_nb.kind"] == "monitor"

        for port, expected in ((broken.server_port, "answered HTTP 500"), (silent.getsockname()[1], "did not answer")):
            url = f"http://hook:s3cret@127.0.0.1:{port}/services/T0KEN"
            report = project / f"r{port}.html"
            start = time.monotonic()
            done = monitor(
                "models:/churn/1",
                "--data",
                "current.csv",
                "--webhook",
                url,
                "--webhook-timeout",
                "1",
                "--report",
                report,
                "--json",
                f"r{port}.json",
                "--fail-on-drift",
            )
            took = time.monotonic() - start
            assert done.exit_code == 3, done.output + done.stderr  # the verdict, not the webhook, sets it
            assert expected in done.stderr and "the report and the run are kept" in done.stderr
            assert "s3cret" not in done.stderr and "T0KEN" not in done.stderr
            assert "127.0.0.1" in done.stderr
            assert took < 30, took  # 3 attempts of at most 1 s, backoff 0.5 + 1 s, and the monitor itself
            assert report.stat().st_size > 1000
            run_id = json.loads((project / f"r{port}.json").read_text())["run_id"]
            assert client.get_run(run_id).info.status == "FINISHED"
        assert len(attempts) == 3  # 1 + 2 retries
    finally:
        ok.shutdown()
        broken.shutdown()
        silent.close()


@pytest.mark.slow
def test_mnb_monitor_in_a_notebook_displays_the_report_and_chromium_renders_it_offline(project: Path) -> None:
    import nbformat
    from nbclient import NotebookClient
    from playwright.sync_api import sync_playwright

    from tests.notebooks import write_notebook

    train(project, with_labels=False)
    drifted(2000, 1).to_csv(project / "current.csv", index=False)
    path = write_notebook(
        project / "watch.ipynb",
        "import mlops_nb as mnb, pandas as pd\n"
        "outcome = mnb.monitor('models:/churn@champion', pd.read_csv('current.csv'), report='nb.html')\noutcome",
        "print(outcome.run_id, outcome.dataset_drift)",
    )
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(project)}}).execute()
    (shown,) = [o for o in nb.cells[0].outputs if o.output_type == "execute_result"]
    html = shown.data["text/html"]
    assert "<svg" in html and "Dataset drift: 3 of 6 features drifted" in html and fetches(html) == []
    run_id, drift = nb.cells[1].outputs[0].text.split()
    assert drift == "True" and embedded_client(project).get_run(run_id).data.tags["mlops_nb.kind"] == "monitor"

    # The report file in a real browser: nothing requested but the file, every plot drawn, no CSP violation.
    report = project / "nb.html"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1250, "height": 900})
        requests: list[str] = []
        problems_seen: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: problems_seen.append(m.text) if m.type in ("error", "warning") else None)
        page.goto(report.as_uri())
        sizes = page.eval_on_selector_all("svg", "els => els.map(e => e.getBoundingClientRect().width)")
        page.screenshot(path=str(project / "report.png"), full_page=True)
        browser.close()
    assert requests == [report.as_uri()]
    assert problems_seen == []
    assert len(sizes) >= 7 and min(sizes) > 200  # scores + one per drawn feature, all laid out

    # import mlops_nb stays light: the report's libraries load on first use
    done = python(
        "import sys, mlops_nb\nheavy = {'matplotlib', 'mlflow', 'pandas', 'urllib3', 'jinja2'} & set(sys.modules)\n"
        "assert not heavy, heavy\n",
        cwd=project,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_a_prediction_column_in_the_data_is_monitored_as_prediction_drift(project: Path) -> None:
    """Scored data (a batch job's output, say) carries the model's predictions: they are compared with the
    predictions stored beside the model, not reported as an unexpected column."""
    train(project)
    scored = training(4000, 2)  # inputs like the training data's ...
    scored["prediction"] = "yes"  # ... but the model now says "yes" to everyone
    scored.to_csv(project / "scored.csv", index=False)
    done = monitor("models:/churn/1", "--data", "scored.csv", "--json", "-")
    assert done.exit_code == 0, done.output + done.stderr
    result = json.loads(done.output)
    assert result["features"]["prediction"]["drift"] and result["features"]["prediction"]["kind"] == "categorical"
    assert ("prediction", "unexpected_column") not in problems(result)
    assert not any(f["drift"] for name, f in result["features"].items() if name != "prediction")


def test_the_served_models_prediction_log_windowed(project: Path) -> None:
    """Export the model, serve it as a real process with prediction logging on, send normal then shifted
    rows, and monitor its log: the shifted window drifts, predictions included; the model's accuracy on the
    logged rows is estimated without labels from its stored held-out scores."""
    from tests.integration.test_export import Server, child_env, export

    train(project)
    assert export("models:/churn@champion", "--out", "pkg").exit_code == 0
    logs = project / "served-logs"
    normal = training(1000, 7)
    shifted = training(1000, 8)
    shifted["age"] += 15
    shifted["income"] *= 2
    shifted["score"] = shifted["score"] / 2
    shifted.loc[shifted.index[::3], "city"] = "Atlantis"  # unknown: flagged by the server, still scored
    env = child_env(SERVING_LOG_PREDICTIONS="1", SERVING_LOG_DIR=str(logs))
    with Server([sys.executable, "-m", "app", "--port", "{port}"], project / "pkg", "/ready", env=env) as server:
        for frame in (normal, shifted):
            for start in range(0, len(frame), 250):
                records = json.loads(frame.iloc[start : start + 250].to_json(orient="records"))
                status, answer = server.post("/invocations", {"dataframe_records": records})
                assert status == 200, answer
        deadline = time.monotonic() + 30
        while sum(len(p.read_text().splitlines()) for p in logs.glob("predictions-*.jsonl*")) < 2000:
            assert time.monotonic() < deadline, "the server did not log every prediction"
            time.sleep(0.2)

    done = monitor("models:/churn@champion", "--logs", logs, "--window", "1000rows", "--json", "logs.json")
    assert done.exit_code == 0, done.output + done.stderr
    result = json.loads((project / "logs.json").read_text())
    assert result["rows"] == 2000 and "prediction" in result["features"]
    first, second = result["windows"]
    assert (first["rows"], second["rows"]) == (1000, 1000)
    assert first["dataset_drift"] is False and second["dataset_drift"] is True
    assert {n for n, f in second["features"].items() if f["drift"]} >= {"age", "income", "score", "city", "prediction"}
    assert not {n for n, f in first["features"].items() if f["drift"]}  # (with a few hundred rows, noise can drift)
    assert "time" not in result["features"]  # the log's time orders the windows; it is not a feature
    estimate = result["performance"]["label_free"]
    assert estimate["rows"] == 2000 and estimate["realised"] is None  # the log has no labels
    assert 0.0 <= estimate["estimated"]["accuracy"] <= 1.0

    done = monitor("models:/churn@champion", "--logs", logs, "--window", "1h", "--json", "-")
    assert done.exit_code == 0, done.stderr
    assert sum(w["rows"] for w in json.loads(done.output)["windows"]) == 2000


def test_labels_give_realised_performance_beside_the_training_one(project: Path) -> None:
    import mlflow.sklearn
    from sklearn.metrics import accuracy_score, f1_score

    train(project)
    now = training(2000, 4)
    now["churn"] = labels_of(now)
    now.loc[now.index[::2], "churn"] = np.where(now["churn"][::2] == "yes", "no", "yes")  # half of them flipped
    now.to_csv(project / "labelled.csv", index=False)
    done = monitor("models:/churn/1", "--data", "labelled.csv", "--labels", "churn", "--json", "-")
    assert done.exit_code == 0, done.output + done.stderr
    result = json.loads(done.output)
    assert "churn" not in result["features"] and result["validation"]["ok"]  # the label is not a feature
    performance = result["performance"]
    model = mlflow.sklearn.load_model(embedded_client(project).get_model_version_download_uri("churn", "1"))
    predicted = model.predict(now.drop(columns="churn"))
    assert performance["source"] == "labels" and performance["rows"] == 2000 and performance["task"] == "classification"
    assert performance["metrics"]["accuracy"] == pytest.approx(accuracy_score(now["churn"], predicted))
    assert performance["metrics"]["f1_macro"] == pytest.approx(f1_score(now["churn"], predicted, average="macro"))
    frame = training(5000, 0)  # at training: the stored scores' labels and predictions
    assert performance["reference"]["accuracy"] == pytest.approx(accuracy_score(labels_of(frame), model.predict(frame)))
    assert performance["metrics"]["accuracy"] < performance["reference"]["accuracy"] - 0.3

    # Rows the model cannot predict (an input column gone): exit 2 naming it.
    now.drop(columns="balance").to_csv(project / "partial.csv", index=False)
    done = monitor("models:/churn/1", "--data", "partial.csv", "--labels", "churn")
    assert done.exit_code == 2 and "lack balance" in done.stderr, done.stderr
    done = monitor("models:/churn/1", "--data", "labelled.csv", "--labels", "outcome")
    assert done.exit_code == 2 and "--labels outcome: the data has no such column" in done.stderr


def test_labels_with_windows_give_each_windows_realised_performance(project: Path) -> None:
    """Two days of labelled rows, the second with half its labels flipped: each window has its own realised
    accuracy, in the JSON and as the run's metric history; the whole-data figure covers both."""
    import mlflow.sklearn
    from sklearn.metrics import accuracy_score

    train(project)
    days = [training(1500, 20 + i) for i in range(2)]
    for i, day in enumerate(days):
        day["churn"] = labels_of(day)
        day["seen"] = (
            pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(days=i) + pd.to_timedelta(np.arange(1500), "s")
        )
    days[1].loc[days[1].index[::2], "churn"] = np.where(days[1]["churn"][::2] == "yes", "no", "yes")
    pd.concat(days).to_parquet(project / "labelled.parquet")

    args = ["--labels", "churn", "--window", "1d", "--timestamp", "seen", "--json", "w.json", "--report", "w.html"]
    done = monitor("models:/churn/1", "--data", "labelled.parquet", *args)
    assert done.exit_code == 0, done.output + done.stderr
    result = json.loads((project / "w.json").read_text())
    model = mlflow.sklearn.load_model(embedded_client(project).get_model_version_download_uri("churn", "1"))
    first, second = result["windows"]
    for window, day in zip((first, second), days, strict=True):
        expected = accuracy_score(day["churn"], model.predict(day.drop(columns=["churn", "seen"])))
        assert window["performance"]["rows"] == 1500
        assert window["performance"]["metrics"]["accuracy"] == pytest.approx(expected)
    assert second["performance"]["metrics"]["accuracy"] < first["performance"]["metrics"]["accuracy"] - 0.3
    assert result["performance"]["rows"] == 3000  # the whole data's figure covers both windows
    history = embedded_client(project).get_metric_history(result["run_id"], "window.accuracy")
    assert [h.step for h in history] == [0, 1]
    assert [h.value for h in history] == [w["performance"]["metrics"]["accuracy"] for w in (first, second)]
    assert "Over time" in (project / "w.html").read_text()


class _Payload:
    """A pickle that writes a file when it is loaded: the code a stranger's model file can run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_labels_never_load_a_pickled_model(project: Path) -> None:
    """--labels predicts with the model, loaded as export loads it: a pickle (code of whoever logged the
    model) is refused, never unpickled."""
    import pickle

    import yaml

    run_id = train(project)
    client = embedded_client(project)
    folder = Path(client.download_artifacts(run_id, "model", str(project / "dl")))
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["sklearn"]
    (folder / flavor["pickled_model"]).unlink()
    marker = project / "unpickled"
    (folder / "model.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    flavor.update(serialization_format="cloudpickle", pickled_model="model.pkl")
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    run = client.create_run(client.get_run(run_id).info.experiment_id)
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.set_terminated(run.info.run_id)
    client.create_model_version("churn", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)

    now = training(500, 4)
    now["churn"] = labels_of(now)
    now.to_csv(project / "labelled.csv", index=False)
    done = monitor("models:/churn/2", "--data", "labelled.csv", "--labels", "churn")
    assert done.exit_code == 2 and "saved as a pickle" in done.stderr, done.output + done.stderr
    assert not marker.exists()
