"""Sweeps on a real process pool and a real Dask LocalCluster (processes), reproduce, and mlops-nb ci."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import embedded_client
from tests.notebooks import (
    PIPELINE,
    PIPELINE_PARAMETERS,
    WAITING,
    gone,
    mlops_nb,
    runs,
    start_mlops_nb,
    wait_for,
    write_notebook,
)

GRID = ("--grid", "scale=1,2,3", "--grid", "label=a,b")  # 6 combinations


def _check_sweep(project: Path, sweep_id: str) -> list:
    client = embedded_client(project)
    sweep = client.get_run(sweep_id)
    assert sweep.data.tags["mlops_nb.kind"] == "sweep" and sweep.info.status == "FINISHED"
    all_runs = runs(project, "pipe")
    jobs = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == sweep_id]
    assert len(jobs) == 6
    assert {r.data.tags["mlops_nb.kind"] for r in jobs} == {"job"}
    assert {r.info.status for r in jobs} == {"FINISHED"}
    assert sorted((r.data.params["scale"], r.data.params["label"]) for r in jobs) == [
        (s, l)
        for s in ("1.0", "2.0", "3.0")  # typed like the notebook's `scale = 1.0`
        for l in ("a", "b")  # noqa: E741
    ]
    for job in jobs:  # each job's stages nest under it, its metrics roll up onto it
        stages = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == job.info.run_id]
        assert sorted(r.data.tags["mlops_nb.stage"] for r in stages) == ["load", "score"]
        assert job.data.metrics["accuracy"] == pytest.approx(0.5 + float(job.data.params["scale"]) / 10)
    best = client.get_run(sweep.data.tags["mlops_nb.sweep.best_run"])
    assert best.data.params["scale"] == "3.0"
    assert sweep.data.metrics["best_accuracy"] == pytest.approx(0.8)
    assert sweep.data.tags["mlops_nb.sweep.failed"] == "0"
    results = json.loads(Path(client.download_artifacts(sweep_id, "sweep/results.json", str(project))).read_text())
    assert len(results) == 6 and {r["outcome"] for r in results} == {"succeeded"}
    return jobs


@pytest.mark.slow
def test_sweep_on_a_local_process_pool(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    done = mlops_nb("sweep", "pipe.ipynb", *GRID, "--parallel", "2", "--metric", "accuracy", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "6 of 6 jobs succeeded" in done.stderr and "best by accuracy" in done.stderr
    # Kernels forked for the jobs are quiet, as launched ones are: no console banner, encrypted sockets.
    assert "To connect another client" not in done.stderr and "without encryption" not in done.stderr
    # No debugpy "frozen modules" warning per kernel, no interrupt logged by kernels shut down when idle.
    assert "frozen modules" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
    _check_sweep(project, done.stdout.strip())
    assert len(list((project / ".mlops_nb" / "sweeps").glob("pipe-*/*.ipynb"))) == 6
    assert list((project / ".mlops_nb" / "journal").glob("*.jsonl")) == []  # every journal was sent


@pytest.mark.slow
def test_sweep_on_a_dask_cluster_gives_the_same_records(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    done = mlops_nb(
        "sweep", "pipe.ipynb", *GRID, "--parallel", "2", "--executor", "dask", "--metric", "accuracy", cwd=project
    )
    assert done.returncode == 0, done.stderr
    _check_sweep(project, done.stdout.strip())


@pytest.mark.slow
def test_a_failed_job_does_not_stop_the_sweep(project: Path) -> None:
    write_notebook(
        project / "pipe.ipynb",
        "%load_ext mlops_nb",
        "import mlops_nb as mnb\nmnb.log_metric('inv', 1 / scale)",
        parameters="scale = 1",
    )
    done = mlops_nb(
        "sweep",
        "pipe.ipynb",
        "--grid",
        "scale=1,0,2",
        "--parallel",
        "2",
        "--metric",
        "inv",
        "--lower-is-better",
        cwd=project,
    )
    assert done.returncode == 1, done.stderr
    assert "2 of 3 jobs succeeded" in done.stderr and "ZeroDivisionError" in done.stderr
    client = embedded_client(project)
    sweep = client.get_run(done.stdout.strip())
    assert sweep.info.status == "FINISHED"
    assert sweep.data.tags["mlops_nb.sweep.failed"] == "1"
    assert "[1] cell" in sweep.data.tags["mlops_nb.sweep.failures"]
    assert client.get_run(sweep.data.tags["mlops_nb.sweep.best_run"]).data.params == {"scale": "2"}
    statuses = sorted(r.info.status for r in runs(project, "pipe") if r.data.tags.get("mlops_nb.kind") == "job")
    assert statuses == ["FAILED", "FINISHED", "FINISHED"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--grid", "scale"), "write it as NAME=v1,v2"),
        (("--grid", "scael=1,2"), "Unknown parameter 'scael'"),
        (("--grid", "scale=1", "--scheduler", "tcp://127.0.0.1:1"), "--scheduler needs --executor dask"),
        (("--grid", "scale=1", "--parallel", "0"), "run at least 1 job at a time"),
        ((), "give at least one --grid NAME=v1,v2"),
    ],
)
def test_sweep_usage_errors_exit_2(project: Path, args: tuple, message: str) -> None:
    write_notebook(project / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    done = mlops_nb("sweep", "pipe.ipynb", *args, cwd=project)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


DATA_PIPELINE = (
    "%load_ext mlops_nb",
    "%%track load\nimport pandas as pd\nframe = pd.read_csv(path)",
    "%%track score\nimport mlops_nb as mnb\nmnb.log_metric('mean', float(frame['x'].mean()))",
)


def test_reproduce_a_deterministic_job_then_a_changed_data_file(project: Path) -> None:
    (project / "data.csv").write_text("x\n1\n2\n3\n")
    write_notebook(project / "nb.ipynb", *DATA_PIPELINE, parameters="path = 'data.csv'")
    first = mlops_nb("run", "nb.ipynb", cwd=project)
    assert first.returncode == 0, first.stderr
    original = first.stdout.strip()
    (project / "nb.ipynb").write_text("{}")  # today's file is gone: the recorded notebook is used

    same = mlops_nb("reproduce", original, cwd=project)
    assert same.returncode == 0, same.stderr
    assert f"REPRODUCED: run {same.stdout.strip()} against the original {original}" in same.stderr
    client = embedded_client(project)
    new = client.get_run(same.stdout.strip())
    assert new.data.tags["mlops_nb.reproduces"] == original
    assert new.data.tags["mlops_nb.reproduce.result"] == "reproduced"
    assert new.data.metrics == {"mean": 2.0}
    stages = [r for r in runs(project, "nb") if r.data.tags.get("mlflow.parentRunId") == new.info.run_id]
    assert {r.data.tags["mlops_nb.cache_hit"] for r in stages} == {"false"}  # every stage ran again

    (project / "data.csv").write_text("x\n1\n2\n6\n")
    changed = mlops_nb("reproduce", original, "--rtol", "0.01", cwd=project)
    assert changed.returncode == 3, changed.stderr
    assert "DIFFERS" in changed.stderr
    assert "metric mean: 2 -> 3 (relative difference 0.5)" in changed.stderr
    assert "stage 'score' input 'frame' fingerprint" in changed.stderr
    verdict = client.get_run(changed.stdout.strip()).data.tags["mlops_nb.reproduce.result"]
    assert verdict.startswith("differs: metric mean")


def test_reproduce_refuses_what_is_not_a_job(project: Path) -> None:
    import mlops_nb as mnb

    with mnb.start_run("script") as run:
        mnb.log_metric("m", 1)
    mnb.flush()
    done = mlops_nb("reproduce", run.run_id, cwd=project)
    assert done.returncode == 2
    assert "reproduce takes a job run" in done.stderr
    unknown = mlops_nb("reproduce", "0" * 32, cwd=project)
    assert unknown.returncode == 2 and f"No run {'0' * 32!r}" in unknown.stderr


def test_ci_runs_the_configured_jobs_and_writes_junit(project: Path) -> None:
    write_notebook(project / "notebooks" / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    write_notebook(project / "notebooks" / "boom.ipynb", "raise ValueError('bad data')", parameters="n = 1")
    (project / "pyproject.toml").write_text(
        """
[project]
name = "demo"

[tool.mlops_nb.ci]
timeout = 120

[[tool.mlops_nb.ci.jobs]]
name = "good"
notebook = "notebooks/pipe.ipynb"
parameters = { scale = 5 }
require = ["accuracy >= 0.9"]

[[tool.mlops_nb.ci.jobs]]
name = "weak"
notebook = "notebooks/pipe.ipynb"
require = ["accuracy >= 0.9"]

[[tool.mlops_nb.ci.jobs]]
name = "boom"
notebook = "notebooks/boom.ipynb"
"""
    )
    done = mlops_nb("ci", "--junit", "reports/junit.xml", cwd=project)
    assert done.returncode == 1, done.stderr
    assert "1 of 3 notebook jobs passed; failed: weak, boom" in done.stderr
    root = ET.parse(project / "reports" / "junit.xml").getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"good", "weak", "boom"}
    assert all(float(c.get("time")) > 0 and c.get("classname").startswith("notebooks.") for c in cases.values())
    assert cases["good"].find("failure") is None and cases["good"].find("error") is None
    assert "accuracy = 0.6, 0.3 below" in cases["weak"].find("failure").text
    assert "ValueError: bad data" in cases["boom"].find("error").get("message")
    run_ids = {c.get("name"): c.find("properties/property[@name='mlflow_run_id']").get("value") for c in cases.values()}
    assert embedded_client(project).get_run(run_ids["good"]).info.status == "FINISHED"

    # Again: the unchanged stages come from the cache, unless --no-cache.
    again = mlops_nb("ci", cwd=project)
    assert again.returncode == 1 and "2 (2 from the cache)" in again.stderr, again.stderr
    fresh = mlops_nb("ci", "--no-cache", cwd=project)
    assert fresh.returncode == 1 and "from the cache" in fresh.stderr and "(0 from the cache)" in fresh.stderr
    assert "(1 from the cache)" not in fresh.stderr and "(2 from the cache)" not in fresh.stderr


def test_ci_init_github_writes_a_workflow_once(project: Path) -> None:
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    done = mlops_nb("ci", "--init", "github", cwd=project)
    assert done.returncode == 0, done.stderr
    workflow = (project / ".github" / "workflows" / "notebooks.yml").read_text()
    assert "mlops-nb ci --junit reports/notebooks.xml" in workflow
    again = mlops_nb("ci", "--init", "github", cwd=project)
    assert again.returncode == 2 and "pass --force" in again.stderr


def test_ci_without_jobs_says_how_to_list_them(project: Path) -> None:
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    done = mlops_nb("ci", cwd=project)
    assert done.returncode == 2 and "[[tool.mlops_nb.ci.jobs]]" in done.stderr


@pytest.mark.slow
def test_sweep_kernels_started_ahead_get_each_job_s_settings(project: Path) -> None:
    """The local pool starts the next job's kernel early; it must still run in --cwd, record into its own
    job, and leave no trace of that set-up in the notebook (execution counts start at 1)."""
    (project / "work").mkdir()
    write_notebook(
        project / "pipe.ipynb",
        "%load_ext mlops_nb",
        "import os\nimport mlops_nb as mnb\nmnb.set_tag('cwd', os.getcwd())\nmnb.log_metric('k', k)",
        parameters="k = 0",
    )
    done = mlops_nb(
        "sweep",
        "pipe.ipynb",
        "--grid",
        "k=1,2,3,4,5",
        "--parallel",
        "2",
        "--cwd",
        "work",
        "--output-dir",
        "out",
        cwd=project,
    )
    assert done.returncode == 0, done.stderr
    jobs = [r for r in runs(project, "pipe") if r.data.tags.get("mlops_nb.kind") == "job"]
    assert sorted((r.data.params["k"], r.data.metrics["k"]) for r in jobs) == [(str(k), float(k)) for k in range(1, 6)]
    assert {r.data.tags["cwd"] for r in jobs} == {str((project / "work").resolve())}
    for path in (project / "out").glob("*.ipynb"):
        counts = [c["execution_count"] for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        assert counts == list(range(1, len(counts) + 1)), path


@pytest.mark.slow
def test_sweep_kernels_are_independent_and_die_alone(project: Path) -> None:
    """Each job's kernel is a fresh interpreter: its own random state and process; one that dies or hangs
    fails its job only."""
    write_notebook(
        project / "pipe.ipynb",
        "%load_ext mlops_nb",
        "import os, random, time\nimport numpy as np\nimport mlops_nb as mnb\n"
        "mnb.log_metrics({'r': random.random(), 'np': float(np.random.rand()), 'pid': os.getpid()})",
        "if k == 2:\n    os._exit(1)\nif k == 3:\n    time.sleep(120)",
        parameters="k = 0",
    )
    done = mlops_nb("sweep", "pipe.ipynb", "--grid", "k=0,1,2,3,4,5", "--parallel", "2", "--timeout", "5", cwd=project)
    assert done.returncode == 1, done.stderr
    jobs = {int(r.data.params["k"]): r for r in runs(project, "pipe") if r.data.tags.get("mlops_nb.kind") == "job"}
    assert sorted(jobs) == [0, 1, 2, 3, 4, 5]
    outcomes = {k: r.data.tags["mlops_nb.job.outcome"] for k, r in jobs.items()}
    assert outcomes == {
        0: "succeeded",
        1: "succeeded",
        2: "kernel_died",
        3: "timed_out",
        4: "succeeded",
        5: "succeeded",
    }
    for name in ("r", "np", "pid"):
        values = [r.data.metrics[name] for r in jobs.values()]
        assert len(set(values)) == len(values), (name, values)
    # Every job's executed notebook is written, those of the dead and the timed-out kernel included.
    outputs = list((project / ".mlops_nb" / "sweeps").glob("pipe-*/*.ipynb"))
    assert len(outputs) == 6 and all(json.loads(p.read_text())["cells"] for p in outputs)
    _assert_nothing_running_here(project)


def _assert_nothing_running_here(project: Path) -> None:
    client = embedded_client(project)
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert client.search_runs(experiments, "attributes.status = 'RUNNING'") == []


@pytest.mark.slow
def test_a_forked_kernel_exits_when_its_worker_s_zygote_dies(tmp_path: Path) -> None:
    """A sweep worker that dies (killed, out of memory) must not leave its kernels running for ever: they
    watch their parent, the zygote, which exits with the worker."""
    import os
    import signal

    from jupyter_core.utils import run_sync

    from mlops_nb.jobs import kernels, zygote

    km = kernels.start("python3", dict(os.environ), str(tmp_path))
    try:
        client = km.client()
        client.start_channels()
        # An async client: its wait_for_ready is a coroutine. Not awaited, the channels stopped at once, while
        # the heartbeat thread was creating its socket in the context being destroyed: "ZMQError: Too many
        # open files" (libzmq's EMFILE of a terminating context) in that thread.
        run_sync(client.wait_for_ready)(timeout=60)
        client.stop_channels()
        assert zygote._zygote is not None and km.provisioner.process.poll() is None
        os.kill(zygote._zygote.pid, signal.SIGKILL)
        km.provisioner.process.wait(timeout=15)  # it exits, though nobody shut it down (TimeoutExpired if not)
    finally:
        if run_sync(km.is_alive)():
            run_sync(km.shutdown_kernel)(now=True)
        zygote.stop()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_sweep_stops_every_job_and_leaves_no_process(project: Path, signum: int) -> None:
    """Ctrl-C in the terminal (the whole process group) or SIGTERM to the sweep's process alone (a CI job
    cancelled): the running jobs end KILLED with their kernels, queued ones never start, nothing is left."""
    write_notebook(project / "wait.ipynb", *WAITING, parameters="k = 0")
    proc = start_mlops_nb("sweep", "wait.ipynb", "--grid", "k=1,2,3,4", "--parallel", "2", cwd=project)
    kernels = wait_for([project / "started-1", project / "started-2"], proc)
    os.killpg(proc.pid, signum) if signum == signal.SIGINT else proc.send_signal(signum)
    proc.communicate(timeout=60)
    assert proc.returncode == 130, (project / "stderr.txt").read_text()
    assert "Interrupted" in (project / "stderr.txt").read_text()
    all_runs = runs(project, "wait")
    sweep = [r for r in all_runs if r.data.tags["mlops_nb.kind"] == "sweep"]
    assert [r.info.status for r in sweep] == ["KILLED"]
    jobs = {r.data.params["k"]: r for r in all_runs if r.data.tags["mlops_nb.kind"] == "job"}
    assert sorted(jobs) == ["1", "2"]  # 3 and 4 never started
    assert {r.info.status for r in jobs.values()} == {"KILLED"}
    assert {r.data.tags["mlops_nb.job.outcome"] for r in jobs.values()} == {"interrupted"}
    deadline = time.monotonic() + 30
    while True:  # no worker, zygote or kernel (the jobs' or a spare one) left in the sweep's session
        session = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
        alive = [int(pid) for pid in session if not gone(int(pid))]
        if not alive and all(gone(pid) for pid in kernels):
            break
        assert time.monotonic() < deadline, f"processes outlived the sweep: {alive}"
        time.sleep(0.2)
    _assert_nothing_running_here(project)


@pytest.mark.slow
def test_a_sweep_metric_no_job_logged_exits_2_naming_those_they_did(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    done = mlops_nb("sweep", "pipe.ipynb", "--grid", "scale=1,2", "--metric", "acc", cwd=project)
    assert done.returncode == 2, done.stderr
    assert "--metric 'acc': no job logged it" in done.stderr, done.stderr
    assert "The jobs logged accuracy, total. Did you mean --metric accuracy?" in done.stderr
    jobs = [r for r in runs(project, "pipe") if r.data.tags.get("mlops_nb.kind") == "job"]
    assert {r.info.status for r in jobs} == {"FINISHED"}  # the jobs and their records are kept
    assert sorted(r.data.params["scale"] for r in jobs) == ["1.0", "2.0"]  # typed like `scale = 1.0`


@pytest.mark.slow
def test_a_whole_number_for_a_float_parameter_is_the_float_the_notebook_has(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    first = mlops_nb("run", "pipe.ipynb", "-p", "scale", "2.0", cwd=project)
    assert first.returncode == 0, first.stderr
    second = mlops_nb("run", "pipe.ipynb", "-p", "scale", "2", "-p", "n", "10", cwd=project)
    assert second.returncode == 0, second.stderr
    client = embedded_client(project)
    job = client.get_run(second.stdout.strip())
    assert job.data.params["scale"] == "2.0" and job.data.params["n"] == "10"  # n = 10 stays an int
    stages = [r for r in runs(project, "pipe") if r.data.tags.get("mlflow.parentRunId") == job.info.run_id]
    assert {r.data.tags["mlops_nb.cache_hit"] for r in stages} == {"true"}  # the same value: nothing re-ran
