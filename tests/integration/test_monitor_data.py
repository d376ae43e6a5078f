"""Odd data the monitor must report as data problems and go on with: partitions whose types conflict, a late
non-numeric value in a CSV column of numbers (real files, read by the real readers)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_nb.monitoring import data as data_io
from mlops_nb.monitoring.monitor import load_reference, monitor


def reference(project: Path, rows: int = 5000) -> Path:
    rng = np.random.default_rng(0)
    path = project / "train.parquet"
    pd.DataFrame({"x": rng.integers(0, 100, rows), "y": rng.normal(0, 1, rows)}).to_parquet(path, index=False)
    return path


def dtype_problems(result: dict) -> dict[str, str]:
    return {p["column"]: p["detail"] for p in result["validation"]["problems"] if p["check"] == "dtype"}


def test_partitions_whose_column_types_conflict_are_a_data_problem(project: Path) -> None:
    rng = np.random.default_rng(1)
    parts = project / "landing"
    parts.mkdir()
    pd.DataFrame({"x": rng.integers(0, 100, 3000), "y": rng.normal(0, 1, 3000)}).to_parquet(parts / "a.parquet")
    text = pd.DataFrame({"x": [f"id-{i}" for i in range(3000)], "y": rng.normal(0, 1, 3000)})
    text.to_parquet(parts / "b.parquet")
    result = monitor(load_reference(reference(project)), data_io.chunks(parts))
    assert result["rows"] == 6000
    assert "int64 and large_string in different parts of the data" in dtype_problems(result)["x"]
    assert result["features"]["y"]["drift"] is False  # the other columns are still monitored


def test_a_late_non_numeric_value_in_a_csv_column_is_the_data_problem_an_early_one_is(project: Path) -> None:
    ref = reference(project)
    rows = 400_000
    for where, at in (("early", 10), ("late", rows - 1000)):
        rng = np.random.default_rng(2)
        frame = pd.DataFrame({"x": rng.integers(0, 100, rows).astype(object), "y": rng.normal(0, 1, rows)})
        frame.loc[at, "x"] = "n/a!"
        frame.to_csv(project / f"{where}.csv", index=False)
        result = monitor(load_reference(ref), data_io.chunks(project / f"{where}.csv"))
        assert result["rows"] == rows, where
        assert "its values are not numbers" in dtype_problems(result)["x"], (where, result["validation"])
        assert "y" not in dtype_problems(result)
    done = subprocess.run(
        ["mlops-nb", "monitor", "--reference", str(ref), "--data", "late.csv", "--json", "late.json"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((project / "late.json").read_text())["rows"] == rows


def test_a_pandas_index_stored_in_parquet_is_not_read_as_a_column(project: Path) -> None:
    ref = reference(project)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.integers(0, 100, 4000), "y": rng.normal(0, 1, 4000)})
    frame[frame["y"] > 0].to_parquet(project / "filtered.parquet")  # not a RangeIndex: stored as a column
    named = frame.set_index(pd.Index(rng.permutation(4000), name="customer"))
    named.to_parquet(project / "named.parquet")
    for name in ("filtered", "named"):
        result = monitor(load_reference(ref), data_io.chunks(project / f"{name}.parquet"))
        assert result["validation"]["problems"] == [], (name, result["validation"])
        assert set(result["features"]) == {"x", "y"}


def test_a_classifiers_predicted_class_is_monitored_as_categorical(project: Path) -> None:
    import pyarrow as pa
    from sklearn.linear_model import LogisticRegression

    from mlops_nb.monitoring.profile import reference_of
    from mlops_nb.monitoring.stored import model_reference, reference_sample

    rng = np.random.default_rng(4)
    X = pd.DataFrame({"a": rng.normal(0, 1, 3000), "b": rng.normal(0, 1, 3000)})
    model = LogisticRegression().fit(X, (X["a"] + X["b"] > 0).astype(int))
    sample = reference_sample(X, model)
    ref = model_reference(reference_of(X).profile, sample, with_prediction=True)
    assert ref.profile["columns"]["prediction"]["kind"] == "categorical"
    new = pd.DataFrame({"a": rng.normal(0, 1, 2000), "b": rng.normal(0, 1, 2000)})
    logged = pa.Table.from_pandas(new, preserve_index=False).append_column(
        "prediction",
        pa.array(model.predict(new).tolist()),  # as the prediction log has them: plain integers
    )
    result = monitor(ref, logged)
    assert result["features"]["prediction"]["method"] == "jensenshannon"
    assert result["features"]["prediction"]["drift"] is False
    assert result["validation"]["problems"] == []


def test_small_samples_warn_that_effect_sizes_decide_and_suggest_the_p_value_preset(project: Path) -> None:
    from mlops_nb.monitoring.html import page
    from mlops_nb.monitoring.report import text

    ref = load_reference(reference(project, rows=220))
    rng = np.random.default_rng(5)
    current = pd.DataFrame({"x": rng.integers(0, 100, 133), "y": rng.normal(0, 1, 133)})
    result = monitor(ref, current)
    (warning,) = result["warnings"]
    assert "220 reference and 133 current rows" in warning and "--preset evidently" in warning
    assert f"Note: {warning}" in text(dict(result), color=False)
    assert warning in page(result)
    assert "warnings" not in monitor(ref, current, preset_name="evidently")
    enough = pd.DataFrame({"x": rng.integers(0, 100, 3000), "y": rng.normal(0, 1, 3000)})
    assert "warnings" not in monitor(load_reference(reference(project, rows=5000)), enough)
