"""Artifacts and models of recorded runs, and annotating runs that ended.

The jobs, registry and serving layers fetch files through these functions and get local paths and our own
records back (``records.py``), never MLflow objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops_nb.config import Settings, load_settings
from mlops_nb.exceptions import StoreError, UsageError
from mlops_nb.tracking._client import client
from mlops_nb.tracking.errors import NOT_FOUND, error_code, map_mlflow_errors
from mlops_nb.tracking.records import LoggedModelRecord


def logged_models(run_ids: list[str], settings: Settings | None = None) -> dict[str, list[LoggedModelRecord]]:
    """The MLflow 3 logged models (``mlflow.<flavor>.log_model``, autolog) of runs ``run_ids`` that finished
    uploading, by source run id, oldest first: one search per experiment."""
    from mlflow.entities import LoggedModelStatus

    s = settings or load_settings()
    c = client(s)
    found: dict[str, list[LoggedModelRecord]] = {}
    by_experiment: dict[str, list[str]] = {}
    with map_mlflow_errors("searching logged models", fix="Check the run ids.", uri=s.tracking_uri):
        for run_id in dict.fromkeys(run_ids):
            by_experiment.setdefault(c.get_run(run_id).info.experiment_id, []).append(run_id)
        for experiment, ids in by_experiment.items():
            quoted = ", ".join(f"'{run_id}'" for run_id in ids)
            token = None
            while True:
                page = c.search_logged_models(
                    [experiment], filter_string=f"source_run_id IN ({quoted})", page_token=token
                )
                for model in page:
                    if model.status == LoggedModelStatus.READY:
                        found.setdefault(model.source_run_id, []).append(
                            LoggedModelRecord(
                                name=model.name,
                                model_id=model.model_id,
                                source_run_id=model.source_run_id,
                                creation_time=int(model.creation_timestamp or 0),
                            )
                        )
                token = page.token
                if not token:
                    break
    for models in found.values():
        models.sort(key=lambda m: m["creation_time"])
    return found


def artifact_paths(run_id: str, path: str = "", settings: Settings | None = None) -> set[str]:
    """The paths of the artifacts directly under ``path`` of run ``run_id``."""
    s = settings or load_settings()
    with map_mlflow_errors(f"listing artifacts of run {run_id}", fix="Check the run id.", uri=s.tracking_uri):
        return {a.path for a in client(s).list_artifacts(run_id, path or None)}


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
                named = [m for m in logged_models([run_id], s).get(run_id, []) if m["name"] == path]
                if not named:
                    raise UsageError(
                        f"Run {run_id} has no model at {path!r}. A job or notebook run keeps its models in its "
                        "stage runs: export runs:/<stage run id>/model, or mlops-nb promote the run and export "
                        "models:/NAME@ALIAS."
                    )
                # the latest, as MLflow's own resolution picks
                source = c.get_logged_model(named[-1]["model_id"]).artifact_location
        return Path(
            mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst), tracking_uri=s.tracking_uri)
        )
    except (MlflowException, OSError) as e:
        if error_code(e) in NOT_FOUND:
            detail = getattr(e, "message", e)
            raise UsageError(
                f"No model {model_uri!r} in MLflow at {s.tracking_uri}: {detail}. Check the name, version or "
                "alias (the MLflow UI lists them) and MLFLOW_TRACKING_URI."
            ) from e
        raise StoreError(
            f"Cannot fetch model {model_uri!r} from MLflow at {s.tracking_uri}: {e}. Check the name, version or "
            "alias (mlflow's registry UI lists them) and MLFLOW_TRACKING_URI."
        ) from e


def mlmodel(folder: Path) -> dict[str, Any]:
    """The MLmodel file of a downloaded model folder, read and checked by MLflow (``mlflow.models.Model``), as
    the mapping MLflow writes (``signature.inputs`` stays the JSON text MLflow stores).

    Raises:
        UsageError: no MLmodel file, or one MLflow cannot read.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    path = folder / "MLmodel"
    if not path.is_file():
        raise UsageError(f"{folder} has no MLmodel file: the URI does not point at an MLflow model folder.")
    try:
        return Model.load(path).to_dict()
    except (MlflowException, ValueError, TypeError, AttributeError) as e:  # yaml errors are ValueErrors
        raise UsageError(f"{path} is not a valid MLmodel file: {e}") from e


def set_tags(run_id: str, tags: dict[str, str], settings: Settings | None = None) -> None:
    """Annotate a run that has ended (a reproduction's verdict): MLflow keeps tags writable."""
    s = settings or load_settings()
    c = client(s)
    with map_mlflow_errors(f"No run {run_id!r}", fix="Check the run id.", uri=s.tracking_uri):
        for key, value in tags.items():
            c.set_tag(run_id, key, value)
