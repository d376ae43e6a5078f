"""mlops-nb run and the papermill engine: real kernels, real subprocesses, the embedded MLflow store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


def _by_kind(all_runs: list, kind: str) -> list:
    return [r for r in all_runs if r.data.tags.get("mlops_nb.kind") == kind]


def test_run_records_one_job_with_nested_stages_and_reruns_from_the_cache(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    done = mlops_nb(
        "run", "pipe.ipynb", "-p", "scale", "2", "-p", "label", "b", "--require", "accuracy >= 0.6", cwd=project
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    assert "OK (succeeded)" in done.stderr and "accuracy=0.7" in done.stderr
    assert "without encryption" not in done.stderr  # the kernel's sockets are Curve-encrypted

    client = embedded_client(project)
    job = client.get_run(run_id)
    assert job.info.status == "FINISHED"
    assert job.data.tags["mlops_nb.kind"] == "job"
    assert job.data.tags["mlops_nb.notebook"] == str((project / "pipe.ipynb").resolve())
    assert job.data.params == {
        "n": "10",
        "scale": "2.0",
        "label": "b",
    }  # the defaults, then the injected (typed like them)
    assert job.data.metrics == {"total": 90.0, "accuracy": 0.7}  # rolled up from the stages
    artifacts = {a.path for a in client.list_artifacts(run_id, "notebook")}
    assert artifacts == {"notebook/input.ipynb", "notebook/output.ipynb", "notebook/parameters.json"}
    output = json.loads(Path(client.download_artifacts(run_id, "notebook/output.ipynb", str(project))).read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in output["cells"])
    assert (project / "pipe.out.ipynb").is_file()

    stages = [r for r in runs(project, "pipe") if r.data.tags.get("mlflow.parentRunId") == run_id]
    assert sorted(r.data.tags["mlops_nb.stage"] for r in stages) == ["load", "score"]
    assert all(r.data.tags["mlops_nb.cache_hit"] == "false" and r.info.status == "FINISHED" for r in stages)

    again = mlops_nb("run", "pipe.ipynb", "-p", "scale", "2", "-p", "label", "b", cwd=project)
    assert again.returncode == 0, again.stderr
    assert "2 (2 from the cache)" in again.stderr
    rerun = again.stdout.strip()
    hits = [r for r in runs(project, "pipe") if r.data.tags.get("mlflow.parentRunId") == rerun]
    assert {r.data.tags["mlops_nb.cache_hit"] for r in hits} == {"true"}
    assert {r.data.tags["mlops_nb.cache_source_run"] for r in hits} == {r.info.run_id for r in stages}
    assert client.get_run(rerun).data.metrics == {"total": 90.0, "accuracy": 0.7}


def test_parameters_file_types_and_json_output(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    (project / "params.yaml").write_text("scale: 3\nn: 4\n")
    done = mlops_nb(
        "run",
        "pipe.ipynb",
        "-f",
        "params.yaml",
        "-y",
        "{n: 6, scale: 2}",
        "-p",
        "n",
        "5",
        "--json",
        "-o",
        "out/x.ipynb",
        cwd=project,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "succeeded" and result["exit_code"] == 0
    # arange(5) * 2: -y overrides the file, -p overrides -y, all typed as numbers
    assert result["metrics"]["total"] == 20.0
    assert [s["name"] for s in result["stages"]] == ["load", "score"]
    assert (project / "out" / "x.ipynb").is_file()
    into = mlops_nb("run", "pipe.ipynb", "-o", "out", cwd=project)  # a folder: the notebook goes inside
    assert into.returncode == 0, into.stderr
    assert (project / "out" / "pipe.out.ipynb").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pipe.ipynb", "-p", "scael", "2"), "Unknown parameter 'scael' (did you mean 'scale'?)"),
        (("pipe.ipynb", "-f", "bad.yaml"), "is not valid YAML at line 2"),
        (("pipe.ipynb", "-f", "list.yaml"), "must map parameter names to values"),
        (("pipe.ipynb", "-y", "scale: [2"), "The --parameters-yaml text is not valid YAML"),
        (("pipe.ipynb", "-y", "- 2"), "The --parameters-yaml text must map parameter names to values"),
        (("pipe.ipynb", "--require", "accuracy >= "), 'write it as "METRIC OP VALUE"'),
        (("missing.ipynb",), "Notebook missing.ipynb does not exist"),
        (("broken.ipynb",), "Cannot read broken.ipynb as a notebook"),
        (("pipe.ipynb", "--require", "accuracy is high"), 'write it as "METRIC OP VALUE"'),
        (("pipe.ipynb", "--kernel", "nosuchkernel"), "No Jupyter kernel named 'nosuchkernel'"),
        (("noparams.ipynb", "-p", "x", "1"), "has no cell tagged 'parameters'"),
        (("pipe.ipynb", "-o", "pipe.ipynb"), "the executed copy would overwrite it"),
    ],
)
def test_bad_input_exits_2_with_the_fix_and_records_nothing(project: Path, args: tuple, message: str) -> None:
    write_notebook(project / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    write_notebook(project / "noparams.ipynb", "x = 1")
    (project / "bad.yaml").write_text("scale: 2\n  n: [1\n")
    (project / "list.yaml").write_text("- 1\n- 2\n")
    (project / "broken.ipynb").write_text("{not json")
    done = mlops_nb("run", *args, cwd=project)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr
    assert done.stdout == ""
    assert not (project / ".mlops_nb" / "mlflow.db").exists() or runs(project, "pipe") == []


def _assert_nothing_running(project: Path) -> None:
    client = embedded_client(project)
    experiments = [e.experiment_id for e in client.search_experiments()]
    running = client.search_runs(experiments, "attributes.status = 'RUNNING'")
    assert running == [], [(r.info.run_name, r.data.tags.get("mlops_nb.kind")) for r in running]


def test_a_failing_cell_exits_1_naming_the_cell_and_keeps_what_ran(project: Path) -> None:
    write_notebook(
        project / "fail.ipynb",
        "%load_ext mlops_nb",
        "%%track prepare\nimport mlops_nb as mnb\nmnb.log_metric('rows', 10)\nrows = 10",
        "%%track divide\nratio = rows / 0",
        "print('never')",
        parameters="n = 1",
    )
    done = mlops_nb("run", "fail.ipynb", cwd=project)
    assert done.returncode == 1, done.stderr
    assert "notebook_failed" in done.stderr and "ZeroDivisionError: division by zero" in done.stderr
    assert "cell 4 (In [4])" in done.stderr  # counted from 1 in the output notebook
    job = embedded_client(project).get_run(done.stdout.strip())
    assert job.info.status == "FAILED"
    assert "ZeroDivisionError" in job.data.tags["mlops_nb.error"]
    assert job.data.metrics == {"rows": 10.0}
    stages = {
        r.data.tags["mlops_nb.stage"]: r.info.status for r in runs(project, "fail") if "mlops_nb.stage" in r.data.tags
    }
    assert stages == {"prepare": "FINISHED", "divide": "FAILED"}
    _assert_nothing_running(project)


def test_a_failed_requirement_exits_3_and_says_by_how_much(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    done = mlops_nb("run", "pipe.ipynb", "--require", "accuracy >= 0.9", "--require", "total > 1", cwd=project)
    assert done.returncode == 3, done.stderr
    assert "accuracy >= 0.9: accuracy = 0.6, 0.3 below the threshold" in done.stderr
    assert "ok   total > 1" in done.stderr
    job = embedded_client(project).get_run(done.stdout.strip())
    assert job.info.status == "FAILED"
    assert job.data.tags["mlops_nb.job.outcome"] == "requirement_failed"
    assert "FAILED: accuracy >= 0.9" in job.data.tags["mlops_nb.job.requirements"]


def test_a_metric_the_notebook_never_logs_fails_the_requirement(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    done = mlops_nb("run", "pipe.ipynb", "--require", "acuracy >= 0.5", cwd=project)
    assert done.returncode == 3
    assert "metric 'acuracy' was not logged. Did you mean 'accuracy'?" in done.stderr


def test_a_dying_kernel_exits_4_and_leaves_nothing_running(project: Path) -> None:
    write_notebook(
        project / "die.ipynb",
        "%load_ext mlops_nb",
        "%%track before\nimport mlops_nb as mnb\nmnb.log_metric('step', 1)\nx = 1",
        "%%track crash\nimport os\nos._exit(3)",
        parameters="n = 1",
    )
    started = time.monotonic()
    done = mlops_nb("run", "die.ipynb", "--timeout", "60", cwd=project)
    assert time.monotonic() - started < 60  # papermill#125 hung here
    assert done.returncode == 4, done.stderr
    assert "the kernel died while running cell 4 ('%%track crash')" in done.stderr
    job = embedded_client(project).get_run(done.stdout.strip())
    assert job.info.status == "FAILED" and job.data.tags["mlops_nb.job.outcome"] == "kernel_died"
    assert job.data.metrics == {"step": 1.0}  # what the kernel journaled before it died is kept
    crash = [r for r in runs(project, "die") if r.data.tags.get("mlops_nb.stage") == "crash"]
    assert [r.info.status for r in crash] == ["KILLED"]
    assert "ended without ending this run" in crash[0].data.tags["mlops_nb.end_reason"]
    _assert_nothing_running(project)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_job_exits_130_ends_killed_and_stops_its_kernel(project: Path, signum: int) -> None:
    write_notebook(project / "wait.ipynb", *WAITING, parameters="k = 1")
    proc = start_mlops_nb("run", "wait.ipynb", cwd=project)
    (kernel,) = wait_for([project / "started-1"], proc)
    os.killpg(proc.pid, signum) if signum == signal.SIGINT else proc.send_signal(signum)  # a terminal's Ctrl-C
    out, _ = proc.communicate(timeout=60)
    stderr = (project / "stderr.txt").read_text()
    assert proc.returncode == 130, stderr
    assert "FAILED (interrupted)" in stderr and "interrupted (Ctrl-C or SIGTERM) while running cell 3" in stderr
    assert "Traceback" not in stderr  # the kernel is interrupted, then shut down: no ZMQError of its sockets
    job = embedded_client(project).get_run(out.strip())
    assert job.info.status == "KILLED" and job.data.tags["mlops_nb.job.outcome"] == "interrupted"
    assert job.data.metrics == {"started": 1.0}  # what ran before the interrupt is kept
    deadline = time.monotonic() + 30
    while not gone(kernel):
        assert time.monotonic() < deadline, "the kernel outlived its job"
        time.sleep(0.2)
    _assert_nothing_running(project)


def test_a_cell_past_the_timeout_exits_4_within_the_timeout(project: Path) -> None:
    write_notebook(project / "slow.ipynb", "import time\ntime.sleep(120)", parameters="n = 1")
    started = time.monotonic()
    done = mlops_nb("run", "slow.ipynb", "--timeout", "3", cwd=project)
    assert time.monotonic() - started < 40
    assert done.returncode == 4, done.stderr
    assert "timed_out" in done.stderr and "ran longer than the timeout" in done.stderr
    assert embedded_client(project).get_run(done.stdout.strip()).info.status == "FAILED"
    _assert_nothing_running(project)


def test_plain_papermill_cli_with_the_mlops_nb_engine_records_the_job(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    papermill = Path(sys.executable).parent / "papermill"
    done = subprocess.run(
        [str(papermill), "--engine", "mlops_nb", "pipe.ipynb", "out.ipynb", "-p", "scale", "4"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "alembic" not in done.stderr and "INFO" not in done.stderr, done.stderr  # quiet, as mlops-nb run is
    jobs = _by_kind(runs(project, "pipe"), "job")
    assert len(jobs) == 1
    job = jobs[0]
    assert job.info.status == "FINISHED"
    assert job.data.params == {"n": "10", "scale": "4", "label": "a"}
    assert job.data.metrics["accuracy"] == pytest.approx(0.9)
    stages = [r for r in runs(project, "pipe") if r.data.tags.get("mlflow.parentRunId") == job.info.run_id]
    assert len(stages) == 2
    output = json.loads((project / "out.ipynb").read_text())
    assert output["metadata"]["mlops_nb"]["run_id"] == job.info.run_id
    assert f"mlops-nb: job run {job.info.run_id} in experiment 'pipe': succeeded" in done.stderr, done.stderr


def test_the_stage_table_of_a_job_says_where_the_run_ids_are(project: Path) -> None:
    write_notebook(project / "nb.ipynb", *PIPELINE, "%mlops stages", parameters=PIPELINE_PARAMETERS)
    done = mlops_nb("run", "nb.ipynb", "--output", "out.ipynb", cwd=project)
    assert done.returncode == 0, done.stderr
    table = json.loads((project / "out.ipynb").read_text())["cells"][-1]["outputs"][0]["data"]["text/plain"]
    assert "".join(table).count("in the job's run") == 2  # not an empty column: the kernel cannot know the ids


def _no_leftovers(project: Path) -> None:
    """No run left RUNNING and no job hold file: whatever was opened was ended."""
    if (project / ".mlops_nb" / "mlflow.db").exists():
        _assert_nothing_running(project)
    assert list((project / ".mlops_nb" / "journal").glob("*.job")) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-p", "label", "x" * 6001), "Parameter 'label' is 6,001 characters"),
        (("--allow-new", "-p", "../x", "1"), "name '../x' is not a Python name"),
    ],
    ids=["long-value", "bad-name"],
)
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_a_refused_parameter_exits_2_and_leaves_no_run_open(
    project: Path, command: str, args: tuple, message: str
) -> None:
    write_notebook(project / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    grid = ("--grid", "scale=1,2") if command == "sweep" else ()
    done = mlops_nb(command, "pipe.ipynb", *grid, *args, cwd=project)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
    _no_leftovers(project)


def test_a_job_run_that_fails_after_it_opened_ends_failed_with_the_reason(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever fails between opening the job's run and running the notebook ends the run, with the reason."""
    from mlops_nb.jobs.job import Job
    from mlops_nb.jobs.runner import run_job
    from mlops_nb.tracking import recorder

    def no_space(self: Job, notebook: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Job, "_log_input", no_space)
    write_notebook(project / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    with pytest.raises(OSError, match="No space left"):
        run_job(project / "pipe.ipynb", parameters={"scale": 2})
    assert recorder.get_recorder().flush(60)
    (job,) = _by_kind(runs(project, "pipe"), "job")
    assert job.info.status == "FAILED"
    assert "No space left on device" in job.data.tags["mlops_nb.error"]
    _no_leftovers(project)


BAD_NOTEBOOKS = {
    "no-metadata": (lambda nb: nb["cells"][0].pop("metadata"), "cell 1: 'metadata' is a required property"),
    "string-cell": (lambda nb: nb["cells"].append("print(1)"), "cell 3 is a str, not a cell object"),
    "source-5": (lambda nb: nb["cells"][1].update(source=5), "cell 2['source']: 5 is not valid"),
    "kernelspec-text": (
        lambda nb: nb["metadata"].update(kernelspec="python3"),
        "metadata.kernelspec: 'python3' is not of type 'object'",
    ),
    "not-json": (None, "Cannot read bad.ipynb as a notebook"),
    "not-a-notebook": ({"name": "x"}, "is not a version 4 Jupyter notebook"),
}


@pytest.mark.parametrize("case", list(BAD_NOTEBOOKS))
def test_a_malformed_notebook_exits_2_naming_the_cell(project: Path, case: str) -> None:
    change, message = BAD_NOTEBOOKS[case]
    write_notebook(project / "bad.ipynb", "x = n + 1", parameters="n = 1")
    nb = json.loads((project / "bad.ipynb").read_text())
    if change is None:
        text = "{not json"
    elif isinstance(change, dict):
        text = json.dumps(change)
    else:
        change(nb)
        text = json.dumps(nb)
    (project / "bad.ipynb").write_text(text)
    for command in (("run", "bad.ipynb"), ("sweep", "bad.ipynb", "--grid", "n=1,2")):
        done = mlops_nb(*command, cwd=project)
        assert done.returncode == 2, (command, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert done.stdout == ""
    _no_leftovers(project)


def test_a_notebook_without_kernelspec_runs_with_the_default_or_the_given_kernel(project: Path) -> None:
    path = write_notebook(
        project / "bare.ipynb", "import mlops_nb as mnb\nmnb.log_metric('y', n * 2)", parameters="n = 1"
    )
    nb = json.loads(path.read_text())
    nb["metadata"] = {}  # no kernelspec, no language_info: as some tools write notebooks
    path.write_text(json.dumps(nb))
    for args in ((), ("-k", "python3")):
        done = mlops_nb("run", "bare.ipynb", "-p", "n", "3", *args, cwd=project)
        assert done.returncode == 0, done.stderr
        assert embedded_client(project).get_run(done.stdout.strip()).data.metrics == {"y": 6.0}


def test_a_yaml_date_parameter_is_injected_as_its_iso_text(project: Path) -> None:
    write_notebook(
        project / "d.ipynb", "import mlops_nb as mnb\nmnb.log_metric('len', len(day))", parameters="day = ''"
    )
    done = mlops_nb("run", "d.ipynb", "-y", "day: 2001-12-14", cwd=project)
    assert done.returncode == 0, done.stderr
    job = embedded_client(project).get_run(done.stdout.strip())
    assert job.data.params == {"day": "2001-12-14"} and job.data.metrics == {"len": 10.0}


def test_a_parameters_cell_with_a_syntax_error_exits_2_naming_the_line(project: Path) -> None:
    write_notebook(project / "s.ipynb", "y = n", parameters="n = 1\nm = (")
    done = mlops_nb("run", "s.ipynb", "-p", "n", "2", cwd=project)
    assert done.returncode == 2, done.stderr
    assert "(cell 1) has a syntax error at line 2" in done.stderr


def test_a_ctrl_c_while_the_kernel_starts_stops_it_at_once(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel that takes its time to start (a loaded machine): Ctrl-C then stops it, and the command
    returns at once; the kernel, which holds the command's stdout, must not outlive it."""
    spec = project / "jupyter" / "kernels" / "slow"
    spec.mkdir(parents=True)
    boot = (
        "import os, sys, time; open('kernel-starting', 'w').write(str(os.getpid())); time.sleep(90); "
        "os.execv(sys.executable, [sys.executable, '-m', 'ipykernel_launcher', '-f', sys.argv[1]])"
    )
    kernel_json = {"argv": [sys.executable, "-c", boot, "{connection_file}"], "language": "python", "display_name": "s"}
    (spec / "kernel.json").write_text(json.dumps(kernel_json))
    monkeypatch.setenv("JUPYTER_PATH", str(project / "jupyter"))
    write_notebook(project / "nb.ipynb", "x = 1", parameters="n = 1")
    proc = start_mlops_nb("run", "nb.ipynb", "-k", "slow", cwd=project)
    (kernel,) = wait_for([project / "kernel-starting"], proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)  # EOF on stdout: no kernel holds it
    stderr = (project / "stderr.txt").read_text()
    assert proc.returncode == 130, stderr
    assert "interrupted (Ctrl-C or SIGTERM) while running kernel start-up" in stderr
    assert embedded_client(project).get_run(out.strip()).info.status == "KILLED"
    deadline = time.monotonic() + 10
    while not gone(kernel):
        assert time.monotonic() < deadline, "the starting kernel outlived its job"
        time.sleep(0.2)
    _assert_nothing_running(project)


@pytest.mark.slow
@pytest.mark.parametrize("warm", [True, False], ids=["sweep-worker", "run"])
def test_jobs_in_one_process_leave_no_descriptors_behind(project: Path, warm: bool) -> None:
    """A sweep's worker runs job after job in one process (kernels started ahead, shut down in the
    background): its descriptors must not grow with the jobs (a sweep once hit 'Too many open files')."""
    from mlops_nb.jobs import kernels
    from mlops_nb.jobs.job import JobOptions
    from mlops_nb.jobs.runner import run_job

    write_notebook(project / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    counts = []
    for i in range(5):
        options = JobOptions(warm_kernels=warm, prestart=warm and i < 4, save_every_cell=not warm)
        assert run_job(project / "pipe.ipynb", parameters={"scale": i}, options=options).ok
        counts.append(len(os.listdir("/proc/self/fd")))  # with kernels starting or stopping in the background
    kernels.close()  # the worker's last act: nothing runs in the background any more
    after = len(os.listdir("/proc/self/fd"))
    assert after <= counts[0], (counts, after)  # it grew by 3 per job (an event loop per kernel shutdown)
