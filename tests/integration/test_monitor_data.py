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
