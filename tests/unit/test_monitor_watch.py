"""The pure parts of monitoring a model: windows, the stored reference sample, the prediction log reader, metric
names, the webhook's shown URL, and the HTML report's escaping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring.html import page
from mlops_nb.monitoring.logs import read_logs
from mlops_nb.monitoring.monitor import run_pass
from mlops_nb.monitoring.profile import reference_of
from mlops_nb.monitoring.sample import RowSample
from mlops_nb.monitoring.stored import model_reference, reference_sample
from mlops_nb.monitoring.windows import parse_window
from mlops_nb.tracking.monitor_runs import metric_name
from mlops_nb.tracking.validation import check_key
from mlops_nb.watch.webhook import check_url, shown


@pytest.mark.parametrize(
    ("text", "seconds", "rows"),
    [
        ("1h", 3600, 0),
        ("30min", 1800, 0),
        ("15m", 900, 0),
        ("1d", 86400, 0),
        ("10000rows", 0, 10000),
        (" 2d ", 172800, 0),
    ],
)
def test_windows_parse(text: str, seconds: int, rows: int) -> None:
    window = parse_window(text)
    assert (window.seconds, window.rows) == (seconds, rows)


@pytest.mark.parametrize("text", ["", "h", "0h", "1 fortnight", "-1d", "1.5h", "10000 row", "1w"])
def test_bad_windows_name_the_fix(text: str) -> None:
    with pytest.raises(UsageError, match="30min, 1h, 1d"):
        parse_window(text)


def test_the_reference_sample_is_the_profiles_sample_and_carries_predictions() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=5000), "c": rng.choice(["a", "b"], 5000)})
    table = reference_sample(frame, cap=1000)
    kept = RowSample(["x"], 1000)
    kept.add({"x": frame["x"].to_numpy()}, 5000)
    assert table.num_rows == 1000
    np.testing.assert_array_equal(table.column("x").to_numpy(), kept.values("x"))  # the same rows, in order

    class Model:
        def predict(self, rows: pd.DataFrame) -> np.ndarray:
            return np.where(rows["x"] > 0, "up", "down")

    with_predictions = reference_sample(frame, Model(), cap=1000)
    assert (
        with_predictions.column("prediction").to_pylist()
        == np.where(table.column("x").to_numpy() > 0, "up", "down").tolist()
    )
    assert reference_sample(frame.to_numpy()[:, :1].astype(float), cap=10).num_rows == 10  # arrays too

    class Broken:
        def predict(self, rows: pd.DataFrame) -> np.ndarray:
            raise ValueError("needs other columns")

    assert reference_sample(frame, Broken()).column_names == ["x", "c"]  # no prediction reference, no failure

    stored = model_reference(reference_of(frame).profile, with_predictions, with_prediction=True)
    assert set(stored.profile["columns"]) == {"x", "c", "prediction"}
    assert len(stored.samples["x"]) == 1000 and np.all(np.diff(stored.samples["x"]) >= 0)


def test_prediction_logs_rotated_cut_and_mixed(tmp_path: Path) -> None:
    lines = [
        {"time": 30.0, "request_id": "r", "model_version": "1", "inputs": {"a": 1, "b": "x"}, "prediction": 1},
        {"time": 10.0, "request_id": "r", "model_version": "1", "inputs": {"a": 2.5, "b": 7}, "prediction": 0},
    ]
    (tmp_path / "predictions-1.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + '\n{"time": 4')
    (tmp_path / "predictions-1.jsonl.1").write_text(json.dumps({**lines[0], "time": 20.0}) + "\n[1, 2]\n")
    (tmp_path / "other.log").write_text("not a log\n")
    log = read_logs(tmp_path)
    assert (log.files, log.skipped) == (2, 2)
    table = log.table.to_pydict()
    assert table["time"] == [10.0, 20.0, 30.0]  # time order, whichever file
    assert table["a"] == [2.5, 1.0, 1.0] and table["b"] == ["7", "x", "x"]  # numbers and text mixed: text
    assert table["prediction"] == [0, 1, 1] and "request_id" not in table
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no predictions-"):
        read_logs(tmp_path / "empty")


def test_metric_names_are_bounded_and_distinct() -> None:
    assert metric_name("drift.", "age") == "drift.age"
    odd = [metric_name("drift.", n) for n in ("a:b", "a;b", "x" * 500, "é", "petal length (cm)", "caf\udce9")]
    assert len(set(odd)) == 6 and all(len(n) < 100 for n in odd)
    assert all(set(n[len("drift.") :]) <= set("abcdefghijklmnopqrstuvwxyz0123456789_- x") for n in odd)
    assert [check_key("metric", n) for n in odd] == odd  # every one a name MLflow takes


def test_webhook_urls_are_shown_without_their_secrets() -> None:
    url = "https://bot:s3cret@hooks.example.com:8443/services/T0KEN/B1?token=abc"
    assert shown(url) == "https://hooks.example.com:8443/..."
    assert check_url(url) == url
    for bad in ("hooks.example.com/x", "file:///etc/passwd", "http://", "http://h:99999/"):
        with pytest.raises(UsageError, match="webhook"):
            check_url(bad)


def test_the_report_escapes_names_and_values_in_tables_and_plots() -> None:
    hostile = "<script>alert(1)</script>"
    rng = np.random.default_rng(0)
    train = pd.DataFrame({hostile: rng.normal(size=500), "$x$ & y": rng.choice(["a", "b"], 500)})
    now = pd.DataFrame({hostile: rng.normal(2, 1, 500), "$x$ & y": rng.choice(["a", hostile], 500)})
    found = run_pass(reference_of(train), now)
    html = page(dict(found.result), found.current)
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<svg") == 3  # scores and one plot per feature
    assert "$x$ &amp; y" in html  # mathtext off: a dollar is a dollar
