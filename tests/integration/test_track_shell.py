"""``%%track`` and ``%mlops`` in a real IPython shell, recording into a real embedded MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import mlops_nb as mnb
from tests.conftest import embedded_client


@pytest.fixture
def ip(project: Path):
    shell = InteractiveShell.instance()  # a real shell, shared by these tests
    if "mlops_nb" not in shell.extension_manager.loaded:
        shell.run_line_magic("load_ext", "mlops_nb")
    magics = shell.magics_manager.registry["MlopsMagics"]
    shell.reset(new_session=False)  # clears the namespace in place: the runner keeps seeing it
    assert magics.runner.ns is shell.user_ns
    magics.runner.records.clear()
    magics.runner.listeners.clear()
    magics.runner._cache = None
    yield shell
    shell.reset(new_session=False)


def cell(ip, code: str):
    result = ip.run_cell(code)
    return result


def stage_runs(project: Path) -> list:
    assert mnb.flush(60)
    client = embedded_client(project)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, "tags.`mlops_nb.kind` = 'stage'", order_by=["start_time"])
    return sorted(runs, key=lambda r: r.info.start_time)


def test_a_stage_runs_records_and_is_served_from_the_cache(ip, project: Path) -> None:
    cell(ip, "base = 20")
    first = cell(ip, "%%track double\nimport math\ndoubled = base * 2\nprint('doubled', doubled)\ndoubled + 1")
    assert first.success and first.result == 41
    ip.user_ns.pop("doubled")
    ip.user_ns.pop("math")
    second = cell(
        ip,
        "%%track double\nimport math  # a comment does not matter\n"
        "doubled = base*2\nprint('doubled', doubled)\ndoubled + 1",
    )
    assert second.success
    assert ip.user_ns["doubled"] == 40 and ip.user_ns["math"].__name__ == "math"  # restored, module re-imported
    runs = stage_runs(project)
    assert [r.data.tags["mlops_nb.cache_hit"] for r in runs] == ["false", "true"]
    produced, served = runs
    assert served.data.tags["mlops_nb.cache_source_run"] == produced.info.run_id
    assert served.data.tags["mlops_nb.cache_key"] == produced.data.tags["mlops_nb.cache_key"]
    assert produced.data.tags["mlops_nb.input.base"] == served.data.tags["mlops_nb.input.base"]
    assert "mlops_nb.output.doubled" in produced.data.tags
    client = embedded_client(project)
    code = Path(client.download_artifacts(produced.info.run_id, "stage/code.py", str(project))).read_text()
    assert "doubled = base * 2" in code
    stdout = Path(client.download_artifacts(produced.info.run_id, "stage/stdout.txt", str(project / "o"))).read_text()
    assert stdout == "doubled 40\n"


def test_a_changed_input_reruns_the_stage(ip, project: Path) -> None:
    cell(ip, "base = 1")
    cell(ip, "%%track inc\nnxt = base + 1")
    cell(ip, "base = 5")
    cell(ip, "%%track inc\nnxt = base + 1")
    assert ip.user_ns["nxt"] == 6
    assert [r.data.tags["mlops_nb.cache_hit"] for r in stage_runs(project)] == ["false", "false"]


def test_a_raising_cell_is_a_failed_stage_and_the_session_goes_on(ip, project: Path, capsys) -> None:
    failed = cell(ip, "%%track boom\nratio = 1 / 0")
    assert isinstance(failed.error_in_exec, ZeroDivisionError)
    assert "ZeroDivisionError" in capsys.readouterr().out  # the user sees the traceback as usual
    assert cell(ip, "%%track after\nok = 1").success
    runs = stage_runs(project)
    assert [r.info.status for r in runs] == ["FAILED", "FINISHED"]
    assert runs[0].data.tags["mlops_nb.error"] == "ZeroDivisionError: division by zero"
    trace = embedded_client(project).download_artifacts(runs[0].info.run_id, "traceback.txt", str(project))
    assert "ratio = 1 / 0" in Path(trace).read_text()
    # A failed stage is never served from the cache.
    assert not cell(ip, "%%track boom\nratio = 1 / 0").success


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%%track", "arguments are required: stage"),
        ("%%track s --bogus", "unrecognized arguments: --bogus"),
        ("%%track s --in 'not a name'", "not a Python name"),
        ("%%track s --tag novalue", "KEY=VALUE"),
        ("%%track s --in undefined_thing", "undefined_thing are not defined"),
        ('%%track "a b', "No closing quotation"),
    ],
)
def test_bad_magic_arguments_give_usage_and_record_nothing(ip, project: Path, capsys, line: str, message: str) -> None:
    result = cell(ip, f"{line}\nx = 1")
    assert not result.success
    captured = capsys.readouterr()
    assert message in captured.out + captured.err
    assert "x" not in ip.user_ns
    assert stage_runs(project) == []


def test_declared_inputs_outputs_params_tags_and_no_cache(ip, project: Path) -> None:
    cell(ip, "a = 1\nb = 2\nlr = 0.1")
    cell(ip, "%%track pick --in a --out c --params lr --tag owner=me --no-cache\nc = a + 1\ntmp = 99")
    cell(ip, "%%track pick --in a --out c --params lr --tag owner=me --no-cache\nc = a + 1\ntmp = 99")
    runs = stage_runs(project)
    assert [r.data.tags["mlops_nb.cache_hit"] for r in runs] == ["false", "false"]  # --no-cache
    run = runs[0]
    assert run.data.params == {"lr": "0.1"}
    assert run.data.tags["owner"] == "me" and run.data.tags["mlops_nb.cache_skipped"] == "--no-cache"
    # declared params are part of the key, so they are inputs too
    assert set(k for k in run.data.tags if k.startswith("mlops_nb.input.")) == {"mlops_nb.input.a", "mlops_nb.input.lr"}
    assert set(k for k in run.data.tags if k.startswith("mlops_nb.output.")) == {"mlops_nb.output.c"}


def test_quoted_arguments_are_read_as_a_shell_reads_them(ip, project: Path) -> None:
    cell(ip, "a = 1")
    assert cell(ip, "%%track \"a b\" --tag 'note=two words'\nc = a + 1").success
    (run,) = stage_runs(project)
    assert run.data.tags["mlops_nb.stage"] == "a b"
    assert run.data.tags["note"] == "two words"
    assert [r.name for r in ip.magics_manager.registry["MlopsMagics"].runner.records] == ["a b"]


def test_metrics_are_rolled_up_and_carried_by_cache_hits(ip, project: Path) -> None:
    cell(ip, "y = [1, 0, 1]")
    code = "%%track score\nimport mlops_nb as mnb\nacc = sum(y) / len(y)\nmnb.log_metric('acc', acc)"
    cell(ip, code)
    cell(ip, code)
    runs = stage_runs(project)
    assert [r.data.metrics for r in runs] == [{"acc": pytest.approx(2 / 3)}] * 2
    parent = embedded_client(project).get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert parent.data.metrics == {"acc": pytest.approx(2 / 3)} and parent.data.tags["mlops_nb.kind"] == "script"


def test_the_run_of_the_stages_gets_the_parameters_they_read_first_value_kept(ip, project: Path) -> None:
    from mlops_nb.tracking.diff import diff_runs
    from mlops_nb.tracking.reading import run_detail, stage_code

    cell(ip, "C = 0.5\nseed = 3")
    cell(ip, "%%track fit --params C,seed\nscore = C + seed")
    cell(ip, "C = 2.0")
    cell(ip, "%%track fit --params C,seed\nscore = C + seed")  # C changed: MLflow params cannot, so it keeps 0.5
    (first, again) = stage_runs(project)
    notebook_id = first.data.tags["mlflow.parentRunId"]
    notebook = embedded_client(project).get_run(notebook_id)
    assert notebook.data.params == {"C": "0.5", "seed": "3"}
    assert again.data.params == {"C": "2.0", "seed": "3"}  # the stage keeps what it read
    cell(ip, "%mlops init --experiment Default")  # ends the session's run
    with mnb.start_run("train", kind="job") as job:
        mnb.log_params({"C": 1.0, "seed": 3})
    assert mnb.flush(60)
    diff = diff_runs(run_detail(notebook_id), run_detail(job.run_id), stage_code)
    assert diff["params"] == {"C": ["0.5", "1.0"]}  # not "0.5 -> —": the notebook run has its C


def test_stages_table_and_panel(ip, project: Path) -> None:
    cell(ip, "%%track one\nv = 1")
    cell(ip, "%%track one\nv = 1")
    table = cell(ip, "%mlops stages").result
    assert list(table["stage"]) == ["one", "one"]
    assert list(table["cache_hit"]) == [False, True]
    assert all(len(run_id) == 32 for run_id in table["run_id"])
    tabs = cell(ip, "%mlops panel").result
    assert [tabs.get_title(i) for i in range(2)] == ["Stages", "Runs"]
    panel = tabs.children[0]
    assert panel.value.count("<tr>") == 3 and "⟳ cache" in panel.value
    cell(ip, "%%track two\nw = 2")
    assert panel.value.count("<tr>") == 4  # live: the panel re-rendered when the stage ran


def test_panel_runs_tab_compares_two_runs(ip, project: Path) -> None:
    from mlops_nb.widgets.runs import VEGALITE, RunsPanel, comparison

    cell(ip, "import mlops_nb as mnb")
    for c in (1.0, 0.1):
        cell(ip, f"C = {c}")
        assert cell(ip, "%%track fit --params C\nscore = 0.9 - abs(C - 0.1)\nmnb.log_metric('accuracy', score)").success
        cell(ip, "%mlops init --experiment Default")  # ends this run: the next stage starts a new one
    assert mnb.flush(60)  # the first connection to a fresh store may take longer than the panel's 15 s
    runs = RunsPanel(lambda: None)
    runs.refresh()
    assert len(runs.select.options) == 2
    runs.select.value = [value for _, value in runs.select.options]
    from mlops_nb.tracking.reading import run_detail

    chart, diff = comparison([runs._runs[i] for i in runs.select.value], run_detail)
    axes = {row["axis"] for row in chart[VEGALITE]["vconcat"][0]["data"]["values"]}
    assert axes == {"C", "accuracy"}
    (fit,) = diff.record["stages"]
    assert fit["params_changed"] == ["C"] and not fit["code_changed"]
    assert diff.record["metrics"]["accuracy"][:2] == [pytest.approx(0.0), pytest.approx(0.9)]  # older -> newer
    assert comparison([runs._runs[runs.select.value[0]]], run_detail) == ["Select two or more runs to compare them."]


def test_panel_registry_tab_promotes_behind_the_gates(ip, project: Path) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mlops_nb.widgets.registry import RegistryPanel

    X = np.random.RandomState(0).rand(40, 3)
    with mnb.start_run("train", kind="job") as job, mnb.stage("train"):
        mnb.log_model(LogisticRegression().fit(X, (X[:, 0] > 0.5).astype(int)), "model", input_example=X[:5])
        mnb.log_metric("accuracy", 0.9)
    assert mnb.flush(120)
    registry = RegistryPanel()
    registry.refresh()
    assert registry.models.options == () and "No registered models yet" in registry.versions.value
    registry.run_id.value, registry.name.value = job.run_id, "churn"

    registry.require.value = "accuracy >= 0.95"  # a gate that fails: nothing registered, the reason shown
    registry.promote()
    assert "✗ accuracy &gt;= 0.95" in registry.outcome.value and "<b>Refused</b>" in registry.outcome.value
    assert registry.models.options == ()

    registry.require.value = "accuracy >= 0.5, accuracy > 0.8"
    registry.promote()
    assert "<b>Promoted</b>: churn@champion → version 1" in registry.outcome.value
    assert registry.models.options == ("churn",) and registry.models.value == "churn"
    assert (
        "@champion" in registry.versions.value
        and "✓ accuracy &gt;= 0.5; ✓ accuracy &gt; 0.8" in registry.versions.value
    )

    registry.run_id.value = "no-such-run"  # bad input: said in the panel, nothing raised into the notebook
    registry.promote()
    assert "<b>Not promoted</b>: No run" in registry.outcome.value


def test_mlops_init_switches_experiment(ip, project: Path, capsys) -> None:
    cell(ip, "%mlops init --experiment churn-model")
    assert "experiment 'churn-model'" in capsys.readouterr().out
    cell(ip, "%%track s\nq = 1")
    runs = stage_runs(project)
    client = embedded_client(project)
    assert client.get_experiment(runs[0].info.experiment_id).name == "churn-model"
    bad = cell(ip, "%mlops init --tracking-uri no-scheme-here")
    assert not bad.success and "has no scheme" in capsys.readouterr().err
    cell(ip, "%mlops init --experiment Default")


def test_globbed_files_loop_paths_and_the_project_folder(ip, project: Path) -> None:
    """A glob is expanded and its files hashed; a path bound by a loop cannot be known before the cell runs;
    the folder that holds mlops-nb's own cache cannot be an input (it changes at every stage)."""
    (project / "data").mkdir()
    (project / "data" / "a.csv").write_text("x\n1\n")
    runner = ip.magics_manager.registry["MlopsMagics"].runner
    glob_cell = "%%track g\nimport glob\nn = len(glob.glob('data/*.csv'))"
    cell(ip, glob_cell)
    cell(ip, glob_cell)
    assert runner.records[-1].cache_hit and ip.user_ns["n"] == 1
    (project / "data" / "b.csv").write_text("x\n2\n")
    cell(ip, glob_cell)
    assert not runner.records[-1].cache_hit and ip.user_ns["n"] == 2

    cell(ip, "paths = ['data/a.csv', 'data/b.csv']")
    for _ in range(2):
        cell(ip, "%%track loop\nsizes = [len(open(p).read()) for p in paths]")
        assert not runner.records[-1].cache_hit
    cell(ip, "%%track listing\nimport os\nnames = sorted(os.listdir('.'))")
    cell(ip, "%%track listing\nimport os\nnames = sorted(os.listdir('.'))")
    assert not runner.records[-1].cache_hit
    reasons = {
        r.data.tags["mlops_nb.stage"]: r.data.tags.get("mlops_nb.cache_miss_reason", "") for r in stage_runs(project)
    }
    assert "path computed at run time: open(p)" in reasons["loop"]
    assert "mlops-nb's own records" in reasons["listing"]


def test_a_hit_gives_the_value_of_the_last_expression_itself(ip, project: Path) -> None:
    """``_`` and Out[n] hold the value a run gives, not something that only looks like it: the model that
    ``fit()`` returns *is* the restored model, a computed value compares equal."""
    cell(ip, "import numpy as np\nX = np.arange(20.0).reshape(10, 2)\ny = X[:, 0] * 2")
    code = "%%track fit\nfrom sklearn.linear_model import LinearRegression\nmodel = LinearRegression()\nmodel.fit(X, y)"
    first = cell(ip, code)
    assert first.success and first.result is ip.user_ns["model"]
    summed = cell(ip, "%%track total\ntotal = float(y.sum())\n(total, X.shape)")
    assert summed.result == (180.0, (10, 2))
    for name in ("model", "total"):
        ip.user_ns.pop(name)
    again = cell(ip, code)
    assert again.success and again.result is ip.user_ns["model"] and ip.user_ns["_"] is ip.user_ns["model"]
    assert again.result.predict(ip.user_ns["X"]) == pytest.approx(ip.user_ns["y"])
    summed = cell(ip, "%%track total\ntotal = float(y.sum())\n(total, X.shape)")
    assert summed.result == (180.0, (10, 2)) and ip.user_ns["_"] == (180.0, (10, 2))
    assert [r.data.tags["mlops_nb.cache_hit"] for r in stage_runs(project)] == ["false", "false", "true", "true"]


def test_a_restored_value_is_shown_as_the_run_showed_it(ip, project: Path, capsys) -> None:
    """The value's repr may change after the run showed it (a matplotlib label is placed when its figure is
    drawn: quantile_regression's ``Text(0, 0.5, ...)`` became ``Text(32.3, 0.5, ...)``): a hit shows the
    run's display, and ``_`` is still the value itself."""
    cell(
        ip,
        "class Shown:\n    def __init__(self):\n        self.n = 0\n"
        "    def __repr__(self):\n        self.n += 1\n        return f'shown {self.n}'",
    )
    code = "%%track show\nholder = [Shown()]\nholder[0]"
    cell(ip, code)
    assert "shown 1" in capsys.readouterr().out
    ip.user_ns.pop("holder")
    again = cell(ip, code)
    out = capsys.readouterr().out
    assert "shown 1" in out and "shown 2" not in out
    assert again.result is ip.user_ns["holder"][0] and ip.user_ns["_"] is again.result
    assert [r.data.tags["mlops_nb.cache_hit"] for r in stage_runs(project)] == ["false", "true"]


def test_a_stage_whose_outputs_cannot_be_kept_says_so_on_each_later_miss(ip, project: Path) -> None:
    cell(ip, "%%track gen\nsquares = (i * i for i in range(3))")  # a generator: not even cloudpickle saves it
    cell(ip, "%%track gen\nsquares = (i * i for i in range(3))")
    produced, again = stage_runs(project)
    assert produced.data.tags["mlops_nb.cache_skipped"].startswith("cannot save the outputs: TypeError(")
    assert again.data.tags["mlops_nb.cache_hit"] == "false"
    reason = again.data.tags["mlops_nb.cache_miss_reason"]
    assert reason.startswith("no cached result for this code and these inputs (its last run was not kept: ")
    assert "generator" in reason
    cell(ip, "%%track gen\nsquares = [i * i for i in range(3)]")  # now it can be kept: no reason left over
    cell(ip, "%%track gen\nsquares = [i * i for i in range(3)]")
    assert [r.data.tags["mlops_nb.cache_hit"] for r in stage_runs(project)][2:] == ["false", "true"]
