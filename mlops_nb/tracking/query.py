"""Reading what was recorded (runs, their stages, metrics and artifacts), and annotating ended runs.

The jobs, registry and serving layers read MLflow through these functions (recording goes through the
recorder). One client per tracking URI per process, created with the same safe store initialisation as the
sender's.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_nb.config import Settings, load_settings
from mlops_nb.exceptions import StoreError, UsageError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run as MlflowRun

PARENT_TAG = "mlflow.parentRunId"


@functools.lru_cache(maxsize=4)
def _store(tracking_uri: str, home: Path, artifact_root: Path | None) -> Any:
    from mlops_nb.tracking.store import Store

    return Store(tracking_uri, home, artifact_root)


def client(settings: Settings | None = None) -> MlflowClient:
    """An MLflow client for the settings in force (the embedded store is created when missing)."""
    s = settings or load_settings()
    return _store(s.tracking_uri, s.home, s.artifact_root if s.embedded else None).client


def get_run(run_id: str, settings: Settings | None = None) -> MlflowRun:
    """The run ``run_id``: UsageError when there is no such run, StoreError when MLflow cannot answer."""
    from mlflow.exceptions import MlflowException

    s = settings or load_settings()
    try:
        return client(s).get_run(run_id)
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):  # a wrong id: bad input
            raise UsageError(
                f"No run {run_id!r} in MLflow at {s.tracking_uri}. Check the id (mlflow runs list, or the MLflow "
                "UI) and that MLFLOW_TRACKING_URI points at the store that recorded it."
            ) from e
        raise StoreError(f"MLflow at {s.tracking_uri} could not read run {run_id!r}: {e}") from e


def child_runs(run_id: str, settings: Settings | None = None) -> list[MlflowRun]:
    """The runs nested directly under ``run_id`` (stages of a notebook/job, jobs of a sweep), oldest first."""
    c = client(settings)
    parent = c.get_run(run_id)
    runs = c.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{run_id}'",
        max_results=50_000,
        order_by=["attributes.start_time ASC"],
    )
    return list(runs)


def download_artifacts(run_id: str, path: str, dst: Path, settings: Settings | None = None) -> Path:
    """Download artifact ``path`` of run ``run_id`` into ``dst``; returns the local path."""
    from mlflow.exceptions import MlflowException

    dst.mkdir(parents=True, exist_ok=True)
    try:
        return Path(client(settings).download_artifacts(run_id, path, str(dst)))
    except (MlflowException, OSError) as e:
        raise StoreError(f"Cannot download artifact {path!r} of run {run_id}: {e}") from e


def download_model(model_uri: str, dst: Path, settings: Settings | None = None) -> Path:
    """Download a model (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/RUN_ID/PATH``) into ``dst``.

    A ``models:/`` URI is resolved here, against the registry of the tracking URI in force: MLflow's own
    resolution reads the process-wide registry URI, which is not ours.
    """
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    s = settings or load_settings()
    c = client(s)
    dst.mkdir(parents=True, exist_ok=True)
    try:
        source = model_uri
        if model_uri.startswith("models:/"):
            name, sep, alias = model_uri[len("models:/") :].partition("@")
            if sep:
                version = c.get_model_version_by_alias(name, alias)
            else:
                name, _, number = name.rstrip("/").rpartition("/")
                version = c.get_model_version(name, number)
            source = c.get_model_version_download_uri(version.name, version.version)
        return Path(
            mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst), tracking_uri=s.tracking_uri)
        )
    except (MlflowException, OSError) as e:
        raise StoreError(
            f"Cannot fetch model {model_uri!r} from MLflow at {s.tracking_uri}: {e}. Check the name, version or "
            "alias (mlflow's registry UI lists them) and MLFLOW_TRACKING_URI."
        ) from e


def set_tags(run_id: str, tags: dict[str, str], settings: Settings | None = None) -> None:
    """Annotate a run that has ended (a reproduction's verdict): MLflow keeps tags writable."""
    c = client(settings)
    for key, value in tags.items():
        c.set_tag(run_id, key, value)
