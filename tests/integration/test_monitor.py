"""``mlops-nb monitor`` through the real command: realistic drift, every problem named, exit codes, formats."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring import data as data_io
from mlops_nb.monitoring.monitor import load_reference, monitor

SHIFTED = {"income", "age", "city"}  # what the current data changed on purpose


def training(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 12, rows),
            "income": rng.lognormal(10, 0.5, rows),
            "score": rng.uniform(0, 1, rows),
            "visits": rng.poisson(3, rows).astype("int64"),
            "tenure": rng.exponential(5, rows),
            "balance": rng.normal(0, 1000, rows),
            "city": rng.choice(["Lyon", "Paris", "Nice", "Lille"], rows, p=[0.4, 0.3, 0.2, 0.1]),
            "plan": rng.choice(["free", "pro", "team"], rows),
        }
    )


def drifted(rows: int, seed: int) -> pd.DataFrame:
    """New data: income and age shifted, a new city, 'balance' gone, 'tenure' all missing, the rest unchanged."""
    frame = training(rows, seed)
    frame["age"] = frame["age"] + 6  # half a standard deviation
    frame["income"] = frame["income"] * 1.4
    rng = np.random.default_rng(seed + 1)
    frame.loc[rng.random(rows) < 0.3, "city"] = "Atlantis"
    frame["tenure"] = np.nan
    return frame.drop(columns=["balance"])


@pytest.fixture
def files(project: Path) -> dict[str, Path]:
    paths = {"reference": project / "train.parquet", "current": project / "current.csv", "same": project / "same.jsonl"}
    training(5000, 0).to_parquet(paths["reference"])
    drifted(4000, 1).to_csv(paths["current"], index=False)
    training(4000, 2).to_json(paths["same"], orient="records", lines=True)
    return paths


def cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mlops-nb", "monitor", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def problems(result: dict) -> set[tuple[str, str]]:
    return {(p["column"], p["check"]) for p in result["validation"]["problems"]}


@pytest.mark.parametrize("preset", ["mlops-nb", "evidently"])
def test_exactly_the_shifted_features_drift_and_every_problem_is_named(files, preset):
    result = monitor(load_reference(files["reference"]), data_io.chunks(files["current"]), preset_name=preset)
    flagged = {name for name, f in result["features"].items() if f["drift"]}
    assert flagged == SHIFTED
    assert problems(result) == {("balance", "missing_column"), ("tenure", "empty"), ("city", "unseen_category")}
    assert result["features"]["tenure"] == {
        "kind": "numeric",
        "method": None,
        "drift": None,
        "missing_rate": 1.0,
        "scores": {},
    }
    age = result["features"]["age"]
    assert set(age["scores"]) == {"ks", "wasserstein", "psi"} and age["method"] == "wasserstein"
    assert set(result["features"]["city"]["scores"]) == {"chi2", "jensenshannon", "psi"}
    assert result["drift_share"] == pytest.approx(3 / 6) and result["dataset_drift"] is True
    city = next(p for p in result["validation"]["problems"] if p["column"] == "city")
    assert "'Atlantis'" in city["detail"]


def test_cli_reports_drift_and_exits_by_the_rules(files, project):
    out = project / "result.json"
    done = cli("--reference", files["reference"], "--data", files["current"], "--json", out, cwd=project)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert set(result) >= {
        "model",
        "version",
        "rows",
        "dataset_drift",
        "drift_share",
        "features",
        "validation",
        "performance",
        "run_id",
    }
    assert (result["model"], result["version"], result["run_id"], result["rows"]) == (None, None, None, 4000)
    for feature in result["features"].values():
        assert set(feature) == {"kind", "method", "drift", "missing_rate", "scores"}
        for score in feature["scores"].values():
            assert {"statistic", "p_value", "threshold", "drift"} <= set(score)
    # The table: one aligned line per feature, the verdict, the problems; no colour when not on a terminal.
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["feature", "kind", "method", "score", "threshold", "p-value", "missing", "drift"]
    assert "\033[" not in done.stdout
    table = lines[: 1 + len(result["features"])]
    assert {len(line) for line in table} == {len(lines[0])}  # aligned: every row as wide as the header
    assert next(line for line in table if line.startswith("age ")).endswith("DRIFT")
    assert any("Dataset drift: 3 of 6 features drifted" in line for line in lines)
    assert any("balance" in line and "missing_column" in line for line in lines)

    done = cli("--reference", files["reference"], "--data", files["current"], "--fail-on-drift", cwd=project)
    assert done.returncode == 3, done.stderr
    done = cli("--reference", files["reference"], "--data", files["current"], "--json", "-", cwd=project)
    assert done.returncode == 0 and json.loads(done.stdout) == result  # only the JSON on stdout
    done = cli("--reference", files["reference"], "--data", files["same"], "--fail-on-drift", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No dataset drift: 0 of 8 features drifted" in done.stdout and "Data checks passed." in done.stdout


def test_cli_bad_input_exits_2_naming_the_fix(files, project):
    garbage = project / "broken.parquet"
    garbage.write_bytes(b"not parquet at all")
    header_only = project / "empty.csv"
    header_only.write_text("age,income\n")
    cases = [
        (("--data", project / "nope.csv"), "nope.csv: no such file or folder"),
        (("--data", garbage), "broken.parquet: cannot read it as parquet"),
        (("--data", header_only), "empty.csv: no rows"),
        (("--data", project / "*.xlsx"), "no file matches this pattern"),
        (("models:/churn@champion", "--data", files["current"]), "No model version 'models:/churn@champion'"),
        (("--data", files["current"], "--preset", "nannyml"), "nannyml"),
    ]
    for args, message in cases:
        done = cli("--reference", files["reference"], *args, cwd=project)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_partitions_folder_glob_and_a_stored_profile(files, project):
    parts = project / "current"
    frame = drifted(4000, 1)
    for i, part in enumerate(np.array_split(np.arange(4000), 4)):
        folder = parts / f"day={i}"
        folder.mkdir(parents=True)
        frame.iloc[part].to_parquet(folder / "part-0.parquet")
    (parts / "_SUCCESS").write_text("")
    whole = monitor(load_reference(files["reference"]), data_io.chunks(files["current"]))
    for path in (parts, project / "current" / "*" / "*.parquet"):
        assert monitor(load_reference(files["reference"]), data_io.chunks(path, chunk_rows=700)) == whole

    # From stored statistics only (reference_profile.json): validation, PSI, chi2, JS; no KS/Wasserstein.
    profile = project / "reference_profile.json"
    profile.write_text(json.dumps(load_reference(files["reference"]).profile))
    result = monitor(load_reference(profile), data_io.chunks(files["current"]))
    assert result["features"]["age"]["method"] == "psi" and set(result["features"]["age"]["scores"]) == {"psi"}
    assert problems(result) == problems(whole)
    assert {n for n, f in result["features"].items() if f["drift"]} == SHIFTED


def test_data_reading_errors(project):
    (project / "a.csv").write_text("x\n1\n")
    (project / "b.parquet").write_bytes(b"")
    with pytest.raises(UsageError, match="mixes formats"):
        list(data_io.chunks(project))
    (project / "c.txt").write_text("x\n")
    with pytest.raises(UsageError, match="unknown data format"):
        list(data_io.chunks(project / "c.txt"))
    lines = project / "rows.jsonl"
    lines.write_text('{"x": 1, "c": "a"}\n{"x": null, "c": "b"}\n')
    (table,) = data_io.chunks(lines)
    assert table.num_rows == 2 and table.column_names == ["x", "c"]


def test_colour_only_on_a_terminal(files, project):
    """On a terminal the table is coloured (drift red); NO_COLOR and pipes get plain text."""
    import os
    import pty

    args = ["mlops-nb", "monitor", "--reference", str(files["reference"]), "--data", str(files["current"])]
    for env, coloured in (({}, True), ({"NO_COLOR": "1"}, False)):
        leader, follower = pty.openpty()
        child = subprocess.Popen(args, cwd=project, stdout=follower, stderr=subprocess.PIPE, env={**os.environ, **env})
        os.close(follower)
        out = b""
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            out += data
        os.close(leader)
        assert child.wait(120) == 0, child.stderr.read()
        child.stderr.close()
        text = out.decode()
        assert ("\033[31m" in text) is coloured, text[:500]
        assert "Dataset drift" in text
