"""A new embedded store's schema is copied from an empty store of this MLflow kept in the user's cache folder
(MLflow's migration takes seconds), and a template that is unfit is never used."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mlops_nb.tracking.store import Store, schema_template


def _store(folder: Path) -> Store:
    return Store(f"sqlite:///{folder / 'mlflow.db'}", folder, folder / "artifacts")


def _experiments(template: Path) -> int:
    with sqlite3.connect(template) as con:
        return con.execute("SELECT count(*) FROM experiments").fetchone()[0]


def test_a_new_store_is_made_from_the_schema_template_and_an_unfit_one_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    template = schema_template()
    assert template.parent == tmp_path / "cache" / "mlops-nb" / "mlflow-schema" and not template.exists()

    _store(tmp_path / "first")  # no template yet: MLflow migrates, and the template is kept
    assert template.exists() and _experiments(template) == 0  # the schema only: no Default experiment

    for i, unfit in enumerate([None, b"not a database", "an experiment in it"]):
        if unfit == "an experiment in it":
            with sqlite3.connect(template) as con:
                con.execute("INSERT INTO experiments (experiment_id, name, lifecycle_stage) VALUES (7, 'x', 'active')")
        elif unfit is not None:
            template.write_bytes(unfit)
        folder = tmp_path / f"project-{i}"
        store = _store(folder)
        # MLflow made the Default experiment in this store, under this store's artifact root
        assert store.client.get_experiment("0").artifact_location == str(folder / "artifacts" / "0")
        assert [e.name for e in store.client.search_experiments()] == ["Default"]
        run = store.client.create_run(store.experiment_id("churn"))
        store.client.log_metric(run.info.run_id, "auc", 0.9)
        assert store.client.get_run(run.info.run_id).data.metrics == {"auc": 0.9}
        assert run.info.artifact_uri.startswith(str(folder / "artifacts"))
        assert _experiments(template) == 0  # an unfit template was replaced by a fit one
    assert "the MLflow schema template" in caplog.text and "making a new one" in caplog.text
    assert not list(template.parent.glob("*.tmp"))


def test_a_cache_folder_that_cannot_be_written_only_means_the_next_store_is_migrated_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cache").write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("a", "b"):
        store = _store(tmp_path / name)
        assert [e.name for e in store.client.search_experiments()] == ["Default"]
