"""mlops-nb tune on real kernels and the embedded store: the study run, its trials, the best, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import embedded_client
from tests.notebooks import mlops_nb, runs, write_notebook

# `load` does not read the tuned parameter (a cache hit after the first trial); `score` fails for scale = 0.
TUNED = (
    "%load_ext mlops_nb",
    "%%track load\nimport numpy as np\ndata = np.arange(n)",
    "%%track score\nimport mlops_nb as mnb\nmnb.log_metric('inv', 1 / scale)\n"
    "mnb.log_metric('total', float(data.sum()))",
)


def _study(project: Path, name: str = "tuned") -> object:
    import optuna

    from mlops_nb.jobs.study import journal_path, storage

    return optuna.load_study(study_name=name, storage=storage(journal_path(project / ".mlops_nb", name)))


@pytest.mark.slow
def test_a_study_records_its_trials_tags_the_best_and_survives_a_failed_trial(project: Path) -> None:
    write_notebook(project / "tuned.ipynb", *TUNED, parameters="n = 10\nscale = 1")
    done = mlops_nb(
        "tune",
        "tuned.ipynb",
        "--space",
        "scale=choice(0,1,2,4)",
        "--sampler",
        "grid",
        "--trials",
        "4",
        "--metric",
        "inv",
        "--direction",
        "minimize",
        "--parallel",
        "2",
        "--seed",
        "0",
        "--json",
        "study.json",
        cwd=project,
    )
    assert done.returncode == 0, done.stderr
    assert "ran 4 trials" in done.stderr and "3 complete, 0 pruned, 1 failed" in done.stderr
    assert "ZeroDivisionError" in done.stderr and "best (minimize inv): trial" in done.stderr
    study_id = done.stdout.strip()
    client = embedded_client(project)
    study = client.get_run(study_id)
    assert study.info.status == "FINISHED"
    assert study.data.tags["mlops_nb.kind"] == "study" and study.data.tags["mlops_nb.study"] == "tuned"
    assert study.data.metrics["best_inv"] == pytest.approx(0.25)
    assert study.data.params["best.scale"] == "4" and study.data.params["space.scale"] == "choice(0,1,2,4)"

    every = runs(project, "tuned")
    jobs = [r for r in every if r.data.tags.get("mlflow.parentRunId") == study_id]
    assert {r.data.tags["mlops_nb.kind"] for r in jobs} == {"job"}
    by_scale = {r.data.params["scale"]: r for r in jobs}
    assert sorted(by_scale) == ["0", "1", "2", "4"]
    assert sorted(r.data.tags["mlops_nb.trial"] for r in jobs) == ["0", "1", "2", "3"]
    assert by_scale["0"].data.tags["mlops_nb.trial_state"] == "FAIL" and by_scale["0"].info.status == "FAILED"
    assert {by_scale[s].data.tags["mlops_nb.trial_state"] for s in "124"} == {"COMPLETE"}
    assert [s for s, r in by_scale.items() if r.data.tags.get("mlops_nb.best") == "true"] == ["4"]
    assert study.data.tags["mlops_nb.study.best_run"] == by_scale["4"].info.run_id
    # Stages nest under their trial as usual; `load` reads no tuned parameter: served from the cache
    loads = [r for r in every if r.data.tags.get("mlops_nb.stage") == "load"]
    assert len(loads) == 4 and any(r.data.tags["mlops_nb.cache_hit"] == "true" for r in loads)

    result = json.loads((project / "study.json").read_text())
    assert result["study"] == "tuned" and result["run_id"] == study_id
    assert result["best"] == {
        "trial": result["best"]["trial"],
        "value": 0.25,
        "params": {"scale": 4},
        "run_id": by_scale["4"].info.run_id,
    }
    assert sorted((t["state"], t["params"]["scale"]) for t in result["trials"]) == [
        ("COMPLETE", 1),
        ("COMPLETE", 2),
        ("COMPLETE", 4),
        ("FAIL", 0),
    ]
    assert {t["run_id"] for t in result["trials"]} == {r.info.run_id for r in jobs}
    assert [t.state.name for t in _study(project).trials].count("COMPLETE") == 3

    listed = mlops_nb("runs", "--kind", "study", "--json", cwd=project)
    assert [r["run_id"] for r in json.loads(listed.stdout)["runs"]] == [study_id]
    shown = mlops_nb("show", study_id, "--json", cwd=project)
    trials = json.loads(shown.stdout)["trials"]
    assert [(t["trial"], t["state"]) for t in trials] == [(t["trial"], t["state"]) for t in result["trials"]]
    assert [t["params"]["scale"] for t in trials if t["best"]] == ["4"]
    table = mlops_nb("show", study_id, cwd=project).stdout
    assert "trial" in table and "FAIL" in table and "best" in table


def test_a_metric_the_notebook_never_logs_stops_the_study_with_exit_2(project: Path) -> None:
    write_notebook(project / "tuned.ipynb", *TUNED, parameters="n = 10\nscale = 1")
    done = mlops_nb(
        "tune", "tuned.ipynb", "--space", "scale=choice(1,2)", "--trials", "3", "--metric", "acc", cwd=project
    )
    assert done.returncode == 2, done.stderr
    assert "did not log the metric 'acc' (it logged: inv, total)" in done.stderr
    assert "Pass --metric as one of those" in done.stderr
    every = runs(project, "tuned")
    assert [r.info.status for r in every if r.data.tags["mlops_nb.kind"] == "study"] == ["FAILED"]
    assert "RUNNING" not in {r.info.status for r in every}
    assert {t.state.name for t in _study(project).trials} == {"FAIL"}


def test_the_projects_space_is_read_from_pyproject(project: Path) -> None:
    write_notebook(project / "tuned.ipynb", *TUNED, parameters="n = 10\nscale = 1")
    (project / "pyproject.toml").write_text('[tool.mlops_nb.tune.space]\nscale = "loguniform(0,1)"\n')
    done = mlops_nb("tune", "tuned.ipynb", "--metric", "inv", cwd=project)
    assert done.returncode == 2, done.stderr
    assert "loguniform needs a positive low bound" in done.stderr and "[tool.mlops_nb.tune.space]" in done.stderr


@pytest.mark.parametrize(
    ("args", "fix"),
    [
        (("--space", "scael=uniform(0,1)"), "Unknown parameter 'scael'"),
        (("--space", "scale=normal(0,1)"), "write the distribution as one of"),
        ((), "The search space is empty"),
        (("--space", "scale=uniform(0,1)", "--direction", "up"), "use maximize or minimize"),
        (("--space", "scale=uniform(0,1)", "--sampler", "grid"), "scale is continuous"),
        (("--space", "scale=uniform(0,1)", "--pruner", "median(warmup=1)"), "takes no argument 'warmup'"),
        (("--space", "scale=uniform(0,1)", "--study", "../x"), "a study name is letters"),
        (("--space", "scale=uniform(0,1)", "--trials", "0"), "run at least 1 trial"),
    ],
)
def test_bad_input_exits_2_naming_the_fix_and_records_nothing(project: Path, args: tuple, fix: str) -> None:
    write_notebook(project / "tuned.ipynb", *TUNED, parameters="n = 10\nscale = 1")
    done = mlops_nb("tune", "tuned.ipynb", *args, "--metric", "inv", cwd=project)
    assert done.returncode == 2, done.stderr
    assert fix in done.stderr, done.stderr
    assert runs(project, "tuned") == []


# The third trial to start waits while the file `hold` exists: the test kills the study then.
RESUMABLE = (
    "%load_ext mlops_nb",
    "%%track work\nimport pathlib, time\nimport mlops_nb as mnb\n"
    "started = len(list(pathlib.Path('.').glob('started-*')))\npathlib.Path(f'started-{x}').write_text('1')\n"
    "while started == 2 and pathlib.Path('hold').exists():\n    time.sleep(0.1)\nmnb.log_metric('y', x * 1.0)",
)


@pytest.mark.slow
def test_a_study_killed_mid_trial_resumes_and_re_runs_that_trial(project: Path) -> None:
    import os
    import signal
    import time

    from tests.notebooks import start_mlops_nb

    write_notebook(project / "tuned.ipynb", *RESUMABLE, parameters="x = 0")
    args = ("tune", "tuned.ipynb", "--space", "x=int(0,3)", "--sampler", "grid", "--trials", "4", "--metric", "y")
    (project / "hold").write_text("")
    proc = start_mlops_nb(*args, cwd=project)
    deadline = time.monotonic() + 240
    while len(list(project.glob("started-*"))) < 3:
        assert proc.poll() is None, (project / "stderr.txt").read_text()
        assert time.monotonic() < deadline, "the third trial did not start"
        time.sleep(0.1)
    newest = max(project.glob("started-*"), key=lambda p: p.stat().st_mtime_ns)
    killed_x = int(newest.name.split("-")[1])
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    before = {t.number: (t.state.name, t.value) for t in _study(project).trials}
    assert sorted(s for s, _ in before.values()) == ["COMPLETE", "COMPLETE", "RUNNING"]
    (project / "hold").unlink()

    done = mlops_nb(*args, "--json", "study.json", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "re-ran the trials left running by a process that died" in done.stderr
    trials = _study(project).trials
    for number, (state, value) in before.items():  # the completed trials are kept as they were
        if state == "COMPLETE":
            assert (trials[number].state.name, trials[number].value) == (state, value)
    killed = next(n for n, (s, _) in before.items() if s == "RUNNING")
    assert trials[killed].state.name == "FAIL" and trials[killed].params == {"x": killed_x}
    rerun = [t for t in trials if t.user_attrs.get("mlops_nb.rerun_of") == killed]
    assert len(rerun) == 1 and rerun[0].state.name == "COMPLETE" and rerun[0].params == {"x": killed_x}
    assert sorted(t.params["x"] for t in trials if t.state.name == "COMPLETE") == [0, 1, 2, 3]
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]

    every = runs(project, "tuned")
    assert "RUNNING" not in {r.info.status for r in every}
    studies = sorted((r for r in every if r.data.tags["mlops_nb.kind"] == "study"), key=lambda r: r.info.start_time)
    assert [r.info.status for r in studies] == ["KILLED", "FINISHED"]
    assert studies[1].data.tags["mlops_nb.study.resumes"] == studies[0].info.run_id
    complete = [r for r in every if r.data.tags.get("mlops_nb.trial_state") == "COMPLETE"]
    assert sorted(r.data.params["x"] for r in complete) == ["0", "1", "2", "3"]  # none lost, none twice
    result = json.loads((project / "study.json").read_text())
    assert [t["state"] for t in result["trials"]].count("COMPLETE") == 4


# Reports x * step for steps 0-4; a trial the median pruner stops never logs `final`.
REPORTING = (
    "%load_ext mlops_nb",
    "%%track fit\nimport mlops_nb as mnb\nfor step in range(5):\n    mnb.report(x * step, step)\n"
    "mnb.log_metric('score', x * 4.0)",
    "mnb.log_metric('final', 1.0)",
)


@pytest.mark.slow
def test_mnb_report_lets_the_pruner_stop_a_trial_and_keeps_its_values(project: Path) -> None:
    write_notebook(project / "tuned.ipynb", *REPORTING, parameters="x = 1")
    done = mlops_nb(
        "tune", "tuned.ipynb", "--space", "x=choice(4,1,3,2)", "--sampler", "grid", "--seed", "1", "--trials", "4",
        "--metric", "score", "--pruner", "median(n_startup_trials=1)", "--json", "study.json", cwd=project,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads((project / "study.json").read_text())
    pruned = [t for t in result["trials"] if t["state"] == "PRUNED"]
    assert pruned, done.stderr  # grid order with seed 1: a lower x follows a higher one
    client = embedded_client(project)
    for trial in pruned:
        run = client.get_run(trial["run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["mlops_nb.trial_state"] == "PRUNED"
        assert "TrialPruned: pruned at step" in run.data.tags["mlops_nb.error"]
        assert "final" not in run.data.metrics  # it stopped at once
        history = client.get_metric_history(trial["run_id"], "intermediate_value")
        steps = sorted(m.step for m in history)
        assert steps == list(range(len(steps))) and len(steps) < 5  # the values up to the pruning step are kept
    study = _study(project)
    assert {t.number for t in study.trials if t.state.name == "PRUNED"} == {t["trial"] for t in pruned}
    assert all(t.intermediate_values for t in study.trials)  # the kernels reported into the study


def test_mnb_report_outside_a_tune_is_log_metric(project: Path) -> None:
    from tests.conftest import python

    done = python(
        "import sys, mlops_nb as mnb\nwith mnb.stage('fit'):\n    [mnb.report(0.5 * s, s) for s in range(3)]\n"
        "    mnb.report(2.0, 0, name='loss')\nprint('optuna' in sys.modules)",
        cwd=project,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"  # no Optuna needed outside a study
    client = embedded_client(project)
    stage = next(r for r in runs(project, "Default") if r.data.tags.get("mlops_nb.stage") == "fit")
    values = [(m.step, m.value) for m in client.get_metric_history(stage.info.run_id, "intermediate_value")]
    assert sorted(values) == [(0, 0.0), (1, 0.5), (2, 1.0)] and stage.data.metrics["loss"] == 2.0


@pytest.mark.slow
def test_a_study_on_a_dask_cluster_gives_the_same_records(project: Path) -> None:
    write_notebook(project / "tuned.ipynb", *TUNED, parameters="n = 10\nscale = 1")
    done = mlops_nb(
        "tune", "tuned.ipynb", "--space", "scale=choice(1,2,4)", "--sampler", "grid", "--trials", "3",
        "--metric", "inv", "--direction", "minimize", "--parallel", "2", "--executor", "dask", cwd=project,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    study_id = done.stdout.strip()
    client = embedded_client(project)
    assert client.get_run(study_id).data.metrics["best_inv"] == pytest.approx(0.25)
    jobs = [r for r in runs(project, "tuned") if r.data.tags.get("mlflow.parentRunId") == study_id]
    assert sorted(r.data.params["scale"] for r in jobs) == ["1", "2", "4"]
    assert {(r.info.status, r.data.tags["mlops_nb.trial_state"]) for r in jobs} == {("FINISHED", "COMPLETE")}
    assert [r.data.params["scale"] for r in jobs if r.data.tags.get("mlops_nb.best") == "true"] == ["4"]


TRAINED = (
    "%load_ext mlops_nb",
    "%%track train\nimport numpy as np\nimport mlops_nb as mnb\nfrom sklearn.linear_model import LogisticRegression\n"
    "X = np.random.RandomState(0).rand(60, 3)\ny = (X[:, 0] > 0.5).astype(int)\n"
    "model = LogisticRegression(C=C).fit(X, y)\nmnb.log_metric('accuracy', model.score(X, y))\n"
    "mnb.log_model(model, 'model', input_example=X[:5])",
)


@pytest.mark.slow
def test_promote_study_registers_the_best_trials_model_through_the_gates(project: Path) -> None:
    write_notebook(project / "tuned.ipynb", *TRAINED, parameters="C = 1.0")
    done = mlops_nb(
        "tune", "tuned.ipynb", "--space", "C=choice(0.001,10.0)", "--sampler", "grid", "--trials", "2",
        "--metric", "accuracy", "--study", "churn-study", "--json", "study.json", cwd=project,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    best = json.loads((project / "study.json").read_text())["best"]
    assert best["params"] == {"C": 10.0}
    refused = mlops_nb("promote", "--study", "churn-study", "--name", "churn", "--require", "accuracy >= 1.1",
                       cwd=project)  # fmt: skip
    assert refused.returncode == 3, refused.stderr + refused.stdout
    promoted = mlops_nb("promote", "--study", done.stdout.strip(), "--name", "churn", cwd=project)
    assert promoted.returncode == 0, promoted.stderr + promoted.stdout
    assert f"The best trial of study {done.stdout.strip()!r} is run {best['run_id']}" in promoted.stdout
    client = embedded_client(project)
    version = client.get_model_version_by_alias("churn", "champion")
    assert version.tags["mlops_nb.source_run"] == best["run_id"]
    unknown = mlops_nb("promote", "--study", "nope", "--name", "churn", cwd=project)
    assert unknown.returncode == 2 and "No study 'nope'" in unknown.stderr


@pytest.mark.slow
def test_mnb_tune_from_python_returns_the_result_and_the_optuna_study(project: Path) -> None:
    from tests.conftest import python

    write_notebook(project / "tuned.ipynb", *TUNED, parameters="n = 10\nscale = 1")
    done = python(
        "import json, mlops_nb as mnb\n"
        "r = mnb.tune('tuned.ipynb', {'scale': 'choice(1,2)'}, trials=2, metric='inv', direction='minimize',"
        " sampler='grid')\nprint(json.dumps([r.best.params, r.study.best_value, r.run_id, len(r.trials)]))",
        cwd=project,
    )
    assert done.returncode == 0, done.stderr
    params, value, run_id, n = json.loads(done.stdout.strip().splitlines()[-1])
    assert (params, value, n) == ({"scale": 2}, 0.5, 2)
    assert embedded_client(project).get_run(run_id).data.tags["mlops_nb.kind"] == "study"


@pytest.mark.slow
def test_an_interrupted_study_ends_killed_and_queues_the_running_trial_again(project: Path) -> None:
    import signal
    import time

    from tests.notebooks import start_mlops_nb

    write_notebook(project / "tuned.ipynb", *RESUMABLE, parameters="x = 0")
    (project / "hold").write_text("")
    proc = start_mlops_nb(
        "tune", "tuned.ipynb", "--space", "x=int(0,3)", "--sampler", "grid", "--trials", "4", "--metric", "y",
        cwd=project,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while len(list(project.glob("started-*"))) < 3:
        assert proc.poll() is None, (project / "stderr.txt").read_text()
        assert time.monotonic() < deadline, "the third trial did not start"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)  # as a cancelled CI job or kill: Ctrl-C's path
    assert proc.wait(120) == 130, (project / "stderr.txt").read_text()
    trials = _study(project).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL", "WAITING"]
    assert trials[3].user_attrs["mlops_nb.rerun_of"] == 2  # queued with trial 2's parameters: the next run re-runs it
    every = runs(project, "tuned")
    assert "RUNNING" not in {r.info.status for r in every}
    assert [r.info.status for r in every if r.data.tags["mlops_nb.kind"] == "study"] == ["KILLED"]


# Half a second a trial, so that two studies' trials overlap; y peaks at x = 3.
SHARED = (
    "%load_ext mlops_nb",
    "%%track score\nimport time\nimport mlops_nb as mnb\ntime.sleep(0.5)\nmnb.log_metric('y', -(x - 3) ** 2 * 1.0)",
)


@pytest.mark.slow
def test_two_tune_processes_share_one_study_without_losing_or_repeating_a_trial(project: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import SETTING_VARS

    write_notebook(project / "shared.ipynb", *SHARED, parameters="x = 0")
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    procs = []
    for seed in ("1", "2"):  # started together: both open the study, ask and tell on it at once
        args = ["tune", "shared.ipynb", "--space", "x=int(0,6)", "--sampler", "random", "--seed", seed]
        args += ["--trials", "8", "--metric", "y", "--study", "both", "--json", f"study-{seed}.json"]
        procs.append(
            subprocess.Popen(
                [str(Path(sys.executable).parent / "mlops-nb"), *args],
                cwd=project,
                env=env,
                stdout=subprocess.PIPE,
                stderr=(project / f"stderr-{seed}.txt").open("w"),
                text=True,
            )
        )
    for proc, seed in zip(procs, ("1", "2"), strict=True):
        assert proc.wait(300) == 0, (project / f"stderr-{seed}.txt").read_text()
    summaries = [(project / f"stderr-{s}.txt").read_text() for s in ("1", "2")]
    assert all("study 'both'" in text for text in summaries)

    trials = _study(project, "both").trials
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(numbers)))  # one trial per number: none asked twice
    # Each process asks only while fewer than --trials are counted; a second process asking at the same moment
    # may add one more.
    assert 8 <= len(trials) <= 9
    assert {t.state.name for t in trials} == {"COMPLETE"}
    owners = {t.user_attrs["mlops_nb.owner"].split(":")[1] for t in trials}
    assert len(owners) == 2  # both processes ran trials of the study

    every = runs(project, "shared")
    assert "RUNNING" not in {r.info.status for r in every}
    jobs = [r for r in every if r.data.tags["mlops_nb.kind"] == "job"]
    assert sorted(int(r.data.tags["mlops_nb.trial"]) for r in jobs) == numbers  # none lost, none twice
    assert {r.data.tags["mlops_nb.trial_state"] for r in jobs} == {"COMPLETE"}
    by_trial = {int(r.data.tags["mlops_nb.trial"]): r for r in jobs}
    for t in trials:  # the job run of each trial holds that trial's point and value
        assert by_trial[t.number].data.params["x"] == str(t.params["x"])
        assert by_trial[t.number].data.metrics["y"] == t.value

    best = max(t.value for t in trials)
    tagged = [r for r in jobs if r.data.tags.get("mlops_nb.best") == "true"]
    assert len(tagged) == 1 and tagged[0].data.metrics["y"] == best
    last = json.loads(max(project.glob("study-*.json"), key=lambda p: p.stat().st_mtime_ns).read_text())
    assert last["best"]["value"] == best and len(last["trials"]) == len(trials)
    assert last["best"]["run_id"] == tagged[0].info.run_id
    studies = [r for r in every if r.data.tags["mlops_nb.kind"] == "study"]
    assert sorted(r.info.status for r in studies) == ["FINISHED", "FINISHED"]
    assert max(r.data.metrics["best_y"] for r in studies) == best


@pytest.mark.slow
def test_mnb_tune_in_a_notebook_shows_a_live_widget_of_the_trials(project: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    write_notebook(project / "tuned.ipynb", *TUNED, parameters="n = 10\nscale = 1")
    driver = write_notebook(
        project / "driver.ipynb",
        "import mlops_nb as mnb\nr = mnb.tune('tuned.ipynb', {'scale': 'choice(0,1,2)'}, trials=3, metric='inv',"
        " direction='minimize', sampler='grid')\nprint('BEST', r.best.number, r.best.value)",
    )
    nb = nbformat.read(driver, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(project)}}).execute()
    outputs = nb.cells[0].outputs
    shown = [
        o for o in outputs if o.output_type == "display_data" and "application/vnd.jupyter.widget-view+json" in o.data
    ]
    assert len(shown) == 1  # displayed once, as the tune started (before the summary printed at its end)
    assert outputs.index(shown[0]) < next(i for i, o in enumerate(outputs) if "BEST" in o.get("text", ""))
    best = next(o for o in outputs if "BEST" in o.get("text", "")).text.split()
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    models = {k: m["state"] for k, m in state.items()}
    (progress,) = [m for m in models.values() if m.get("_model_name") == "IntProgressModel"]
    assert (progress["value"], progress["max"]) == (3, 3)
    texts = [m["value"] for m in models.values() if m.get("_model_name") == "HTMLModel"]
    (summary,) = [t for t in texts if "trials" in t and "<svg" not in t]
    assert "3/3 trials" in summary and "2 complete, 0 pruned, 1 fail" in summary
    assert f"best minimize inv = <b>{float(best[2]):.6g}</b>" in summary and "scale=2" in summary
    (chart,) = [t for t in texts if "<svg" in t]
    assert chart.count('<circle class="trial"') == 2 and chart.count('class="trial-fail"') == 1  # scale=0 failed
    assert '<polyline class="best"' in chart


# Whether NumPy is imported before the notebook imports it, and a number from its global generator.
PRELOADED = (
    "import sys\nbefore = 'numpy' in sys.modules",
    "import numpy as np\nimport mlops_nb as mnb\nmnb.log_metric('preloaded', float(before))\n"
    "mnb.log_metric('draw', float(np.random.rand()) + x * 0)",
)


@pytest.mark.slow
def test_trial_kernels_start_with_the_notebooks_libraries_imported_and_their_own_random_numbers(
    project: Path,
) -> None:
    write_notebook(project / "pre.ipynb", *PRELOADED, parameters="x = 0")
    args = ("tune", "pre.ipynb", "--space", "x=choice(1,2,3)", "--sampler", "grid", "--trials", "3")
    done = mlops_nb(*args, "--metric", "draw", "--json", "study.json", cwd=project)
    assert done.returncode == 0, done.stderr
    jobs = [r for r in runs(project, "pre") if r.data.tags["mlops_nb.kind"] == "job"]
    assert [r.data.metrics["preloaded"] for r in jobs] == [1.0, 1.0, 1.0]  # imported once, in the zygote
    assert len({r.data.metrics["draw"] for r in jobs}) == 3  # each kernel reseeded: no trial repeats another's
    plain = mlops_nb("run", "pre.ipynb", cwd=project)  # outside a tune nothing is imported ahead
    assert plain.returncode == 0, plain.stderr
    (run,) = [r for r in runs(project, "pre") if r.info.run_id == plain.stdout.strip().splitlines()[-1]]
    assert run.data.metrics["preloaded"] == 0.0
