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
    from mlflow.entities import LoggedModel
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


def logged_models(runs: list[MlflowRun], settings: Settings | None = None) -> dict[str, list[LoggedModel]]:
    """The MLflow 3 logged models (``mlflow.<flavor>.log_model``, autolog) of ``runs`` that finished uploading,
    by source run id, oldest first: one search per experiment."""
    from mlflow.entities import LoggedModelStatus

    c = client(settings)
    found: dict[str, list[LoggedModel]] = {}
    by_experiment: dict[str, list[str]] = {}
    for run in runs:
        by_experiment.setdefault(run.info.experiment_id, []).append(run.info.run_id)
    for experiment, ids in by_experiment.items():
        quoted = ", ".join(f"'{run_id}'" for run_id in dict.fromkeys(ids))
        token = None
        while True:
            page = c.search_logged_models([experiment], filter_string=f"source_run_id IN ({quoted})", page_token=token)
            for model in page:
                if model.status == LoggedModelStatus.READY:
                    found.setdefault(model.source_run_id, []).append(model)
            token = page.token
            if not token:
                break
    for models in found.values():
        models.sort(key=lambda m: m.creation_timestamp)
    return found


def download_artifacts(run_id: str, path: str, dst: Path, settings: Settings | None = None) -> Path:
    """Download artifact ``path`` of run ``run_id`` into ``dst``; returns the local path."""
    from mlflow.exceptions import MlflowException

    dst.mkdir(parents=True, exist_ok=True)
    try:
        return Path(client(settings).download_artifacts(run_id, path, str(dst)))
    except (MlflowException, OSError) as e:
        raise StoreError(f"Cannot download artifact {path!r} of run {run_id}: {e}") from e


def download_model(model_uri: str, dst: Path, settings: Settings | None = None) -> Path:
    """Download a model into ``dst``: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/RUN_ID/PATH``
    (a run artifact, or the model MLflow 3's ``log_model`` logged from that run under the name PATH), or
    ``models:/m-<model id>`` (an MLflow 3 logged model).

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
        if model_uri.startswith("models:/m-") and "/" not in model_uri[len("models:/") :] and "@" not in model_uri:
            source = c.get_logged_model(model_uri[len("models:/") :]).artifact_location
        elif model_uri.startswith("models:/"):
            name, sep, alias = model_uri[len("models:/") :].partition("@")
            if sep:
                version = c.get_model_version_by_alias(name, alias)
            else:
                name, _, number = name.rstrip("/").rpartition("/")
                version = c.get_model_version(name, number)
            source = c.get_model_version_download_uri(version.name, version.version)
        elif model_uri.startswith("runs:/"):
            run_id, _, path = model_uri[len("runs:/") :].partition("/")
            path = path.strip("/")
            if f"{path}/MLmodel" not in {a.path for a in c.list_artifacts(run_id, path)}:
                named = [m for m in logged_models([c.get_run(run_id)], s).get(run_id, []) if m.name == path]
                if not named:
                    raise UsageError(
                        f"Run {run_id} has no model at {path!r}. A job or notebook run keeps its models in its "
                        "stage runs: export runs:/<stage run id>/model, or mlops-nb promote the run and export "
                        "models:/NAME@ALIAS."
                    )
                source = named[-1].artifact_location  # the latest, as MLflow's own resolution picks
        return Path(
            mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst), tracking_uri=s.tracking_uri)
        )
    except (MlflowException, OSError) as e:
        if getattr(e, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            detail = getattr(e, "message", e)
            raise UsageError(
                f"No model {model_uri!r} in MLflow at {s.tracking_uri}: {detail}. Check the name, version or "
                "alias (the MLflow UI lists them) and MLFLOW_TRACKING_URI."
            ) from e
        raise StoreError(
            f"Cannot fetch model {model_uri!r} from MLflow at {s.tracking_uri}: {e}. Check the name, version or "
            "alias (mlflow's registry UI lists them) and MLFLOW_TRACKING_URI."
        ) from e


def set_tags(run_id: str, tags: dict[str, str], settings: Settings | None = None) -> None:
    """Annotate a run that has ended (a reproduction's verdict): MLflow keeps tags writable."""
    c = client(settings)
    for key, value in tags.items():
        c.set_tag(run_id, key, value)
