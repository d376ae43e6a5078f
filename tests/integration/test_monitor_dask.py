"""The drift statistics computed on a real Dask cluster equal the local ones on the same partitioned Parquet."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring import data as data_io
from mlops_nb.monitoring.current import CurrentData
from mlops_nb.monitoring.drift import dataset_drift, features, preset
from mlops_nb.monitoring.profile import feed, reference_of
from mlops_nb.monitoring.validation import Tolerances, validate

SAMPLE = 10_000


def _frame(rng, rows, shift):
    return {
        "age": rng.normal(40 + shift, 10, rows).round(),  # ties with the reference: the KS == counts matter
        "income": np.where(rng.random(rows) < 0.05, np.nan, rng.lognormal(10 + shift / 20, 1, rows)),
        "score": rng.normal(shift / 10, 1, rows),
        "city": rng.choice(["paris", "lyon", "nice", "brest"] if shift else ["paris", "lyon", "nice"], rows),
    }


def _write(folder, rng, sizes, shift):
    folder.mkdir()
    for i, rows in enumerate(sizes):
        table = pa.table(_frame(rng, rows, shift))
        if i == 2:
            table = table.drop_columns(["score"])  # a partition without a column: missing there, both ways
        pq.write_table(table, folder / f"part-{i:02d}.parquet", row_group_size=2500)


def _result(summary):
    summary.finish()
    chosen = preset("mlops-nb")
    found = features(summary, chosen)
    return {
        "rows": summary.rows,
        "features": found,
        "dataset": dataset_drift(found, chosen.drift_share),
        "validation": validate(summary, Tolerances()),
    }


def _local(reference, path):
    summary = CurrentData(reference, SAMPLE)
    feed(summary.add, data_io.chunks(path, chunk_rows=7000))
    return _result(summary)


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


@pytest.mark.slow
@pytest.mark.parametrize("sizes", [[6000, 9000, 4000, 7000, 1], [3000, 2000, 4000]], ids=["sampled", "every-row"])
def test_dask_equals_local_on_partitioned_parquet(tmp_path, cluster, sizes):
    from mlops_nb.monitoring.distributed import summarise

    rng = np.random.default_rng(3)
    reference = reference_of(pa.table(_frame(rng, 8000, 0)), sample_rows=SAMPLE)
    _write(tmp_path / "cur", rng, sizes, shift=3)

    local = _local(reference, tmp_path / "cur")
    remote = _result(summarise(reference, tmp_path / "cur", cluster.scheduler_address, SAMPLE))

    assert remote["rows"] == local["rows"] == sum(sizes)
    assert json.dumps(remote, sort_keys=True) == json.dumps(local, sort_keys=True)  # every figure, bit for bit
    for name in ("age", "income"):
        ours, theirs = remote["features"][name]["scores"], local["features"][name]["scores"]
        assert ours["ks"]["statistic"] == theirs["ks"]["statistic"]
        assert math.isclose(ours["wasserstein"]["statistic"], theirs["wasserstein"]["statistic"], abs_tol=1e-12)
    assert remote["features"]["age"]["drift"] is True and remote["dataset"][0] is True
    assert any(p["check"] == "unseen_category" for p in remote["validation"]["problems"])


@pytest.mark.slow
def test_dask_errors_name_the_fix(tmp_path, cluster):
    from mlops_nb.monitoring.distributed import summarise

    reference = reference_of({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(UsageError, match="no such file or folder"):
        summarise(reference, tmp_path / "nothing", cluster.scheduler_address)
    pq.write_table(pa.table({"x": pa.array([], pa.float64())}), tmp_path / "empty.parquet")
    with pytest.raises(UsageError, match="no rows to read"):
        summarise(reference, tmp_path / "empty.parquet", cluster.scheduler_address)


def test_unreachable_scheduler_names_the_fix():
    from mlops_nb.monitoring.distributed import client

    with pytest.raises(UsageError, match=r"cannot reach a Dask scheduler there.*\(dask scheduler\)"):
        client("tcp://127.0.0.1:9", timeout="1s")


def test_missing_dask_gives_the_install_line(monkeypatch):
    import sys

    from mlops_nb.monitoring import distributed

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if Dask were not installed
    with pytest.raises(UsageError, match=r'pip install "mlops-nb\[dask\]"'):
        distributed.client("tcp://127.0.0.1:8786")


@pytest.mark.slow
def test_mlops_nb_monitor_executor_dask_gives_the_local_json(tmp_path, cluster, monkeypatch):
    from click.testing import CliRunner

    from mlops_nb.cli import main

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(9)
    pq.write_table(pa.table(_frame(rng, 8000, 0)), tmp_path / "ref.parquet")
    _write(tmp_path / "cur", rng, [5000, 4000, 3000], shift=2)
    args = ["monitor", "--reference", "ref.parquet", "--data", "cur", "--sample-rows", str(SAMPLE), "--json", "-"]

    local = CliRunner().invoke(main, args)
    remote = CliRunner().invoke(main, [*args, "--executor", "dask", "--scheduler", cluster.scheduler_address])

    assert local.exit_code == 0 and remote.exit_code == 0, local.output + remote.output
    assert json.loads(remote.stdout) == json.loads(local.stdout)
    assert json.loads(remote.stdout)["rows"] == 12_000
    lacking = CliRunner().invoke(main, [*args, "--executor", "dask"])
    assert lacking.exit_code == 2 and "--executor dask needs --scheduler ADDRESS" in lacking.output
    windowed = CliRunner().invoke(main, [*args, "--executor", "dask", "--scheduler", "tcp://x:1", "--window", "10rows"])
    assert windowed.exit_code == 2 and "without --logs or --window" in windowed.output
