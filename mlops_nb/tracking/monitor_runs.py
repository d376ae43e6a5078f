"""The MLflow side of monitoring a model: which model a URI names, its stored reference, the monitor's run, and
the last result on the model version.

A monitor is a top-level run (``mlops_nb.kind`` = ``monitor``, ``mlops_nb.model`` = ``NAME/VERSION``) in the
experiment of the run that logged the model, recorded through the journal like every other run, so nothing
is lost when MLflow is briefly away. Its metrics have bounded names (:func:`metric_name`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mlops_nb.config import Settings, load_settings
from mlops_nb.exceptions import StoreError, UsageError
from mlops_nb.tracking import tags
from mlops_nb.tracking.errors import STORE_FIX, map_mlflow_errors, short_error
from mlops_nb.tracking.models import REFERENCE_FILES

MAX_FEATURE_METRICS = 200  # per-feature drift metrics of one monitor run (the JSON artifact has every feature)
_METRIC_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")
_MAX_NAME = 80
_URI_FIX = (
    "Give models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/PATH (mlops-nb runs and the MLflow UI list them)."
)


@dataclass(frozen=True)
class MonitoredModel:
    """A model resolved once from its URI: the registered version (``name``/``version``), or a run's model."""

    uri: str
    run_id: str | None  # the run that logged the model
    artifact_uri: str  # where the model's files are (download base)
    name: str | None = None
    version: str | None = None

    @property
    def label(self) -> str:
        """``NAME/VERSION`` (the ``mlops_nb.model`` tag of its monitors), or the ``runs:/`` URI."""
        return f"{self.name}/{self.version}" if self.name else self.uri


def _client(settings: Settings) -> Any:
    from mlops_nb.tracking.query import client

    return client(settings)


def resolve(model_uri: str, settings: Settings | None = None) -> MonitoredModel:
    """The model ``model_uri`` names, resolved once (an alias that moves later does not change this monitor).

    Raises:
        UsageError: a malformed URI, or no such model, version, alias or run (the message names the fix).
    """
    s = settings or load_settings()
    if model_uri.startswith("models:/"):
        from mlops_nb.tracking.reading import model_version

        version = model_version(model_uri, s)
        with map_mlflow_errors(f"No model version {model_uri!r}", fix=_URI_FIX, uri=s.tracking_uri):
            where = _client(s).get_model_version_download_uri(version["name"], version["version"])
        return MonitoredModel(model_uri, version["run_id"], where, version["name"], version["version"])
    if model_uri.startswith("runs:/"):
        run_id, _, path = model_uri[len("runs:/") :].partition("/")
        path = path.strip("/")
        if not run_id or not path:
            raise UsageError(f"{model_uri!r}: a run's model is runs:/RUN_ID/PATH (PATH: model, by default).")
        with map_mlflow_errors(f"No run {run_id!r}", fix=_URI_FIX, uri=s.tracking_uri):
            files = {a.path for a in _client(s).list_artifacts(run_id, path)}
        if f"{path}/MLmodel" not in files:
            raise UsageError(
                f"Run {run_id} has no model at {path!r}. A job keeps its models in its stage runs: give "
                "runs:/<stage run id>/model, or the registered version (models:/NAME@ALIAS)."
            )
        return MonitoredModel(model_uri, run_id, f"runs:/{run_id}/{path}")
    raise UsageError(f"{model_uri!r} names no model. {_URI_FIX}")


def fetch_reference(model: MonitoredModel, dst: Path, settings: Settings | None = None) -> dict[str, Path]:
    """Download the reference files stored beside the model into ``dst``: ``{file name: local path}`` of those
    it has (none for a model logged without a reference)."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    s = settings or load_settings()
    dst.mkdir(parents=True, exist_ok=True)
    with map_mlflow_errors(f"listing the files of {model.uri}", fix=_URI_FIX, uri=s.tracking_uri):
        listed = {
            Path(a.path).name for a in mlflow.artifacts.list_artifacts(model.artifact_uri, tracking_uri=s.tracking_uri)
        }
    found = {}
    for file in REFERENCE_FILES:
        if file not in listed:
            continue
        try:
            found[file] = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{model.artifact_uri}/{file}", dst_path=str(dst), tracking_uri=s.tracking_uri
                )
            )
        except (MlflowException, OSError) as e:
            detail = short_error(getattr(e, "message", str(e)))
            raise StoreError(
                f"Cannot download {file} of {model.uri} from MLflow at {s.tracking_uri}: {detail}. {STORE_FIX}"
            ) from e
    return found


def metric_name(prefix: str, feature: str) -> str:
    """``prefix`` + the feature name as MLflow takes it: unsafe characters as ``_``, at most 80 of them, and
    a short hash when anything was changed (two features never share a metric)."""
    safe = _METRIC_UNSAFE.sub("_", feature)[:_MAX_NAME]
    if safe != feature:  # "-": MLflow refuses "~" (and every other character _METRIC_UNSAFE replaces)
        safe = f"{safe}-{hashlib.sha256(feature.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    return prefix + safe


def metrics_of(result: dict[str, Any]) -> dict[str, float]:
    """The monitor's metrics: dataset drift, drift share, rows, problems, and per feature (the first
    :data:`MAX_FEATURE_METRICS`) the deciding statistic and whether it drifted."""
    found: dict[str, float] = {
        "dataset_drift": float(result["dataset_drift"]),
        "drift_share": float(result["drift_share"]),
        "rows": float(result["rows"]),
        "problems": float(len(result["validation"]["problems"])),
    }
    decided = [(n, f) for n, f in result["features"].items() if f.get("method")][:MAX_FEATURE_METRICS]
    for name, feature in decided:
        score = feature["scores"][feature["method"]]
        if score["statistic"] is not None:
            found[metric_name("drift_score.", name)] = float(score["statistic"])
        found[metric_name("drift.", name)] = float(bool(feature["drift"]))
    return found


class MonitorRun:
    """The monitor's MLflow run, open while the result is written: ``run_id`` is known before the artifacts are.

    Args:
        model: what is monitored.
        settings: the settings in force (the store to record into).
    """

    def __init__(self, model: MonitoredModel, settings: Settings | None = None) -> None:
        from mlops_nb.tracking.runs import open_run

        s = settings or load_settings()
        experiment = None
        if model.run_id:
            client = _client(s)
            with map_mlflow_errors(f"reading the run of {model.uri}", fix=_URI_FIX, uri=s.tracking_uri):
                experiment = client.get_experiment(client.get_run(model.run_id).info.experiment_id).name
        from mlops_nb.tracking.runs import default_experiment

        self.model = model
        self._uri = s.tracking_uri
        self._run = open_run(
            f"monitor {model.label}"[:250],
            experiment=experiment or default_experiment(),
            kind="monitor",
            tags={tags.MODEL: model.label},
        )

    @property
    def run_id(self) -> str:
        """The run's MLflow id, waiting up to ``flush_timeout`` for MLflow to create it.

        Raises:
            StoreError: MLflow did not create it in time (the run stays open in the journal: log and end it).
        """
        from mlops_nb.tracking.recorder import get_recorder

        try:
            return self._run.run_id
        except StoreError as e:
            last = getattr(get_recorder().sender, "last_error", None) or ""
            raise StoreError(
                f"MLflow at {self._uri} did not create the monitor run ({short_error(last) or 'no answer'}). "
                f"{STORE_FIX}"
            ) from e

    def log(self, result: dict[str, Any], files: list[Path], windows: list[dict[str, Any]] | None = None) -> None:
        """Log the result's metrics (and each window's, as a time series), the files as artifacts under
        ``monitor/``, and end the run."""
        self._run.log_metrics(metrics_of(result))
        for step, window in enumerate(windows or []):
            stamp = None
            if window.get("start"):
                stamp = int(datetime.fromisoformat(window["start"].replace("Z", "+00:00")).timestamp() * 1000)
            self._run.log_metric("window.drift_share", float(window["drift_share"]), step, stamp)
            self._run.log_metric("window.dataset_drift", float(window["dataset_drift"]), step, stamp)
            self._run.log_metric("window.rows", float(window["rows"]), step, stamp)
            for metric, value in ((window.get("performance") or {}).get("metrics") or {}).items():
                if value is not None:  # with --labels: the window's realised accuracy, F1 (or MAE, RMSE, R2)
                    self._run.log_metric(f"window.{metric}", float(value), step, stamp)
        for file in files:
            self._run.log_artifact(file, "monitor")
        self._run.end("FINISHED")

    def fail(self, error: BaseException) -> None:
        self._run.end("FAILED", error)


def flush(timeout: float | None = None) -> bool:
    """Wait until this process's records (the monitor run) are in MLflow."""
    from mlops_nb.tracking.recorder import get_recorder

    return get_recorder().flush(timeout)


def tag_last_result(model: MonitoredModel, summary: dict[str, Any], settings: Settings | None = None) -> None:
    """Put ``summary`` (JSON) on the model version as ``mlops_nb.monitor.last``; nothing for a run's model."""
    if not model.name or not model.version:
        return
    s = settings or load_settings()
    with map_mlflow_errors(f"tagging {model.label}", fix=_URI_FIX, uri=s.tracking_uri):
        _client(s).set_model_version_tag(model.name, model.version, tags.MONITOR_LAST, json.dumps(summary))
