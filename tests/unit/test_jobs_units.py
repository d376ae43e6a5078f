"""Pure parts of the jobs layer: requirements, parameters, grids, journal summaries, JUnit, comparisons."""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mlops_nb.exceptions import UsageError
from mlops_nb.gates import parse_requirement
from mlops_nb.jobs.ci import CiJob, CiOutcome, junit_xml, load_config
from mlops_nb.jobs.job import JobResult, summarize
from mlops_nb.jobs.parameters import check_names, read_file, typed
from mlops_nb.jobs.reproduce import compare_inputs, compare_metrics, environment_differences
from mlops_nb.jobs.sweep import combinations, parse_grid


@pytest.mark.parametrize(
    ("text", "metrics", "ok", "message"),
    [
        ("accuracy >= 0.9", {"accuracy": 0.93}, True, "accuracy = 0.93, holds"),
        ("accuracy>=0.9", {"accuracy": 0.85}, False, "0.05 below the threshold"),
        ("loss < 0.2", {"loss": 0.25}, False, "0.05 above the threshold"),
        ("rmse <= 1e-3", {"rmse": 0.001}, True, "holds"),
        ("f1 == 1", {"f1": 1.0}, True, "holds"),
        ("drift != 0", {"drift": 0.0}, False, "equal to it"),
        ("auc > 0.5", {"auc": math.nan}, False, "auc is NaN (not a number), so it cannot hold"),
        ("loss != 1", {"loss": math.nan}, False, "loss is NaN"),
        ("acuracy > 0.5", {"accuracy": 0.9}, False, "Did you mean 'accuracy'?"),
    ],
)
def test_requirements(text: str, metrics: dict, ok: bool, message: str) -> None:
    result = parse_requirement(text).check(metrics)
    assert result.ok is ok
    assert message in result.message


@pytest.mark.parametrize("text", ["accuracy", "accuracy >= high", ">= 0.9", "a => 1", "", "auc > nan"])
def test_malformed_requirements_name_the_fix(text: str) -> None:
    with pytest.raises(UsageError, match=r"METRIC OP VALUE|not a number|Give a number"):
        parse_requirement(text)


@pytest.mark.parametrize("text", ["accuracy >= ", "accuracy >=", "loss <=  ", "a >== 1"])
def test_a_requirement_without_its_value_shows_the_form(text: str) -> None:
    with pytest.raises(UsageError, match="METRIC OP VALUE"):  # not "compares with '='"
        parse_requirement(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("-2", -2),
        ("0.5", 0.5),
        ("1e3", 1000.0),
        ("True", True),
        ("False", False),
        ("None", None),
        ("abc", "abc"),
        ("true", "true"),
        ("", ""),
    ],
)
def test_parameters_are_typed_as_papermill_types_them(text: str, value: object) -> None:
    assert typed(text) == value and type(typed(text)) is type(value)


def test_parameter_files(tmp_path: Path) -> None:
    good = tmp_path / "p.yaml"
    good.write_text("alpha: 0.5\nlayers: [1, 2]\nname: run\n")
    assert read_file(good) == {"alpha": 0.5, "layers": [1, 2], "name": "run"}
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_file(empty) == {}
    with pytest.raises(UsageError, match="Cannot read the parameter file"):
        read_file(tmp_path / "missing.yaml")


def _nb(*sources: str, tags: tuple[str, ...] = ("parameters",)) -> dict:
    cells = [{"cell_type": "code", "source": s, "metadata": {"tags": list(tags)}} for s in sources[:1]]
    cells += [{"cell_type": "code", "source": s, "metadata": {}} for s in sources[1:]]
    return {"cells": cells}


def test_parameter_names_come_from_the_parameters_cell() -> None:
    nb = _nb("alpha = 0.1  # learning rate\nepochs: int = 3\nx, y = 1, 2", "beta = 1")
    check_names("nb.ipynb", nb, {"alpha": 1, "epochs": 2, "x": 0}, allow_new=False)
    with pytest.raises(UsageError, match=r"Unknown parameter 'beta'.*sets alpha, epochs, x, y"):
        check_names("nb.ipynb", nb, {"beta": 1}, allow_new=False)
    check_names("nb.ipynb", nb, {"beta": 1}, allow_new=True)
    with pytest.raises(UsageError, match="no cell tagged 'parameters'"):
        check_names("nb.ipynb", _nb("a = 1", tags=()), {"a": 2}, allow_new=False)


def test_grids_and_their_combinations() -> None:
    grid = parse_grid(["alpha=0.1,1", "kind=rbf,linear", 'label=["a,b", c]'])
    assert grid == {"alpha": [0.1, 1], "kind": ["rbf", "linear"], "label": ["a,b", "c"]}
    points = combinations(grid)
    assert len(points) == 8 and points[0] == {"alpha": 0.1, "kind": "rbf", "label": "a,b"}
    drawn = combinations(grid, sample=3, seed=7)
    assert drawn == combinations(grid, sample=3, seed=7) and len({str(p) for p in drawn}) == 3
    assert len(combinations(grid, sample=100, seed=1)) == 8
    for bad in (["alpha"], ["alpha="], ["1x=1"], ["a=1", "a=2"], ["a=[1"]):
        with pytest.raises(UsageError):
            parse_grid(bad)


def test_summary_of_a_kernel_journal() -> None:
    job = "J"
    records = [
        {"op": "start", "run": "s1", "parent": job, "tags": {"mlops_nb.stage": "load"}},
        {"op": "tag", "run": "s1", "k": "mlops_nb.duration_s", "v": "0.250"},
        {"op": "metric", "run": "s1", "k": "loss", "v": 0.5, "step": 0, "t": 1, "rollup": job},
        {"op": "metric", "run": "s1", "k": "loss", "v": 0.4, "step": 1, "t": 2, "rollup": job},
        {"op": "end", "run": "s1", "status": "FINISHED"},
        {"op": "start", "run": "s2", "parent": job, "tags": {"mlops_nb.stage": "train"}},
        {"op": "tag", "run": "s2", "k": "mlops_nb.cache_hit", "v": "true"},
        {"op": "metric", "run": "s2", "k": "loss", "v": 0.9, "step": 0, "t": 3, "rollup": job},  # earlier step
        {"op": "metric", "run": job, "k": "direct", "v": 1.0, "step": 0, "t": 4, "rollup": None},
        {"op": "metric", "run": "other", "k": "elsewhere", "v": 1.0, "step": 0, "t": 4, "rollup": None},
    ]
    metrics, stages = summarize(records, job)
    assert metrics == {"loss": 0.4, "direct": 1.0}  # MLflow's latest: highest step, then newest
    assert [(s.name, s.status, s.cache_hit, s.duration) for s in stages] == [
        ("load", "FINISHED", False, 0.25),
        ("train", "KILLED", True, None),  # never ended: its kernel died
    ]


def test_metric_and_input_comparisons() -> None:
    assert compare_metrics({"a": 1.0, "b": 2.0}, {"a": 1.0 + 1e-12, "b": 2.0}, 1e-9, 0) == []
    diffs = compare_metrics({"a": 1.0, "gone": 1.0}, {"a": 1.1, "new": 2.0}, 0.01, 0)
    assert [d.what for d in diffs] == ["metric a", "metric gone", "metric new"]
    assert "relative difference 0.1" in str(diffs[0])
    assert compare_metrics({"a": 0.0}, {"a": 1e-4}, 0, 1e-3) == []
    changed = compare_inputs({"load": {"path": "x", "df": "1"}}, {"load": {"path": "x", "df": "2"}})
    assert [d.what for d in changed] == ["stage 'load' input 'df' fingerprint"]


def test_environment_differences() -> None:
    old = "numpy==1.0\npandas==2.0\nrequests==2.0\n"
    new = "numpy==1.1\npandas==2.0\nscipy==1.0\n"
    assert environment_differences(old, new) == [
        "numpy 1.0 -> 1.1",
        "requests 2.0 is not installed now",
        "scipy 1.0 is installed now, not recorded",
    ]


def _result(outcome: str, message: str = "") -> JobResult:
    return JobResult("r" * 32, "k", "e", outcome, message, {}, [], [], 1.5)


def test_junit_counts_failures_and_errors() -> None:
    job = CiJob("a", Path("nb/a.ipynb"))
    outcomes = [
        CiOutcome(job, _result("succeeded"), duration=1.0),
        CiOutcome(CiJob("b", Path("nb/b.ipynb")), _result("requirement_failed", "requirement not met"), duration=2.0),
        CiOutcome(CiJob("c", Path("nb/c.ipynb")), _result("kernel_died", "the kernel died"), duration=0.5),
        CiOutcome(CiJob("d", Path("nb/d.ipynb")), None, "Notebook nb/d.ipynb does not exist"),
    ]
    root = ET.fromstring(junit_xml(outcomes).encode())
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "2")
    assert float(suite.get("time")) == pytest.approx(3.5)
    kinds = [[child.tag for child in case if child.tag in ("failure", "error")] for case in suite]
    assert kinds == [[], ["failure"], ["error"], ["error"]]


def test_ci_config_errors(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.mlops_nb.ci]\n[[tool.mlops_nb.ci.jobs]]\nnotebok = 'x.ipynb'\n")
    with pytest.raises(UsageError, match="needs a 'notebook'"):
        load_config(None, tmp_path)
    (tmp_path / "ci.yaml").write_text("jobs:\n  - notebook: a.ipynb\n    requires: ['x > 1']\n")
    with pytest.raises(UsageError, match=r"unknown key.*requires"):
        load_config(tmp_path / "ci.yaml", tmp_path)
    (tmp_path / "ci.yaml").write_text("jobs:\n  - notebook: a.ipynb\n    require: x > 1\n    timeout: 5\n")
    (job,), _ = load_config(tmp_path / "ci.yaml", tmp_path)
    assert (job.name, job.timeout, [str(r) for r in job.requirements]) == ("a", 5.0, ["x > 1"])


def test_ci_cache_switch_is_shared_or_per_job(tmp_path: Path) -> None:
    (tmp_path / "ci.yaml").write_text(
        "cache: false\njobs:\n  - notebook: a.ipynb\n  - notebook: b.ipynb\n    cache: true\n  - notebook: c.ipynb\n"
    )
    jobs, _ = load_config(tmp_path / "ci.yaml", tmp_path)
    assert [(j.name, j.cache) for j in jobs] == [("a", False), ("b", True), ("c", False)]
    (tmp_path / "ci.yaml").write_text("jobs:\n  - notebook: a.ipynb\n")
    assert [j.cache for j in load_config(tmp_path / "ci.yaml", tmp_path)[0]] == [True]


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(7)
)  # ~400 bytes; h is 9**8 = 43 million strings once expanded


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    import time

    from mlops_nb.jobs.parameters import read_yaml

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    assert bomb.stat().st_size < 500
    started = time.monotonic()
    with pytest.raises(UsageError, match=r"bomb.yaml expands to more than 1,000,000 YAML nodes"):
        read_file(bomb)
    with pytest.raises(UsageError, match="--parameters-yaml text expands to more than 1,000,000"):
        read_yaml(ALIAS_BOMB)
    with pytest.raises(UsageError, match="--grid x expands to more than"):
        parse_grid(["x=[" + ALIAS_BOMB.replace("\n", ", ").replace(": ", ": ").rstrip(", ") + "]"])
    assert time.monotonic() - started < 2
    # Aliases within the bound stay usable.
    assert read_yaml("base: &b {lr: 0.1}\nrun: *b") == {"base": {"lr": 0.1}, "run": {"lr": 0.1}}


def test_a_parameters_file_over_1_mb_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("x: '" + "a" * 1_100_000 + "'\n")
    with pytest.raises(UsageError, match=r"big.yaml is 1,100,00\d bytes; parameter files are limited to 1,000,000"):
        read_file(big)


def test_parameter_values_are_checked_before_anything_runs() -> None:
    import datetime

    from mlops_nb.jobs.parameters import check_values

    assert check_values({"day": datetime.date(2001, 12, 14), "when": [datetime.datetime(2001, 12, 14, 21, 59)]}) == {
        "day": "2001-12-14",  # as papermill injects dates: their text
        "when": ["2001-12-14 21:59:00"],
    }
    with pytest.raises(UsageError, match=r"Parameter 'label' is 6,001 characters.*at most 6,000"):
        check_values({"label": "x" * 6001})
    with pytest.raises(UsageError, match=r"name '\.\./x' is not a Python name"):
        check_values({"../x": 1})
    with pytest.raises(UsageError, match="name 'class' is not a Python name"):
        check_values({"class": 1})
    with pytest.raises(UsageError, match="Parameter 'tags' holds a set"):
        check_values({"tags": {1, 2}})


def test_a_parameters_cell_with_a_syntax_error_says_so() -> None:
    nb = _nb("alpha = 0.1\nbeta = (", "x = 1")
    with pytest.raises(UsageError, match=r"'parameters' cell of nb.ipynb \(cell 1\) has a syntax error at line 2"):
        check_names("nb.ipynb", nb, {"alpha": 1}, allow_new=False)


def test_a_ctrl_c_that_surfaced_as_another_error_is_still_an_interrupt() -> None:
    """A Ctrl-C breaking into asyncio may surface as InvalidStateError with the KeyboardInterrupt in its chain
    (seen once under load while a kernel started): the job is interrupted (exit 130), not a failed execution."""
    import asyncio

    from mlops_nb.jobs.job import INTERRUPTED, _classify

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise asyncio.InvalidStateError("invalid state")  # noqa: B904 - as asyncio raises it
    except asyncio.InvalidStateError as e:
        error = e
    import nbformat

    nb = nbformat.v4.new_notebook()
    assert _classify(nb, error)[0] == INTERRUPTED
    assert _classify(nb, asyncio.InvalidStateError("alone"))[0] != INTERRUPTED


def test_the_dask_executor_without_dask_installed_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_nb.jobs import sweep

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if `pip install mlops-nb` had no [dask]
    with pytest.raises(UsageError, match=r"pip install 'mlops-nb\[dask\]'"):
        sweep.dask_client(None, 1)


def test_a_notebooks_parameter_defaults_are_the_literals_its_parameters_cell_assigns() -> None:
    from mlops_nb.stages.params import defaults

    cell = "C = 1.0\nlayers: list = [2, 3]\npath = Path('x')\nname = 'a'\nlabel = name + 'b'\nn = 1\nn = f(n)\n"
    nb = {
        "cells": [
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": cell},
            {"cell_type": "code", "metadata": {}, "source": "seed = 5"},
        ]
    }
    assert defaults(nb) == {"C": 1.0, "layers": [2, 3], "name": "a"}
    assert defaults({"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "x = ("}]}) == {}


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals reach the main thread")
def test_a_ctrl_c_during_a_kernel_launch_takes_effect_once_the_launch_is_done() -> None:
    """A Ctrl-C between a kernel's fork and its manager holding the process must not leave the kernel
    behind: it waits for the launch, then interrupts as it would have."""
    from mlops_nb.jobs.kernels import signals_held

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    finished = False
    try:
        with pytest.raises(KeyboardInterrupt), signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # a handler would have run by now
            finished = True
        assert finished
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
