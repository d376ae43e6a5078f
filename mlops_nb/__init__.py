"""mlops-nb: notebook-first MLOps on MLflow.

``import mlops_nb as mnb`` loads neither MLflow nor pandas nor IPython; they load on first use.
"""

from __future__ import annotations

from mlops_nb.exceptions import ConfigError, MlopsNbError, TrackingError
from mlops_nb.tracking.fluent import (
    flush,
    log_artifact,
    log_dict,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_text,
    set_tag,
    set_tags,
    tracking_uri,
)
from mlops_nb.tracking.runs import Run, active_run, end_run, stage, start_run

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "MlopsNbError",
    "Run",
    "TrackingError",
    "__version__",
    "active_run",
    "end_run",
    "flush",
    "log_artifact",
    "log_dict",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "set_tag",
    "set_tags",
    "stage",
    "start_run",
    "tracking_uri",
]
