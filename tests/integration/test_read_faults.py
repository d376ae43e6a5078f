"""What a hostile or odd store gives the read commands: quoted names, terminal escapes, deleted runs, short
ids, missing notebooks and records still in a journal (real embedded MLflow stores, the real CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import mlops_nb as mnb
from mlops_nb.cli import main
from mlops_nb.exceptions import UsageError
from mlops_nb.tracking import filters, reading
from tests.conftest import embedded_client

pytestmark = pytest.mark.slow


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def recorded(name: str, **params: str) -> str:
    with mnb.start_run(name, kind="job") as run:
        mnb.log_params(params)
        mnb.log_metric("accuracy", 0.9)
    assert mnb.flush(60)
    return run.run_id


@pytest.mark.parametrize("value", ["bob's model", 'say "hi"', "back\\slash", "100%_sure", "plain"])
def test_a_filter_value_is_quoted_as_mlflows_parser_reads_it(value: str) -> None:
    from mlflow.utils.search_utils import SearchUtils

    (parsed,) = SearchUtils.parse_search_filter(f"tags.t = {filters.literal(value)}")
    assert parsed["value"] == value


def test_a_value_mlflows_filters_cannot_hold_is_refused_naming_it() -> None:
    for value in ("both ' and \"", "ends in \\"):
        assert not filters.quotable(value)
        with pytest.raises(UsageError, match="cannot be searched for"):
            filters.literal(value, "model name")


def test_a_model_named_with_a_quote_shows_its_versions_and_its_monitor(project: Path) -> None:
    run_id = recorded("train")
    client = embedded_client(project)
    for name in ("bob's model", "back\\slash"):
        client.create_registered_model(name)
        client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
        experiment = client.get_run(run_id).info.experiment_id
        monitor = client.create_run(experiment, tags={"mlops_nb.kind": "monitor", "mlops_nb.model": f"{name}/1"})
        detail = reading.model_detail(name)
        assert [v["version"] for v in detail["versions"]] == ["1"], name
        assert detail["last_monitor"]["run_id"] == monitor.info.run_id
        assert [m["run_id"] for m in reading.lineage(f"models:/{name}/1")["monitors"]] == [monitor.info.run_id]


HOSTILE = "\x1b]0;pwned\x07name\x1b[2J\r\u202e"


def test_runs_show_and_diff_show_control_characters_from_the_store_as_escapes(project: Path) -> None:
    a = recorded(HOSTILE, C=HOSTILE)
    b = recorded("plain", C="1")
    for args in (("runs",), ("show", a), ("diff", a, b)):
        result = CliRunner().invoke(main, list(args), color=True)  # as a terminal gets it, styles and all
        assert result.exit_code == 0, result.output
        for raw in ("\x1b]", "\x07", "\x1b[2J", "\r", "\u202e"):
            assert raw not in result.output, (args, result.output)
        assert "\\x1b]0;pwned\\x07name\\x1b[2J" in result.output, (args, result.output)
    code, out, _ = cli("show", a, "--json")
    assert code == 0 and json.loads(out)["name"] == HOSTILE and "\x1b" not in out  # JSON escapes them itself


def test_show_and_diff_of_a_deleted_run_say_it_is_deleted(project: Path) -> None:
    a, b = recorded("a"), recorded("b")
    embedded_client(project).delete_run(a)
    assert reading.run_detail(a)["deleted"] and not reading.run_detail(b)["deleted"]
    assert reading._mlflow_detail(reading.load_settings(), a)["deleted"]  # MLflow's own read says so too
    code, out, err = cli("show", a)
    assert code == 0 and "DELETED" in out and f"Run {a} is deleted" in err and "mlflow runs restore" in err
    code, out, err = cli("diff", a, b, "--json")
    assert code == 0 and json.loads(out)["deleted"] == [True, False]
    code, out, err = cli("diff", b, a)
    assert code == 0 and f"Run {a} is deleted" in err and f"Run {b} is deleted" not in err


def test_a_unique_prefix_of_a_run_id_names_the_run_and_an_ambiguous_one_names_the_candidates(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = recorded("a"), recorded("b")
    code, out, err = cli("show", a[:8], "--json")
    assert code == 0, err
    assert json.loads(out)["run_id"] == a
    code, out, err = cli("diff", a[:8], b[:8], "--json")
    assert code == 0, err
    assert (json.loads(out)["a"], json.loads(out)["b"]) == (a, b)
    assert reading.get_run(b[:10])["run_id"] == b

    client = embedded_client(project)
    experiment = client.get_run(a).info.experiment_id
    ids = [a, b] + [client.create_run(experiment, run_name=f"r{i}").info.run_id for i in range(15)]
    monkeypatch.setattr(reading, "MIN_PREFIX", 1)  # 17 runs, 16 hex digits: two ids share a first character
    first = next(c for c in "0123456789abcdef" if sum(i.startswith(c) for i in ids) > 1)
    code, out, err = cli("show", first)
    assert code == 2 and "ambiguous" in err
    assert all(i in err for i in ids if i.startswith(first)), err
    free = next((c for c in "0123456789abcdef" if not any(i.startswith(c) for i in ids)), None)
    if free is not None:
        code, _, err = cli("show", free)
        assert code == 2 and f"No run id starts with {free!r}" in err
    monkeypatch.setattr(reading, "MIN_PREFIX", 4)
    code, _, err = cli("show", a[:3])
    assert code == 2 and "at least 4" in err


def test_runs_of_a_notebook_that_does_not_exist_exits_2(project: Path) -> None:
    code, _, err = cli("runs", "no/such.ipynb")
    assert code == 2 and "No notebook 'no/such.ipynb'" in err
    (project / "new.ipynb").write_text("{}")
    code, _, err = cli("runs", "new.ipynb")
    assert code == 0 and "No runs yet" in err  # it exists: it has no runs yet


def test_runs_sends_what_a_killed_process_left_in_the_journal_and_lists_it(project: Path) -> None:
    from tests.conftest import python

    out = python(
        """
        import os
        import mlops_nb as mnb
        with mnb.start_run("left-behind", kind="script"):
            mnb.log_metric("accuracy", 0.5)
        os._exit(0)  # as a killed kernel: no exit flush
        """,
        cwd=project,
        env={"MLOPS_NB_FLUSH_INTERVAL": "600"},
    )
    assert out.returncode == 0, out.stderr
    assert list((project / ".mlops_nb" / "journal").glob("*.jsonl"))
    code, out, err = cli("runs")
    assert code == 0, err
    assert "records of processes that ended are not in MLflow yet: sending them" in err
    assert "left-behind" in out
