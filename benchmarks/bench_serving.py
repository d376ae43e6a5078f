"""Serving: the package of ``mlops-nb export`` against ``mlflow models serve`` and BentoML on the same model.

A 20-feature LogisticRegression (trained on a DataFrame, logged with ``mnb.log_model``, registered as
``models:/bench@champion``) is served three ways on 127.0.0.1, one after the other in one run: ``mlflow
models serve`` (FastAPI, 1 worker), a BentoML service that loads the same skops file and predicts with
pandas (BentoML's defaults: 1 worker, no batching), and the generated package with its defaults (one worker
per core, uvloop, httptools) and with 1 worker. ``wrk`` sends single-row JSON requests (``dataframe_split``,
the format MLflow clients send) at concurrency 1, 8 and 32 for a fixed duration; every request of the
generated server is fully validated. Printed: requests/s, p50 and p99 (medians over repeats), start-up time
(process start to ready) and resident memory of each server's process tree, and the ratios to both anchors.

    python benchmarks/bench_serving.py                  # 10 s per point, 3 repeats
    python benchmarks/bench_serving.py --duration 2 --repeats 1 --concurrency 8   # a quick look
    python benchmarks/bench_serving.py --without uvloop --no-mlflow --no-bentoml --concurrency 1 8

BentoML pins its own versions of what mlops-nb uses, so it runs from its own virtual environment:
``--bentoml-python PATH`` names one that has bentoml, scikit-learn and skops; without it the benchmark makes
one under ~/.cache/mlops-nb-bench/ (pip install, once) with this environment's scikit-learn, skops, numpy and
pandas versions, so that it loads the same model file. Needs ``wrk`` (Debian: ``apt-get install -y wrk``).
Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

FEATURES = 20
MLFLOW_SERVE = ["mlflow", "models", "serve", "-m", "models:/bench@champion", "--env-manager", "local"]
BENTOML = "bentoml==1.4.40"
BENTOML_VENV = Path.home() / ".cache" / "mlops-nb-bench" / "bentoml-venv"
# A BentoML service as its docs write one: the model loaded in the worker, an API taking MLflow's
# dataframe_split body and answering {"predictions": [...]}, as the two other servers do.
BENTO_SERVICE = """
import bentoml, pandas as pd, skops.io

MODEL = {model!r}


@bentoml.service
class Bench:
    def __init__(self) -> None:
        self.model = skops.io.load(MODEL, trusted=skops.io.get_untrusted_types(file=MODEL))

    @bentoml.api
    def invocations(self, dataframe_split: dict) -> dict:
        frame = pd.DataFrame(dataframe_split["data"], columns=dataframe_split["columns"])
        return {{"predictions": self.model.predict(frame).tolist()}}
"""


def train_and_register(project: Path) -> None:
    """Log a 20-feature LogisticRegression with mlops-nb in ``project`` and register it as bench@champion."""
    code = f"""
import numpy as np, pandas as pd
import mlops_nb as mnb
from sklearn.linear_model import LogisticRegression
rng = np.random.default_rng(0)
X = pd.DataFrame(rng.normal(size=(5000, {FEATURES})), columns=[f"f{{i}}" for i in range({FEATURES})])
y = (X.to_numpy() @ rng.normal(size={FEATURES}) > 0).astype(int)
with mnb.start_run("bench", kind="job"), mnb.stage("train"):
    mnb.log_model(LogisticRegression(max_iter=500).fit(X, y), "model", input_example=X[:5], reference=X)
assert mnb.flush(120)
"""
    subprocess.run([sys.executable, "-c", code], cwd=project, check=True, capture_output=True)
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{project / '.mlops_nb' / 'mlflow.db'}")
    (run,) = client.search_runs(["0"], "tags.`mlops_nb.stage` = 'train'")
    client.create_registered_model("bench")
    version = client.create_model_version("bench", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias("bench", "champion", version.version)


def export(project: Path) -> Path:
    out = project / "serving"
    subprocess.run(
        [sys.executable, "-m", "mlops_nb", "export", "models:/bench@champion", "--out", str(out)],
        cwd=project,
        check=True,
        capture_output=True,
    )
    return out


def bentoml_python(given: str | None) -> Path:
    """A Python with BentoML and this environment's scikit-learn, skops, numpy and pandas (made once)."""
    if given:
        return Path(given)
    python = BENTOML_VENV / "bin" / "python"
    if not python.exists():
        from importlib.metadata import version

        print(f"making BentoML's own environment in {BENTOML_VENV} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(BENTOML_VENV)], check=True)
        pins = [f"{name}=={version(name)}" for name in ("scikit-learn", "skops", "numpy", "pandas")]
        subprocess.run([str(python), "-m", "pip", "install", "-q", BENTOML, *pins], check=True)
    return python


def bento_service(package: Path, folder: Path) -> Path:
    """The BentoML service file, serving the exported package's model file."""
    folder.mkdir()
    (folder / "service.py").write_text(BENTO_SERVICE.format(model=str(package / "model" / "model.skops")))
    return folder


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MB (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(match.group(1)) if match else 0
    return total / 1024


class Server:
    def __init__(self, name: str, args: list[str], cwd: Path, ready: str, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        start = time.perf_counter()
        self.proc = subprocess.Popen(
            [a.replace("{port}", str(self.port)) for a in args],
            cwd=cwd,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"{name} exited: {self.log.read()[-2000:].decode()}")
            try:
                with urllib.request.urlopen(self.url + ready, timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.01)
        self.startup_s = time.perf_counter() - start

    def post(self, body: bytes) -> dict:
        request = urllib.request.Request(
            self.url + "/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read())

    def rss_mb(self) -> float:
        return tree_rss_mb(self.proc.pid)

    def stop(self) -> None:
        os.killpg(self.proc.pid, 15)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
        self.log.close()


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, script: Path, connections: int, duration: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
        "p99": _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
        "errors": float(errors.group(1)) if errors else 0.0,
        "socket_errors": 1.0 if socket_errors else 0.0,
    }


def measure(server: Server, script: Path, concurrency: list[int], duration: int, repeats: int) -> dict:
    wrk(server.url + "/invocations", script, 8, 1)  # warm-up
    points = {}
    for c in concurrency:
        runs = [wrk(server.url + "/invocations", script, c, duration) for _ in range(repeats)]
        points[c] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"  {server.name:<28} c={c:<3} {points[c]['rps']:>8.0f} req/s  p50 {points[c]['p50']:>7.2f} ms  "
            f"p99 {points[c]['p99']:>7.2f} ms  non-2xx {points[c]['errors']:.0f}",
            flush=True,
        )
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per point (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="wrk runs per point; the median is printed")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--bentoml-python", metavar="PATH", help="a Python with bentoml (default: one made once)")
    parser.add_argument("--no-bentoml", action="store_true", help="skip the BentoML service")
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="MODULE",
        help="serve as in an environment without MODULE (uvloop, httptools): its import fails in the servers",
    )
    parser.add_argument("--no-mlflow", action="store_true", help="skip mlflow models serve")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        project = Path(tmp)
        (project / "pyproject.toml").write_text("[project]\nname = 'bench'\n")
        print("training, logging and exporting the model ...", flush=True)
        train_and_register(project)
        package = export(project)
        example = json.loads((package / "tests" / "example.json").read_text())
        body = json.dumps({"dataframe_split": {"columns": example["columns"], "data": example["data"][:1]}})
        script = project / "post.lua"
        script.write_text(
            f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = {json.dumps(body)}\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_NB_"))}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        if args.without:  # a module that raises ImportError shadows the installed one
            blocked = project / "blocked"
            blocked.mkdir()
            for module in args.without:
                (blocked / f"{module}.py").write_text(f"raise ImportError('{module} is blocked by the benchmark')\n")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(blocked), env.get("PYTHONPATH")]))
            print(f"servers run without {', '.join(args.without)}", flush=True)
        mlflow_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{project / '.mlops_nb' / 'mlflow.db'}"}
        configs = []
        if not args.no_mlflow:
            mlflow_serve = [*MLFLOW_SERVE, "-h", "127.0.0.1", "-p", "{port}"]
            configs.append(("mlflow models serve", mlflow_serve, project, "/ping", mlflow_env))
        if not args.no_bentoml:
            bento = [str(bentoml_python(args.bentoml_python)), "-m", "bentoml", "serve", "service:Bench"]
            bento_env = {k: v for k, v in env.items() if k != "PYTHONPATH"} | {"BENTOML_DO_NOT_TRACK": "True"}
            folder = bento_service(package, project / "bento")
            bento += ["--host", "127.0.0.1", "--port", "{port}"]
            configs.append(("BentoML", bento, folder, "/readyz", bento_env))
        cores = len(os.sched_getaffinity(0))  # what the package's default counts (without a CPU quota)
        app = [sys.executable, "-m", "app", "--port", "{port}"]
        configs.append(("generated (1 worker)", [*app, "--workers", "1"], package, "/ready", env))
        configs.append((f"generated (default: {cores} workers)", app, package, "/ready", env))
        results = {}
        for name, command, cwd, ready, server_env in configs:
            server = Server(name, command, cwd, ready, server_env)
            try:
                answer = server.post(body.encode())
                assert answer == {"predictions": example["predictions"][:1]}, answer
                rss_idle = server.rss_mb()
                print(f"{name}: ready in {server.startup_s:.2f} s, RSS {rss_idle:.0f} MB", flush=True)
                points = measure(server, script, args.concurrency, args.duration, args.repeats)
                results[name] = {"startup": server.startup_s, "rss": rss_idle, "rss_after": server.rss_mb(), **points}
            finally:
                server.stop()

    ours_name = configs[-1][0]
    ours = results[ours_name]
    for anchor_name, goal in (("mlflow models serve", 20), ("BentoML", 10)):
        if anchor_name not in results:
            continue
        anchor = results[anchor_name]
        print(f"\nratios ({ours_name} / {anchor_name})")
        for c in args.concurrency:
            a, o = anchor[c], ours[c]
            print(
                f"  c={c:<3} req/s x{o['rps'] / a['rps']:.1f}   p50 {a['p50'] / o['p50']:.1f}x lower   "
                f"p99 {a['p99'] / o['p99']:.1f}x lower  (p99 {o['p99']:.2f} vs {a['p99']:.2f} ms)"
            )
        print(
            f"  start-up {ours['startup']:.2f} s vs {anchor['startup']:.2f} s; "
            f"RSS after load {ours['rss_after']:.0f} MB vs {anchor['rss_after']:.0f} MB"
        )
        if 8 in args.concurrency:
            met = ours[8]["rps"] >= goal * anchor[8]["rps"]
            print(f"  goal at c=8 (>= {goal}x the req/s of {anchor_name}): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
