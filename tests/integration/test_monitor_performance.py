"""Label-free performance of a real logged classifier, monitored through its registered version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

import mlops_nb as mnb
from mlops_nb.cli import main
from mlops_nb.registry import promote
from mlops_nb.watch.monitor import watch
from tests.unit.test_performance import _data

COLUMNS = ["x0", "x1", "x2", "x3"]


def _frame(x: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(x, columns=COLUMNS)


def _logged(project: Path) -> None:
    rng = np.random.default_rng(11)
    x_train, y_train = _data(rng, 4000)
    x_test, y_test = _data(rng, 8000)
    model = LogisticRegression(max_iter=1000).fit(_frame(x_train), np.where(y_train == 1, "churn", "stay"))
    with mnb.start_run("train", kind="job") as job, mnb.stage("train"):
        mnb.log_model(
            model,
            "model",
            input_example=_frame(x_test[:5]),
            reference=_frame(x_test),
            reference_y=np.where(y_test == 1, "churn", "stay"),
        )
    assert mnb.flush(120)
    promote(job.run_id, "clf")


def test_monitor_estimates_performance_without_labels_and_shows_the_realised_beside(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _logged(project)
    x, y = _data(np.random.default_rng(12), 20_000, shift=1.5)
    current = _frame(x).assign(outcome=np.where(y == 1, "churn", "stay"))
    pq.write_table(pa.Table.from_pandas(current), project / "today.parquet")
    import skops.io

    loads: list[str] = []
    real_load = skops.io.load
    monkeypatch.setattr(skops.io, "load", lambda file, **kw: loads.append(file) or real_load(file, **kw))

    outcome = watch("models:/clf@champion", data=str(project / "today.parquet"), labels="outcome")

    assert len(loads) == 1, loads  # scored (label-free) and predicted (realised) with one load of the model

    assert (
        outcome.result["performance"]["metrics"]["accuracy"]
        == outcome.result["performance"]["label_free"]["realised"]["accuracy"]
    )  # the realised figures of --labels agree
    found = outcome.result["performance"]["label_free"]
    assert found is not None and found["method"] == "cbpe" and found["classes"] == ["churn", "stay"]
    assert found["rows"] == 20_000 and found["reference_rows"] == 8000
    real, est, ref = found["realised"], found["estimated"], found["reference"]
    assert abs(real["accuracy"] - ref["accuracy"]) > 0.04  # the shift moved performance
    assert abs(est["accuracy"] - real["accuracy"]) <= 0.03
    assert "outcome" not in outcome.result["features"]  # the labels are no feature
    html = outcome.html()
    assert "Estimated performance (no labels needed)" in html and f"{est['accuracy']:.3f}" in html

    warnings: list[str] = []
    unlabelled = watch("models:/clf@champion", data=str(project / "today.parquet"))
    assert unlabelled.result["performance"]["label_free"]["realised"] is None
    assert unlabelled.result["performance"]["label_free"]["estimated"] == est

    bad = CliRunner().invoke(main, ["monitor", "models:/clf@champion", "--data", "today.parquet", "--labels", "nope"])
    assert bad.exit_code == 2 and "--labels nope: the data has no such column" in bad.output, bad.output

    pq.write_table(pa.Table.from_pandas(current.drop(columns=["x3"])), project / "partial.parquet")
    partial = watch("models:/clf@champion", data=str(project / "partial.parquet"), warn=warnings.append)
    assert partial.result["performance"] is None and partial.result["validation"]["problems"]
    assert not warnings  # not asked for: the missing column is the data checks' to report

    # With --labels the realised figures need the model's predictions: bad input, and the message says why.
    done = CliRunner().invoke(
        main, ["monitor", "models:/clf@champion", "--data", "partial.parquet", "--labels", "outcome"]
    )
    assert done.exit_code == 2 and "the model cannot predict these rows, which lack x3" in done.output, done.output
