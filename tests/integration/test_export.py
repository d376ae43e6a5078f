"""``mlops-nb export``: the generated serving package against the model, against ``mlops-nb models serve``'s
answers, with its own tests, in a fresh virtual environment, and with a tampered model file."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import mlops_nb as mnb
from mlops_nb.cli import main
from mlops_nb.exceptions import ExportError
from mlops_nb.serving.export import parse_uri
from mlops_nb.serving.schema import SchemaError, input_schema
from tests.conftest import SETTING_VARS, embedded_client, free_port, python

TRAIN_FRAME = """
import mlops_nb as mnb
import numpy as np, pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

rng = np.random.default_rng(0)
X = pd.DataFrame(rng.normal(size=(400, 3)), columns=["sepal length", "b", "class"])
X["color"] = rng.choice(["red", "green", "blue"], size=400)
X["n"] = rng.integers(0, 10, size=400)
y = np.where(X["sepal length"] + (X["color"] == "red") > 0.5, "yes", "no")
model = make_pipeline(
    make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["color"]), remainder=StandardScaler()),
    LogisticRegression(),
).fit(X, y)
with mnb.start_run("nb", kind="job"), mnb.stage("train"):
    mnb.log_model(model, "model", input_example=X[:6], reference=X)
assert mnb.flush(120)
"""
TRAIN_ARRAY = """
import mlops_nb as mnb
import numpy as np
from sklearn.linear_model import Ridge

rng = np.random.default_rng(1)
X = rng.normal(size=(300, 4))
model = Ridge().fit(X, X @ [1.0, 2.0, 3.0, 4.0])
with mnb.start_run("nb", kind="job"), mnb.stage("train"):
    mnb.log_model(model, "model", input_example=X[:5], reference=X)
assert mnb.flush(120)
"""
# missing values in the input example: NaN in an optional string column (the first column) and in a float
# column; a datetime column the model drops
TRAIN_MISSING = """
import mlops_nb as mnb
import numpy as np, pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

rng = np.random.default_rng(2)
X = pd.DataFrame({
    "colour": rng.choice(["red", "green", "blue"], size=300).astype(object),
    "size": rng.normal(10, 2, size=300),
    "seen at": pd.date_range("2024-01-01", periods=300, freq="h"),
    "n": rng.integers(0, 10, size=300),
})
X.loc[::7, "colour"] = np.nan
X.loc[::5, "size"] = np.nan
y = ((X["colour"] == "red") | (X["size"] > 11)).astype(int)
colour = make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(handle_unknown="ignore"))
model = make_pipeline(
    make_column_transformer(
        (colour, ["colour"]), (SimpleImputer(), ["size"]), ("drop", ["seen at"]), remainder="passthrough"
    ),
    LogisticRegression(),
).fit(X, y)
with mnb.start_run("nb", kind="job"), mnb.stage("train"):
    mnb.log_model(model, "model", input_example=X[:5], reference=X)
assert mnb.flush(120)
"""
# two outputs per row: a classifier (refused) and a regressor (served)
TRAIN_MULTI_OUTPUT = """
import mlops_nb as mnb
import numpy as np, pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Ridge

rng = np.random.default_rng(4)
X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
if CLASSIFIER:
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, np.c_[X.a > 0, X.b > 0].astype(int))
else:
    model = Ridge().fit(X, np.c_[X.a * 2, X.b * 3])
with mnb.start_run("nb", kind="job"), mnb.stage("train"):
    mnb.log_model(model, "model", input_example=X[:5], reference=X)
assert mnb.flush(120)
"""
TRAINERS = {
    "frame": TRAIN_FRAME,
    "array": TRAIN_ARRAY,
    "missing": TRAIN_MISSING,
    "multi-output classifier": TRAIN_MULTI_OUTPUT.replace("CLASSIFIER", "True"),
    "multi-output regressor": TRAIN_MULTI_OUTPUT.replace("CLASSIFIER", "False"),
}


def train(project: Path, kind: str = "frame", name: str = "demo") -> str:
    """Train and log a model in a fresh interpreter; register it as NAME version 1, alias champion."""
    out = python(TRAINERS[kind], cwd=project)
    assert out.returncode == 0, out.stderr[-3000:]
    client = embedded_client(project)
    (run, *_) = client.search_runs(  # the one just trained
        [e.experiment_id for e in client.search_experiments()],
        "tags.`mlops_nb.stage` = 'train'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    client.create_registered_model(name)
    version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    return run.info.run_id


def export(*args: str) -> Any:
    return CliRunner().invoke(main, ["export", *args])


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


class Server:
    """A real server process on 127.0.0.1, ready when ``ready_path`` answers 200."""

    def __init__(
        self, args: list[str], cwd: Path, ready_path: str, env: dict[str, str] | None = None, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (cwd.parent / f"server-{self.port}.log").open("w+")
        full = [a.replace("{port}", str(self.port)) for a in args]
        self.proc = subprocess.Popen(full, cwd=cwd, env=env or child_env(), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.output()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + ready_path, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server not ready in 180 s: {self.output()[-3000:]}")
            time.sleep(0.2)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def post(self, path: str, body: Any, content_type: str = "application/json") -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text.decode()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def strict_json(text: str) -> Any:
    """JSON as the standard has it: NaN and Infinity, which Python's json reads, are errors."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def readme_requests(readme: str) -> list[tuple[str, Any]]:
    """(path, body) of every curl example in a README, its arguments split as a shell splits them."""
    requests = []
    for command in re.findall(r"^curl .*?\\\n.*$", readme, flags=re.MULTILINE):
        args = shlex.split(command.replace("\\\n", " "))
        path = urllib.parse.urlsplit(args[2]).path
        requests.append((path, strict_json(args[args.index("-d") + 1])))
    return requests


def scoring_bodies(columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    return {
        "dataframe_split": {"dataframe_split": {"columns": columns, "data": rows}},
        "dataframe_records": {"dataframe_records": records},
        "instances": {"instances": records},
        "inputs": {"inputs": {c: [row[i] for row in rows] for i, c in enumerate(columns)}},
    }


# -- the schema from a signature (no MLflow needed) ---------------------------------------------------------


def test_input_schema_names_types_and_nullability() -> None:
    inputs = [
        {"type": "double", "name": "sepal length (cm)", "required": True},
        {"type": "long", "name": "class", "required": True},
        {"type": "string", "name": "colour", "required": False},
        {"type": "double", "name": "model_x", "required": True},
    ]
    profile = {"columns": {"class": {"missing_rate": 0.1}}}
    schema = input_schema({"inputs": json.dumps(inputs)}, profile)
    fields = [(c.name, c.field, c.annotation, c.required, c.dtype) for c in schema.columns]
    assert fields == [
        ("sepal length (cm)", "sepal_length_cm", "float", True, "float64"),
        ("class", "class_", "int | None", True, "float64"),  # missing values in training: nullable
        ("colour", "colour", "str | None", False, "object"),
        ("model_x", "model_x_", "float", True, "float64"),  # pydantic reserves model_*
    ]
    tensor = input_schema({"inputs": '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3]}}]'})
    assert tensor.tensor and [c.name for c in tensor.columns] == ["0", "1", "2"]
    for bad in (None, {"inputs": '[{"type": "binary", "name": "x"}]'}):
        with pytest.raises(SchemaError, match="input"):
            input_schema(bad)


def test_parse_uri_takes_registry_run_and_logged_model_uris() -> None:
    ref = parse_uri("models:/m-0123abcd0123abcd0123abcd0123abcd")
    assert (ref.model_id, ref.name, ref.run_id) == ("m-0123abcd0123abcd0123abcd0123abcd", None, None)
    assert (parse_uri("models:/m-ab/3").name, parse_uri("models:/m-ab/3").version) == ("m-ab", "3")  # a registry name
    assert parse_uri("models:/demo@champion").alias == "champion"
    assert parse_uri("runs:/abc123/model").run_id == "abc123"
    for bad in ("models:/m-", "models:/m-xyz", "models:/demo", "demo"):
        with pytest.raises(ExportError, match="models:/m-<model id>"):
            parse_uri(bad)


# -- the command -----------------------------------------------------------------------------------------------


def test_export_refuses_bad_uri_missing_model_and_non_empty_out(project: Path) -> None:
    result = export("demo", "--out", "pkg")
    assert result.exit_code == 2 and "models:/NAME@ALIAS" in result.output
    result = export("models:/nothing@champion", "--out", "pkg")
    assert result.exit_code == 2 and "No model version 'models:/nothing@champion' in MLflow at" in result.output
    assert result.output.count("nothing@champion") == 1 and result.output.count("sqlite:///") == 1, result.output
    assert "Registered model 'nothing' has no alias here: mlops-nb promote registers models" in result.output
    result = export(f"runs:/{'0' * 32}/model", "--out", "pkg")
    assert result.exit_code == 2 and f"No model 'runs:/{'0' * 32}/model'" in result.output
    with mnb.start_run("job", kind="job") as job:  # a job run: its models are in its stages
        mnb.log_metric("accuracy", 1.0)
    assert mnb.flush(60)
    result = export(f"runs:/{job.run_id}/model", "--out", "pkg")
    assert result.exit_code == 2 and "keeps its models in its stage runs" in result.output
    (project / "full").mkdir()
    (project / "full" / "keep.txt").write_text("mine")
    result = export("models:/nothing/1", "--out", "full")
    assert result.exit_code == 2 and "--force" in result.output
    assert (project / "full" / "keep.txt").read_text() == "mine"


def test_an_unknown_alias_is_said_once_with_the_aliases_the_model_has(project: Path) -> None:
    train(project)
    result = export("models:/demo@champoin", "--out", "pkg")
    assert result.exit_code == 2, result.output
    assert result.output.count("demo@champoin") == 1 and ".." not in result.output, result.output
    assert "demo has @champion (version 1)." in result.output
    assert not (project / "pkg").exists()


def test_export_writes_a_complete_package(project: Path) -> None:
    run_id = train(project)
    result = export("models:/demo@champion", "--out", "pkg")
    assert result.exit_code == 0, result.output
    pkg = project / "pkg"
    meta = json.loads((pkg / "model" / "serving.json").read_text())
    assert (meta["name"], meta["version"], meta["alias"], meta["run_id"]) == ("demo", "1", "champion", run_id)
    import hashlib

    assert meta["sha256"] == hashlib.sha256((pkg / "model" / "model.skops").read_bytes()).hexdigest()
    assert meta["format"] == "skops" and meta["trusted_types"] == []
    assert (pkg / "model" / "reference_profile.json").is_file()

    requirements = (pkg / "requirements.txt").read_text()
    pins = [line for line in requirements.splitlines() if line and not line.startswith("#")]
    assert not [line for line in pins if "mlflow" in line or "mlops" in line]
    from importlib import metadata

    for name in ("scikit-learn", "numpy", "pandas", "skops", "fastapi", "uvicorn", "pydantic", "prometheus-client"):
        assert f"{name}=={metadata.version(name)}" in requirements

    schema = (pkg / "app" / "schema.py").read_text()
    assert 'sepal_length: float = Field(alias="sepal length", allow_inf_nan=False)' in schema
    assert 'class_: float = Field(alias="class", allow_inf_nan=False)' in schema

    docs = list(yaml.safe_load_all((pkg / "k8s.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    container = docs[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    dockerfile = (pkg / "Dockerfile").read_text()
    assert "-slim" in dockerfile and "USER serving" in dockerfile and "HEALTHCHECK" in dockerfile
    readme = (pkg / "README.md").read_text()
    assert "curl" in readme and "dataframe_split" in readme
    assert [path for path, _ in readme_requests(readme)] == ["/invocations"] * 3 + ["/predict"]
    assert readme_requests(readme)[-1][1]["probabilities"] is True  # a classifier: it has them

    # generated code that a user would keep: lint-clean and formatted
    if shutil.which("ruff"):
        for command in (["ruff", "check", "--no-cache", "."], ["ruff", "format", "--check", "--no-cache", "."]):
            out = subprocess.run(command, cwd=pkg, capture_output=True, text=True)
            assert out.returncode == 0, out.stdout + out.stderr

    again = export("models:/demo/1", "--out", "pkg")
    assert again.exit_code == 2 and "--force" in again.output
    assert export("models:/demo/1", "--out", "pkg", "--force").exit_code == 0


def test_export_takes_an_mlflow_3_logged_model_by_its_id(project: Path) -> None:
    tracking = f"sqlite:///{project / '.mlops_nb' / 'mlflow.db'}"
    out = python(
        """
        import sys, mlflow, numpy as np, pandas as pd
        from sklearn.linear_model import LogisticRegression
        mlflow.set_tracking_uri(sys.argv[1])
        X = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
        with mlflow.start_run() as run:
            info = mlflow.sklearn.log_model(LogisticRegression().fit(X, X.a > 9), name="model", input_example=X[:3])
        print(info.model_id, run.info.run_id)
        """,
        cwd=project,
        args=(tracking,),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    model_id, run_id = out.stdout.split()
    result = export(f"models:/{model_id}", "--out", "pkg")
    assert result.exit_code == 0, result.output
    meta = json.loads((project / "pkg" / "model" / "serving.json").read_text())
    assert (meta["model_uri"], meta["run_id"], meta["name"]) == (f"models:/{model_id}", run_id, None)


# -- the package, running ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["frame", "array", "missing"])
def test_the_generated_tests_pass(project: Path, kind: str) -> None:
    train(project, kind)
    assert export("models:/demo@champion", "--out", "pkg").exit_code == 0
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project / "pkg",
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout


def health_check(dockerfile: str) -> str:
    """The command of the Dockerfile's HEALTHCHECK, as the image's shell runs it."""
    instruction = re.search(r"^HEALTHCHECK .*\\\n\s+CMD (.*)$", dockerfile, flags=re.MULTILINE)
    assert instruction is not None, dockerfile
    return instruction.group(1)


@pytest.mark.slow
def test_an_example_with_missing_values_gives_json_and_readme_examples_that_work(project: Path) -> None:
    train(project, "missing")
    assert export("models:/demo@champion", "--out", "pkg").exit_code == 0
    pkg = project / "pkg"
    example = strict_json((pkg / "tests" / "example.json").read_text())
    assert example["data"][0][:2] == [None, None]  # NaN in the example: null (JSON's missing value)
    assert strict_json((pkg / "model" / "input_example.json").read_text())["data"] == example["data"]
    requests = readme_requests((pkg / "README.md").read_text())
    assert [path for path, _ in requests] == ["/invocations"] * 3 + ["/predict"]
    port = free_port()
    # SERVING_PORT, not --port: the image's way, which its health check must follow
    env = child_env(SERVING_PORT=str(port))
    with Server([sys.executable, "-m", "app"], pkg, "/ready", env=env, port=port) as server:
        for path, body in requests:  # as pasted from the README
            status, answer = server.post(path, body)
            assert status == 200, (path, answer)
            assert answer["predictions"] == example["predictions"][:1], path
        assert "probabilities" in answer
        first = dict(zip(example["columns"], example["data"][0], strict=True))
        status, answer = server.post("/invocations", {"dataframe_records": [{**first, "colour": float("nan")}]})
        assert status == 400 and "column 'colour'" in answer["message"], answer
        assert "send null for a missing value" in answer["message"]

        command = health_check((pkg / "Dockerfile").read_text())  # python: the first on child_env's PATH
        for serving_port, healthy in ((port, True), (free_port(), False)):
            out = subprocess.run(
                ["sh", "-c", command], env=child_env(SERVING_PORT=str(serving_port)), capture_output=True, timeout=60
            )
            assert (out.returncode == 0) is healthy, (serving_port, out.stderr[-2000:])


@pytest.mark.slow
def test_multi_output_classifiers_are_refused_and_multi_output_regressors_served(project: Path) -> None:
    train(project, "multi-output classifier", name="labels")
    result = export("models:/labels@champion", "--out", "pkg")
    assert result.exit_code == 2, result.output
    assert "multi-output classifier" in result.output and "regressors with one or several outputs" in result.output
    assert "Traceback" not in result.output and not (project / "pkg").exists()

    import mlflow.sklearn
    import numpy as np
    import pandas as pd

    train(project, "multi-output regressor", name="values")
    assert export("models:/values@champion", "--out", "pkg").exit_code == 0
    pkg = project / "pkg"
    example = json.loads((pkg / "tests" / "example.json").read_text())
    client = embedded_client(project)
    model = mlflow.sklearn.load_model(client.get_model_version_download_uri("values", "1"))
    expected = model.predict(pd.DataFrame(example["data"], columns=example["columns"])).tolist()
    requests = readme_requests((pkg / "README.md").read_text())
    assert requests[-1] == ("/predict", {"records": [dict(zip(example["columns"], example["data"][0], strict=True))]})
    with Server([sys.executable, "-m", "app", "--port", "{port}"], pkg, "/ready") as server:
        for fmt, body in scoring_bodies(example["columns"], example["data"]).items():
            status, answer = server.post("/invocations", body)
            assert status == 200 and set(answer) == {"predictions"}, (fmt, answer)
            # rows x outputs; an array and a DataFrame may round the last bit differently
            assert np.shape(answer["predictions"]) == np.shape(expected), (fmt, answer)
            assert np.allclose(answer["predictions"], expected, rtol=1e-12, atol=0), (fmt, answer)
        for path, body in requests:  # no "probabilities": true for a model without them
            status, answer = server.post(path, body)
            assert status == 200 and np.allclose(answer["predictions"], expected[:1], rtol=1e-12, atol=0), answer


@pytest.mark.slow
def test_predictions_match_the_model_and_mlflow_models_serve(project: Path) -> None:
    import mlflow.sklearn
    import pandas as pd

    train(project)
    client = embedded_client(project)
    assert export("models:/demo@champion", "--out", "pkg").exit_code == 0
    example = json.loads((project / "pkg" / "tests" / "example.json").read_text())
    columns, rows = example["columns"], example["data"]
    rows = [*rows, [0.3, -1.2, 2.5, "purple", 3]]  # an unknown category: flagged, still scored

    tracking = f"sqlite:///{project / '.mlops_nb' / 'mlflow.db'}"
    model = mlflow.sklearn.load_model(client.get_model_version_download_uri("demo", "1"))
    frame = pd.DataFrame(rows, columns=columns).astype({"n": "int64"})
    expected = model.predict(frame).tolist()

    mlflow_cmd = ["mlflow", "models", "serve", "-m", "models:/demo@champion", "--env-manager", "local"]
    with (
        Server([sys.executable, "-m", "app", "--port", "{port}", "--workers", "2"], project / "pkg", "/ready") as ours,
        Server(
            [*mlflow_cmd, "-h", "127.0.0.1", "-p", "{port}"],
            project,
            "/ping",
            env=child_env(MLFLOW_TRACKING_URI=tracking),
        ) as theirs,
    ):
        for fmt, body in scoring_bodies(columns, rows).items():
            status, answer = ours.post("/invocations", body)
            assert status == 200, (fmt, answer)
            assert answer == {"predictions": expected}, fmt
            status, reference = theirs.post("/invocations", body)
            assert status == 200, (fmt, reference)
            assert reference == answer, fmt
        status, answer = ours.post("/predict", {"records": scoring_bodies(columns, rows)["instances"]["instances"]})
        assert status == 200 and answer["predictions"] == expected
        assert any("purple" in w for w in answer["warnings"])
        # bad requests: MLflow's error shape, a 4xx, the problem named
        first = dict(zip(columns, rows[0], strict=True))
        without = {k: v for k, v in first.items() if k != "sepal length"}
        for body, words in (
            (b'{"dataframe_split": {', "not valid JSON"),
            ({"dataframe_records": [{**first, "n": "three"}]}, "'n'"),
            ({"dataframe_records": [without]}, "missing column 'sepal length'"),
        ):
            status, answer = ours.post("/invocations", body)
            assert 400 <= status < 500 and words in answer["message"], answer
            assert set(answer) == {"error_code", "message"}
        with urllib.request.urlopen(ours.url + "/version") as r:
            version = json.loads(r.read())
        assert version["model_name"] == "demo" and version["model_version"] == "1"
        with urllib.request.urlopen(ours.url + "/metrics") as r:
            metrics = r.read().decode()
        # two workers, one document: prometheus' multiprocess mode adds them up
        assert 'serving_requests_total{endpoint="/invocations",status="200"} 4.0' in metrics
        assert 'serving_input_flags_total{column="color",flag="unknown_category"}' in metrics
        assert 'serving_predictions_total{label="yes"}' in metrics or 'serving_predictions_total{label="no"}' in metrics


def _workers(pid: int) -> list[int]:
    """The worker processes uvicorn's supervisor ``pid`` spawned (multiprocessing's spawn children)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
def test_the_server_runs_a_worker_per_core_on_uvloop_and_httptools_by_default(project: Path) -> None:
    train(project)
    assert export("models:/demo@champion", "--out", "pkg").exit_code == 0
    pkg = project / "pkg"
    requirements = (pkg / "requirements.txt").read_text()
    assert "uvloop==" in requirements and "httptools==" in requirements
    cores = len(os.sched_getaffinity(0))
    with Server([sys.executable, "-m", "app", "--port", "{port}"], pkg, "/ready") as server:
        deadline = time.monotonic() + 120
        while len(_workers(server.proc.pid)) < cores and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(_workers(server.proc.pid)) == cores
        line = f"serving on http://127.0.0.1:{server.port} with {cores} worker(s), uvloop, httptools"
        assert line in server.output(), server.output()[-2000:]
        status, answer = server.post("/invocations", scoring_bodies(*_example(pkg))["dataframe_split"])
        assert status == 200 and "predictions" in answer
    env = child_env(SERVING_WORKERS="1")
    with Server([sys.executable, "-m", "app", "--port", "{port}"], pkg, "/ready", env=env) as server:
        assert "with 1 worker(s), uvloop, httptools" in server.output()
        assert _workers(server.proc.pid) == []  # one worker: uvicorn serves in the process itself


def _example(pkg: Path) -> tuple[list[str], list[list[Any]]]:
    example = json.loads((pkg / "tests" / "example.json").read_text())
    return example["columns"], example["data"]


@pytest.mark.slow
def test_a_tampered_model_file_stops_the_server(project: Path) -> None:
    train(project)
    assert export("models:/demo@champion", "--out", "pkg").exit_code == 0
    pkg = project / "pkg"
    model_file = pkg / "model" / "model.skops"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    # serving.json beside the model agrees with the changed file: it is not what the server checks against
    import hashlib

    meta_file = pkg / "model" / "serving.json"
    meta = json.loads(meta_file.read_text())
    meta["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    meta["trusted_types"] = ["posix.system"]
    meta_file.write_text(json.dumps(meta))
    for command in (
        [sys.executable, "-m", "app", "--port", str(free_port())],
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(free_port())],
    ):
        out = subprocess.run(command, cwd=pkg, env=child_env(), capture_output=True, text=True, timeout=120)
        assert out.returncode != 0, command
        assert "sha256" in out.stderr and "refuses to start" in out.stderr, out.stderr[-2000:]
        assert "export the model again" in out.stderr


@pytest.mark.extended
@pytest.mark.slow
def test_a_fresh_virtual_environment_with_only_the_requirements_runs_the_package(project: Path) -> None:
    train(project)
    assert export("models:/demo@champion", "--out", "pkg").exit_code == 0
    pkg = project / "pkg"
    venv = project / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    env = child_env(PIP_DISABLE_PIP_VERSION_CHECK="1")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "-r", "requirements-dev.txt"],
        cwd=pkg,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    offline = ("Max retries exceeded", "Could not fetch URL", "Temporary failure in name resolution")
    if install.returncode != 0 and any(text in install.stderr for text in offline):
        pytest.skip(f"the package index cannot be reached: {install.stderr[-500:]}")
    assert install.returncode == 0, install.stderr[-3000:]
    check = subprocess.run([str(py), "-c", "import mlflow"], capture_output=True, text=True, env=env)
    assert check.returncode != 0  # not there: the package runs without it
    out = subprocess.run(
        [str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=pkg,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]


# -- trust: only the person exporting decides what the model file may load ----------------------------------


def log_hostile_model(project: Path, monkeypatch: pytest.MonkeyPatch, marker: Path) -> str:
    """A real skops model file whose load runs ``touch MARKER`` through ``posix.system`` (a node skops
    builds by calling its type with arguments from the file), its MLmodel declaring ``posix.system``
    trusted, logged as a run's model; returns ``runs:/<run>/model``."""
    import io
    import tempfile
    import zipfile

    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mlops_nb.tracking._client import client as mlflow_client

    X = np.random.RandomState(0).rand(40, 2)
    model = LogisticRegression().fit(X, (X[:, 0] > 0.5).astype(int))
    with mnb.start_run("hostile", kind="job"), mnb.stage("train") as stage:
        pass
    assert mnb.flush(60)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_client()._tracking_client.tracking_uri)
    folder = Path(tempfile.mkdtemp(dir=project)) / "model"
    mlflow.sklearn.save_model(model, folder, serialization_format="skops", input_example=X[:3])
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["sklearn"]
    skops_file = folder / flavor["pickled_model"]
    original = zipfile.ZipFile(io.BytesIO(skops_file.read_bytes()))
    schema = json.loads(original.read("schema.json"))
    command = {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode", "is_json": True}
    command["content"] = json.dumps(f"touch {shlex.quote(str(marker))}")
    schema["content"]["content"]["calibration"] = {
        "__class__": "system",
        "__module__": "posix",
        "__loader__": "ConstructorFromReduceNode",
        "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": [command]},
    }
    hostile = io.BytesIO()
    with zipfile.ZipFile(hostile, "w") as z:
        for info in original.infolist():
            z.writestr(info, json.dumps(schema) if info.filename == "schema.json" else original.read(info))
    skops_file.write_bytes(hostile.getvalue())
    flavor["skops_trusted_types"] = ["posix.system"]  # what the author of the file claims
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with mlflow.start_run(run_id=stage.run_id):
        mlflow.log_artifacts(str(folder), "model")
    return f"runs:/{stage.run_id}/model"


def test_a_model_file_that_runs_a_command_when_loaded_is_refused_whatever_it_declares(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import skops.io

    marker = project / "MARKER"
    uri = log_hostile_model(project, monkeypatch, marker)
    assert skops.io.get_untrusted_types(file=str(next(project.rglob("model.skops")))) == ["posix.system"]

    declared = export(uri, "--out", "pkg")
    assert declared.exit_code == 2, declared.output
    assert "posix.system" in declared.stderr and "--allow-unsafe posix.system" in declared.stderr
    trusted = export(uri, "--out", "pkg", "--trust", "posix.system")
    assert trusted.exit_code == 2, trusted.output
    assert "even with --trust" in trusted.stderr
    assert not marker.exists() and not (project / "pkg").exists()

    # a type that is not known to run code still needs the person exporting to name it
    from mlops_nb.loading.trust import decide

    with pytest.raises(ExportError, match=r"--trust mypkg\.Scaler") as refused:
        decide(["mypkg.Scaler"], declared=["mypkg.Scaler"])
    assert "not taken from the model's own files" in str(refused.value)
    assert decide(["mypkg.Scaler"], trust=["mypkg.Scaler"]).types == ("mypkg.Scaler",)
    # inert scikit-learn/numpy classes are trusted without a flag; functions and code runners are not
    inert = ("numpy.dtype", "numpy.float64", "sklearn.preprocessing._data.StandardScaler", "sklearn.tree._tree.Tree")
    assert decide(inert).known_safe == inert
    for unsafe in ("builtins.eval", "builtins.__import__", "subprocess.Popen", "importlib.import_module", "numpy.load"):
        with pytest.raises(ExportError, match="even with --trust"):
            decide([unsafe], trust=[unsafe])
    with pytest.raises(ExportError, match=r"--trust numpy\.log"):
        decide(["numpy.log"])


HOSTILE_NAME = 'x"""\nopen("INJECTED", "w")\nRUN touch INJECTED\n  - injected\n"""'


def test_a_hostile_model_name_registered_directly_is_rendered_as_data(project: Path) -> None:
    """MLflow itself accepts this name (mlops-nb promote does not): every file shows it escaped or on one
    line, so importing the package runs nothing and no line is injected into YAML, Dockerfile or README."""
    train(project, name=HOSTILE_NAME)
    result = export(f"models:/{HOSTILE_NAME}/1", "--out", "pkg")
    assert result.exit_code == 0, result.output
    pkg = project / "pkg"
    import ast

    for source in pkg.rglob("*.py"):
        ast.parse(source.read_text(), str(source))
    out = python("import app, app.integrity, app.schema, app.main; print(repr(app.integrity.EXPORT['name']))", cwd=pkg)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == repr(HOSTILE_NAME)
    assert not (pkg / "INJECTED").exists() and not (project / "INJECTED").exists()
    for path in [p for p in pkg.rglob("*") if p.is_file() and p.suffix not in (".py", ".json", ".skops")]:
        for line in path.read_text().splitlines():
            assert not line.lstrip().startswith(("open(", "RUN touch", "- injected", '"""')), (path, line)
    docs = list(yaml.safe_load_all((pkg / "k8s.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    assert [sorted(d) for d in docs] == [["apiVersion", "kind", "metadata", "spec"]] * 2
    assert sorted(docs[0]["metadata"]["labels"]) == ["app", "model-version"]


# -- the server under load and against slow clients ------------------------------------------------------------


def _closed_within(sock: Any, seconds: float, drip: bytes) -> tuple[float, bytes]:
    """Send ``drip`` every 0.25 s until the server closes the connection; (seconds it took, bytes read)."""

    start, answer = time.monotonic(), b""
    sock.settimeout(0.25)
    while time.monotonic() - start < seconds:
        try:
            sock.sendall(drip)
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:  # reset or broken pipe: closed
            break
        if not chunk:
            break
        answer += chunk
    return time.monotonic() - start, answer


@pytest.mark.slow
def test_the_server_stays_responsive_under_big_batches_and_cuts_slow_clients_off(project: Path) -> None:
    import http.client
    import socket
    import statistics
    import threading

    train(project)
    assert export("models:/demo@champion", "--out", "pkg").exit_code == 0
    pkg = project / "pkg"
    example = json.loads((pkg / "tests" / "example.json").read_text())
    big = json.dumps(
        {"dataframe_split": {"columns": example["columns"], "data": (example["data"] * 10_000)[:10_000]}}
    ).encode()
    blocked = project / "blocked"  # as in an environment without uvloop (where Nagle's delay showed)
    blocked.mkdir()
    (blocked / "uvloop.py").write_text("raise ImportError('no uvloop here')\n")
    env = child_env(SERVING_HEADER_TIMEOUT="2", SERVING_BODY_TIMEOUT="2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(blocked), env.get("PYTHONPATH")]))
    with Server([sys.executable, "-m", "app", "--port", "{port}", "--workers", "2"], pkg, "/ready", env) as server:
        # Keep-alive requests one after the other are not held back by Nagle's algorithm (it added ~40 ms each).
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        small = json.dumps({"dataframe_split": {"columns": example["columns"], "data": example["data"][:1]}})
        times = []
        for _ in range(30):
            start = time.perf_counter()
            conn.request("POST", "/invocations", small, {"Content-Type": "application/json"})
            assert conn.getresponse().read() and time.perf_counter() - start < 30
            times.append(time.perf_counter() - start)
        conn.close()
        assert statistics.median(times) < 0.03, times

        # /health answers within a liveness probe's timeout while two clients send 10,000-row batches.
        stop, statuses = threading.Event(), []

        def send_batches() -> None:
            while not stop.is_set():
                statuses.append(server.post("/invocations", big)[0])

        clients = [threading.Thread(target=send_batches) for _ in range(2)]
        for client in clients:
            client.start()
        try:
            time.sleep(1.0)
            health = []
            for _ in range(15):
                start = time.perf_counter()
                with urllib.request.urlopen(server.url + "/health", timeout=10) as r:
                    assert r.status == 200
                health.append(time.perf_counter() - start)
                time.sleep(0.1)
        finally:
            stop.set()
            for client in clients:
                client.join(120)
        assert statuses and set(statuses) == {200}, statuses
        assert max(health) < 1.0, health

        # A client sending its headers a byte at a time is disconnected after SERVING_HEADER_TIMEOUT (2 s) ...
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
            took, _ = _closed_within(sock, 20, b"X")
        assert took < 6, took
        # ... and one sending its body slowly gets 408 after SERVING_BODY_TIMEOUT (2 s), then is disconnected.
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            headers = b"Host: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
            sock.sendall(b"POST /invocations HTTP/1.1\r\n" + headers + b"{")
            took, answer = _closed_within(sock, 20, b" ")
        assert took < 6, took
        assert answer.startswith(b"HTTP/1.1 408") and b"REQUEST_TIMEOUT" in answer, answer[:500]
        assert server.post("/invocations", small.encode())[0] == 200  # and the server serves on


def test_an_alias_that_moves_during_export_does_not_mix_versions(project: Path, monkeypatch) -> None:
    """The alias is resolved once: serving.json names the version whose model file the package holds."""
    import hashlib

    from mlops_nb.tracking import query

    train(project)
    train(project, "array", name="other")  # another model, registered elsewhere
    client = embedded_client(project)
    other = client.get_model_version("other", "1")
    client.create_model_version("demo", other.source, run_id=other.run_id)  # demo version 2: that other model
    download = query.download_model

    def move_then_download(uri: str, dst: Path, settings=None) -> Path:
        client.set_registered_model_alias("demo", "champion", "2")  # another promotion, just now
        return download(uri, dst, settings)

    monkeypatch.setattr(query, "download_model", move_then_download)
    assert export("models:/demo@champion", "--out", "pkg").exit_code == 0
    meta = json.loads((project / "pkg" / "model" / "serving.json").read_text())
    assert meta["version"] == "1"  # what the alias named when export resolved it ...
    assert str(client.get_model_version_by_alias("demo", "champion").version) == "2"  # ... though it moved since
    version_1 = Path(download("models:/demo/1", project / "v1"))
    packaged = (project / "pkg" / "model" / "model.skops").read_bytes()
    assert hashlib.sha256(packaged).hexdigest() == hashlib.sha256((version_1 / "model.skops").read_bytes()).hexdigest()
