"""The module-level API users call (``mnb.log_metric`` ...): each records into the innermost open run."""

from __future__ import annotations

import json
import os
from typing import Any

from mlops_nb.tracking.recorder import get_recorder
from mlops_nb.tracking.runs import current_run


def log_param(key: str, value: Any) -> None:
    """Log a parameter of the current run (converted to text; a changed value within a run is an error)."""
    current_run().log_param(key, value)


def log_params(params: dict[str, Any]) -> None:
    """Log several parameters of the current run."""
    current_run().log_params(params)


def log_metric(key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
    """Log a metric of the current run; inside a stage it is rolled up onto the top-level run too."""
    current_run().log_metric(key, value, step, timestamp)


def log_metrics(metrics: dict[str, float], step: int | None = None, timestamp: int | None = None) -> None:
    """Log several metrics of the current run at one step."""
    current_run().log_metrics(metrics, step, timestamp)


def set_tag(key: str, value: Any) -> None:
    """Set a tag on the current run."""
    current_run().set_tag(key, value)


def set_tags(tags: dict[str, Any]) -> None:
    """Set several tags on the current run."""
    current_run().set_tags(tags)


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    """Log a file (or a folder, kept whole) as an artifact of the current run.

    The file is copied into the journal before this returns, so later changes to it are not recorded.
    """
    current_run().log_artifact(local_path, artifact_path)


def log_text(text: str, artifact_file: str) -> None:
    """Log a string as the artifact file ``artifact_file`` (e.g. ``"notes/summary.md"``)."""
    current_run().log_text(text, artifact_file)


def log_dict(dictionary: dict[str, Any], artifact_file: str) -> None:
    """Log a dict as a JSON artifact (YAML when ``artifact_file`` ends in ``.yaml``/``.yml``)."""
    if artifact_file.endswith((".yaml", ".yml")):
        import yaml

        text = yaml.safe_dump(dictionary, sort_keys=False)
    else:
        text = json.dumps(dictionary, indent=2, default=str)
    current_run().log_text(text, artifact_file)


def flush(timeout: float | None = None) -> bool:
    """Wait until everything recorded so far (and any journal a dead process left) is in MLflow.

    Returns:
        True when it all arrived, False when ``timeout`` seconds passed first (nothing is lost: the records
        stay in the journal and keep being sent).
    """
    return get_recorder().flush(timeout)


def tracking_uri() -> str:
    """Where records go: ``MLFLOW_TRACKING_URI`` / config, else the embedded SQLite store's URI."""
    from mlops_nb.config import load_settings
    from mlops_nb.tracking.recorder import current_recorder

    recorder = current_recorder()
    return recorder.settings.tracking_uri if recorder is not None else load_settings().tracking_uri
