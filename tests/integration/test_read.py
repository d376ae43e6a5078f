"""``mlops-nb runs / show / diff / lineage`` on real runs of tracked notebooks and a real registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import mlops_nb as mnb
from mlops_nb.cli import main
from mlops_nb.tracking import reading
from mlops_nb.tracking.diff import diff_runs
from tests.notebooks import PIPELINE, PIPELINE_PARAMETERS, mlops_nb, write_notebook

pytestmark = pytest.mark.slow


def job(project: Path, *args: str) -> str:
    done = mlops_nb("run", "nb.ipynb", *args, cwd=project)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_diff_traces_a_parameter_and_a_code_change_to_the_stages_they_touch(project: Path) -> None:
    write_notebook(project / "nb.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    a = job(project)
    b = job(project, "-p", "scale", "2.0")  # read by `load`, and through its output by `score`
    edited = list(PIPELINE)
    edited[2] = edited[2].replace("total = float(data.sum())", "total = float(data.sum()) + 1")
    write_notebook(project / "nb.ipynb", *edited, parameters=PIPELINE_PARAMETERS)
    c = job(project)  # same parameters, new code in `score` only

    code, out = cli("diff", a, b, "--json")
    assert code == 0, out
    by_param = json.loads(out)
    assert by_param["params"] == {"scale": ["1.0", "2.0"]}  # the default against the injected value
    assert by_param["metrics"]["total"] == [45.0, 90.0, 45.0]
    stages = {s["stage"]: s for s in by_param["stages"]}
    assert stages["load"]["params_changed"] == ["scale"] and not stages["load"]["code_changed"]
    assert stages["score"]["inputs_changed"] == ["data", "scale"]  # the change reached it through `data`
    assert not stages["score"]["code_changed"]

    by_code = reading.run_detail(a), reading.run_detail(c)
    result = diff_runs(*by_code, reading.stage_code)
    stages = {s["stage"]: s for s in result["stages"]}
    assert stages["load"] == {**stages["load"], "code_changed": False, "params_changed": [], "inputs_changed": []}
    assert stages["load"]["cache_hit"] == [False, True]
    score = stages["score"]
    assert score["code_changed"] and score["params_changed"] == [] and score["inputs_changed"] == []
    assert "-total = float(data.sum())\n" in score["code_diff"]
    assert "+total = float(data.sum()) + 1\n" in score["code_diff"]
    assert score["metrics"]["total"] == [45.0, 46.0, 1.0] and score["cache_hit"] == [False, False]

    code, text = cli("diff", a, c)
    assert code == 0 and "score: code changed" in text and "load: unchanged; cache ran/hit" in text


def test_runs_and_show_page_newest_first_and_list_stages(project: Path) -> None:
    write_notebook(project / "nb.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    first = job(project)
    second = job(project, "-p", "n", "3")
    code, out = cli("runs", "nb.ipynb", "--limit", "1", "--json")
    page = json.loads(out)
    assert code == 0 and [r["run_id"] for r in page["runs"]] == [second] and page["next_page_token"]
    code, out = cli("runs", "--limit", "1", "--page-token", page["next_page_token"], "--json")
    assert [r["run_id"] for r in json.loads(out)["runs"]] == [first]
    assert reading.list_runs(kind="sweep")["runs"] == []
    assert reading.list_runs("other.ipynb")["runs"] == []

    code, out = cli("show", second, "--json")
    detail = json.loads(out)
    assert code == 0 and detail["kind"] == "job" and detail["params"] == {"n": "3", "scale": "1.0", "label": "a"}
    assert [(s["stage"], s["status"]) for s in detail["stages"]] == [("load", "FINISHED"), ("score", "FINISHED")]
    assert detail["stages"][1]["metrics"]["total"] == 3.0
    code, text = cli("show", second)
    assert code == 0 and "load" in text and "score" in text and "total=3" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "no-such-run"), "No run 'no-such-run'"),
        (("diff", "no-such-run", "other"), "No run 'no-such-run'"),
        (("runs", "--experiment", "nope"), "No experiment 'nope'"),
        (("lineage", "models:/missing@champion"), "No model version 'models:/missing@champion'"),
        (("lineage", "runs:/abc/model"), "give models:/NAME@ALIAS or models:/NAME/VERSION"),
        (("runs", "--limit", "0"), "0 is not in the range"),
    ],
)
def test_bad_ids_and_names_exit_2_naming_the_fix(project: Path, args: tuple[str, ...], message: str) -> None:
    mnb.log_metric("x", 1.0)  # a store with one run in it
    mnb.end_run()
    assert mnb.flush(60)
    code, out = cli(*args)
    assert code == 2 and message in out


def test_lineage_goes_from_the_version_to_its_run_stages_and_evidence(project: Path) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    X = np.random.RandomState(0).rand(40, 3)
    y = (X[:, 0] > 0.5).astype(int)
    with mnb.start_run("train", kind="job") as run, mnb.stage("train"):
        mnb.log_model(LogisticRegression().fit(X, y), "model", input_example=X[:5])
        mnb.log_metric("accuracy", 0.9)
    assert mnb.flush(120)
    code, out = cli("promote", run.run_id, "--name", "churn", "--alias", "champion")
    assert code == 0, out
    code, out = cli("lineage", "models:/churn@champion", "--json")
    assert code == 0, out
    found = json.loads(out)
    assert found["model"]["name"] == "churn" and found["model"]["aliases"] == ["champion"]
    assert found["source_run"]["run_id"] == run.run_id
    assert [s["stage"] for s in found["source_run"]["stages"]] == ["train"]
    assert found["model_run"] == found["source_run"]["stages"][0]["run_id"]
    assert found["evidence"]["mlops_nb.source_run"] == run.run_id
    assert found["monitors"] == []
    code, text = cli("lineage", "models:/churn/1")
    assert code == 0 and "churn version 1 @champion" in text and "stage train" in text

    # The gateway: what tracking/ hands the layers above is made of plain values, never MLflow objects.
    from mlops_nb.tracking import query, registry

    stage_id = found["model_run"]
    answers = [
        reading.lineage("models:/churn@champion"),
        reading.model_version("models:/churn/1"),
        reading.list_runs(),
        reading.run_detail(run.run_id),
        reading.get_run(run.run_id),
        reading.child_runs(run.run_id),
        query.logged_models([run.run_id, stage_id]),
        query.artifact_paths(stage_id, "model"),
        registry.aliases("churn"),
    ]
    # mnb.log_model keeps the model as a run artifact, not as an MLflow 3 logged model: that search is empty
    assert [bool(a) for a in answers] == [True] * 6 + [False, True, True]
    for answer in answers:
        assert not list(mlflow_objects(answer)), list(mlflow_objects(answer))


def mlflow_objects(value: object):
    """Every object inside ``value`` (dicts, lists, sets, tuples) whose type is not a plain Python one."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from mlflow_objects(key)
            yield from mlflow_objects(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from mlflow_objects(item)
    elif value is not None and type(value).__module__ != "builtins":
        yield value


def test_the_fast_page_of_an_embedded_store_is_what_mlflow_search_answers(project: Path) -> None:
    """The SQLite fast path reads MLflow's tables itself: it must agree with MLflow's own search."""
    from mlops_nb.config import load_settings
    from mlops_nb.tracking import fastread

    for i, (kind, notebook, experiment) in enumerate(
        [("job", "nb/a.ipynb", "e1"), ("notebook", "nb/b.ipynb", "e1"), ("job", "nb/a.ipynb", "e2")] * 3
    ):
        with mnb.start_run(f"r{i}", kind=kind, experiment=experiment, tags={"mlops_nb.notebook": notebook}):
            mnb.log_params({"i": i, "k": kind})
            mnb.log_metric("m", i / 3)
            with mnb.stage("s"):
                mnb.log_metric("inner", float(i))
    with mnb.start_run("weird", kind="job", experiment="e1", tags={"mlops_nb.notebook": "nb/a_b%.ipynb"}):
        mnb.log_metric("m", float("nan"))
    assert mnb.flush(120)
    settings = load_settings()
    db = fastread.sqlite_path(settings.tracking_uri)
    assert db is not None and db.is_file()
    for query in (
        {},
        {"kind": "job"},
        {"experiment": "e1"},
        {"notebook": "a.ipynb"},
        {"notebook": "a_b%.ipynb"},
        {"experiment": "e2", "kind": "job"},
    ):
        fast, slow, token, slow_token = [], [], None, None
        while True:  # every page, 4 runs at a time
            page = fastread.list_runs(
                db,
                experiment=query.get("experiment"),
                kind=query.get("kind"),
                notebook=query.get("notebook"),
                max_results=4,
                page_token=token,
            )
            fast += page["runs"]
            token = page["next_page_token"]
            if not token:
                break
        while True:
            filters = [
                f"tags.`mlops_nb.kind` = '{query['kind']}'" if "kind" in query else "tags.`mlops_nb.kind` != 'stage'"
            ]
            if "notebook" in query:
                filters.append(f"tags.`mlops_nb.notebook` LIKE '%{query['notebook']}'")
            page = reading._search(settings, filters, query.get("experiment"), 4, slow_token)
            slow += page["runs"]
            slow_token = page["next_page_token"]
            if not slow_token or not page["runs"]:
                break
        if query.get("notebook") == "a.ipynb":  # MLflow's LIKE has no escape: '_' also matches 'a_b%'
            slow = [r for r in slow if r["notebook"].endswith("/a.ipynb")]
        key = lambda runs: [(r["run_id"], r["kind"], r["params"], repr(r["metrics"]), r["status"]) for r in runs]  # noqa: E731
        assert key(fast) == key(slow), query
        assert fast, query
    for run in reading.list_runs(max_results=1000)["runs"]:  # each run with its stages, read both ways
        mine, mlflows = fastread.run_detail(db, run["run_id"]), reading._mlflow_detail(settings, run["run_id"])
        assert repr(mine) == repr(mlflows)  # repr: NaN equals NaN
        assert mine["stages"] or run["name"] == "weird"
    assert fastread.run_detail(db, "no-such-run") is None


def test_mnb_diff_shows_the_same_record_as_html(project: Path) -> None:
    write_notebook(project / "nb.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)
    a = job(project)
    b = job(project, "-p", "scale", "2.0", "-p", "label", "<b>x</b>")
    view = mnb.diff(a, b)
    assert view.record["params"] == {"label": ["a", "<b>x</b>"], "scale": ["1.0", "2.0"]}
    page = view._repr_html_()
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page  # values are escaped
    assert "params: scale" in page and "inputs: data, scale" in page
    assert "score" in repr(view)


def test_a_page_asked_again_shows_what_was_recorded_since_and_not_a_callers_changes(project: Path) -> None:
    """The embedded store's pages are kept between calls: anything committed since must show."""
    from mlops_nb.config import load_settings
    from mlops_nb.tracking import fastread

    assert fastread.sqlite_path(load_settings().tracking_uri) is not None  # the fast path answers here
    with mnb.start_run("first", kind="job"):
        mnb.log_metric("m", 1.0)
    assert mnb.flush(60)
    first = reading.list_runs()
    assert [r["name"] for r in first["runs"]] == ["first"]
    first["runs"][0]["metrics"]["m"] = 99.0  # the caller's copy
    assert reading.list_runs()["runs"][0]["metrics"] == {"m": 1.0}
    with mnb.start_run("second", kind="job"):
        mnb.log_metric("m", 2.0)
    assert mnb.flush(60)
    again = reading.list_runs()
    assert [(r["name"], r["status"], r["metrics"]) for r in again["runs"]] == [
        ("second", "FINISHED", {"m": 2.0}),
        ("first", "FINISHED", {"m": 1.0}),
    ]


def test_the_fast_detail_of_an_embedded_store_is_what_mlflow_reads(project: Path) -> None:
    """``run_detail`` on SQLite reads MLflow's tables itself: it must agree with MLflow's client."""
    from mlflow import MlflowClient

    from mlops_nb.config import load_settings
    from mlops_nb.tracking import fastread

    ids = []
    for i in range(2):
        with mnb.start_run(f"r{i}", kind="job", tags={"mlops_nb.notebook": "nb/a.ipynb"}) as run:
            mnb.log_params({"i": i})
            mnb.log_metric("m", float("nan") if i else 0.5)
            for name in ("load", "train", "load"):  # a stage run twice
                with mnb.stage(name, tags={"mlops_nb.input.x": f"fp{i}", "mlops_nb.file.data/a.csv": "f"}):
                    mnb.log_param("p", name)
                    mnb.log_metric("inner", float(i), step=0)
                    mnb.log_metric("inner", float(i) + 1, step=1)
        ids.append(run.run_id)
    assert mnb.flush(120)
    settings = load_settings()
    client = MlflowClient(settings.tracking_uri)
    deleted = reading._mlflow_detail(settings, ids[1])["stages"][1]["run_id"]
    client.delete_run(deleted)  # a deleted stage is not listed; a deleted run is still read by its id
    client.delete_run(ids[0])
    db = fastread.sqlite_path(settings.tracking_uri)
    for run_id in ids:
        fast, slow = fastread.run_detail(db, run_id), reading._mlflow_detail(settings, run_id)
        assert repr(fast) == repr(slow)  # repr: NaN equals itself
        assert len(fast["stages"]) == (3 if run_id == ids[0] else 2)
    assert fastread.run_detail(db, "no-such-run") is None


def test_mnb_compare_draws_the_metrics_asked_for_and_names_the_runs_metrics_for_an_unknown_one(project: Path) -> None:
    from mlops_nb.exceptions import UnknownMetricError, UsageError
    from mlops_nb.widgets.runs import VEGALITE

    (project / "pyproject.toml").write_text('[tool.mlops_nb.promote]\nmetric = "f1"\n')  # f1_score, by its gate name
    runs = []
    for c, recall in ((1.0, 0.6), (0.1, 0.8)):
        with mnb.start_run(f"C={c}", kind="notebook") as run:
            mnb.log_params({"C": c})
            mnb.log_metrics({f"m{k:02}": k * c for k in range(14)})
            mnb.log_metrics({"f1_score": c, "worst_slice.recall_score": recall})
        runs.append(run)

    default = mnb.compare(runs)
    assert default.record["metrics"][0] == "f1_score" and default.record["chosen"][0] == "f1_score"
    assert len(default.record["left_out"]) == 16 - 11 and "+5 more metrics" in repr(default)
    subtitle = default.record["spec"]["vconcat"][0]["title"]["subtitle"]
    assert subtitle == "+5 more metrics: draw them with mnb.compare(runs, metrics=[...])"

    view = mnb.compare([r.run_id for r in runs], metrics=["worst_slice.recall"])
    assert view.record["chosen"] == ["worst_slice.recall_score"] and view.record["left_out"] == []
    bundle = view._repr_mimebundle_()
    lines = bundle[VEGALITE]["vconcat"][0]["data"]["values"]
    assert sorted(r["value"] for r in lines if r["axis"] == "worst_slice.recall_score") == [0.6, 0.8]
    assert "worst_slice.recall_score" in bundle["text/plain"]

    with pytest.raises(UnknownMetricError, match=r"'recal'.*Choose among: f1_score, m00") as caught:
        mnb.compare(runs, metrics=["recal"])
    assert isinstance(caught.value, ValueError) and "worst_slice.recall_score" in caught.value.available
    with pytest.raises(UsageError, match=r"metrics= takes a list, e\.g\. metrics=\['f1_score'\]"):
        mnb.compare(runs, metrics="f1_score")
