"""The model registry operations promotion needs: aliases, the per-model promotion lock, registering a
version and moving an alias. Our records in, our records and exceptions out.

The lock is a registered model named ``<MODEL>.mlops-nb-lock``: creating a registered model is atomic in
every MLflow store (a unique key in its database, also through ``mlflow server``), so one lock serves SQLite,
PostgreSQL and a server shared by many machines.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import uuid
from collections.abc import Iterator

from mlops_nb.config import Settings, load_settings
from mlops_nb.exceptions import StoreError, UsageError
from mlops_nb.tracking._client import client
from mlops_nb.tracking.errors import error_code, map_mlflow_errors

LOCK_SUFFIX = ".mlops-nb-lock"
LOCK_TIMEOUT = 300.0
STALE_LOCK = 120.0  # seconds one holder may keep the lock before a waiter breaks it (a promotion holds it ms)
_LOCK_TOKEN_TAG = "mlops_nb.lock.token"
_LOCK_TAKEN = ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST")
_FIX = "Check the model name (the MLflow UI's Models page lists them) and MLFLOW_TRACKING_URI."


def aliases(name: str, settings: Settings | None = None) -> dict[str, str]:
    """The aliases of registered model ``name`` (alias -> version); {} when the model does not exist yet.

    Raises:
        UsageError: ``name`` is not a name MLflow accepts.
    """
    from mlflow.exceptions import MlflowException

    s = settings or load_settings()
    try:
        return {alias: str(v) for alias, v in client(s).get_registered_model(name).aliases.items()}
    except MlflowException as e:
        if error_code(e) == "RESOURCE_DOES_NOT_EXIST":
            return {}
        if error_code(e) == "INVALID_PARAMETER_VALUE":
            raise UsageError(f"{e.message} Choose another --name.") from e
        raise StoreError(f"MLflow at {s.tracking_uri} could not read registered model {name!r}: {e.message}") from e


def register_version(
    name: str,
    source: str,
    *,
    run_id: str,
    model_id: str | None,
    tags: dict[str, str],
    description: str,
    settings: Settings | None = None,
) -> str:
    """Create version N+1 of ``name`` (and ``name`` itself when missing) from model ``source`` with ``tags``;
    returns N+1."""
    from mlflow.exceptions import MlflowException

    s = settings or load_settings()
    c = client(s)
    with map_mlflow_errors(f"registering a version of {name!r}", fix=_FIX, uri=s.tracking_uri):
        try:
            c.create_registered_model(name)
        except MlflowException as e:
            if error_code(e) != "RESOURCE_ALREADY_EXISTS":
                raise
        created = c.create_model_version(
            name, source, run_id=run_id, model_id=model_id, tags=tags, description=description
        )
    return str(created.version)


def set_alias(name: str, alias: str, version: str, settings: Settings | None = None) -> None:
    """Point ``alias`` of registered model ``name`` at ``version``."""
    s = settings or load_settings()
    with map_mlflow_errors(f"moving {name}@{alias}", fix=_FIX, uri=s.tracking_uri):
        client(s).set_registered_model_alias(name, alias, version)


def set_version_tag(name: str, version: str, key: str, value: str, settings: Settings | None = None) -> None:
    """Set tag ``key`` on version ``version`` of registered model ``name``."""
    s = settings or load_settings()
    with map_mlflow_errors(f"No model version {name}/{version}", fix=_FIX, uri=s.tracking_uri):
        client(s).set_model_version_tag(name, version, key, value)


@contextlib.contextmanager
def model_lock(
    name: str,
    *,
    timeout: float = LOCK_TIMEOUT,
    stale_after: float = STALE_LOCK,
    settings: Settings | None = None,
) -> Iterator[None]:
    """Hold the promotion lock of registered model ``name``: the registered model ``<name>.mlops-nb-lock``.

    A lock whose holder has not changed for ``stale_after`` seconds (its process died) is broken.

    Raises:
        StoreError: the lock stayed taken for ``timeout`` seconds.
    """
    from mlops_nb.tracking.provenance import process_tags
    from mlops_nb.tracking.store import is_transient

    c = client(settings)
    lock, token = name + LOCK_SUFFIX, uuid.uuid4().hex
    me = process_tags()
    holder = f"{me['mlops_nb.user']}@{me['mlops_nb.host']} (pid {os.getpid()})"
    started = time.monotonic()
    seen: tuple[str, float] | None = None  # the holder's token and since when this process has seen it
    while True:
        try:
            c.create_registered_model(
                lock,
                tags={_LOCK_TOKEN_TAG: token},
                description=f"Promotion lock of {name!r}, held by {holder}. mlops-nb deletes it within a second; "
                "delete it by hand only when no mlops-nb promote is running.",
            )
            break
        except Exception as e:
            # Taken (or released between our create and its read-back), or a busy database: try again.
            if error_code(e) not in _LOCK_TAKEN and not is_transient(e):
                raise
        now, current = time.monotonic(), _lock_token(c, lock)
        if current == "":
            raise StoreError(
                f"A registered model named {lock!r} exists that is not an mlops-nb promotion lock (it has no "
                f"{_LOCK_TOKEN_TAG} tag), so promotions of {name!r} cannot take their lock. Rename or delete it."
            )
        if current is not None:
            if seen is None or seen[0] != current:
                seen = (current, now)
            elif now - seen[1] > stale_after:
                _release(c, lock, current)
                continue
        if now - started > timeout:
            raise StoreError(
                f"Waited {timeout:.0f} s for the promotion lock of {name!r} (registered model {lock!r}). Another "
                "promotion holds it; if none is running, delete that registered model and promote again."
            )
        time.sleep(random.uniform(0.05, 0.2))
    try:
        yield
    finally:
        _release(c, lock, token)


def _lock_token(c: object, lock: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return c.get_registered_model(lock).tags.get(_LOCK_TOKEN_TAG, "")  # type: ignore[attr-defined]
    except MlflowException as e:
        if error_code(e) == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def _release(c: object, lock: str, token: str) -> None:
    """Delete the lock if ``token`` still holds it."""
    from mlflow.exceptions import MlflowException

    if _lock_token(c, lock) == token:
        with contextlib.suppress(MlflowException):  # deleted by a waiter that found it stale
            c.delete_registered_model(lock)  # type: ignore[attr-defined]
