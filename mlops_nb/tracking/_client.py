"""The MLflow client of a tracking URI, for tracking/'s own modules only (the underscore says so): nothing
outside tracking/ receives an MLflow object. One client per tracking URI per process, created with the same
safe store initialisation as the sender's."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_nb.config import Settings, load_settings
from mlops_nb.tracking.store import import_mlflow

if TYPE_CHECKING:
    from mlflow import MlflowClient


_making = threading.Lock()  # clients are made one at a time (one per tracking URI)


@functools.lru_cache(maxsize=4)
def _store(tracking_uri: str, home: Path, artifact_root: Path | None) -> Any:
    from mlops_nb.tracking.store import Store

    return Store(tracking_uri, home, artifact_root)


def client(settings: Settings | None = None) -> MlflowClient:
    """An MLflow client for the settings in force (the embedded store is created when missing)."""
    s = settings or load_settings()
    import_mlflow()
    with _making:
        store = _store(s.tracking_uri, s.home, s.artifact_root if s.embedded else None)
    return store.client
