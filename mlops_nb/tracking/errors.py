"""MLflow's errors in our exception tree: a wrong id or name is the user's (UsageError, exit 2), anything else
is the store's (StoreError, exit 5)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from mlops_nb.exceptions import StoreError, UsageError

NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND", "BAD_REQUEST"})


def error_code(error: BaseException) -> str | None:
    """MLflow's error code of ``error`` (``RESOURCE_DOES_NOT_EXIST`` ...), or None."""
    return getattr(error, "error_code", None)


@contextlib.contextmanager
def map_mlflow_errors(what: str, *, fix: str, uri: str) -> Iterator[None]:
    """Turn MLflow's errors raised inside the block into UsageError (``what`` does not exist: ``fix`` says
    what to check) or StoreError (the store at ``uri`` could not answer)."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as e:
        detail = getattr(e, "message", str(e))
        if error_code(e) in NOT_FOUND:
            detail = detail.rstrip(". ")  # MLflow's sentence ends with a full stop: ours follows it
            raise UsageError(f"{what} in MLflow at {uri}: {detail}. {fix}") from e
        raise StoreError(
            f"MLflow at {uri} could not answer ({_doing(what)}): {short_error(detail)}. {STORE_FIX}"
        ) from e
    except OSError as e:
        raise StoreError(
            f"MLflow at {uri} could not be reached ({_doing(what)}): {short_error(str(e))}. {STORE_FIX}"
        ) from e


STORE_FIX = (
    "Check that the store is up (an mlflow server: running and reachable from here) and that MLFLOW_TRACKING_URI "
    "(or tracking_uri under [tool.mlops_nb] in pyproject.toml) names it, then run the command again."
)
_SIGNS = (  # what urllib3's paragraph says, as the few words a user needs
    (("Connection refused", "Failed to establish a new connection"), "no server answers there (connection refused)"),
    (("Name or service not known", "Temporary failure in name resolution"), "its host name does not resolve"),
    (("Connection aborted", "Connection reset", "RemoteDisconnected", "Read timed out"), "the connection broke"),
)


def _doing(what: str) -> str:
    """``No model version 'x'`` (the not-found message's start) as what was being read: ``model version 'x'``."""
    return what[len("No ") :] if what.startswith("No ") else what


def short_error(detail: str) -> str:
    """A failed connection in a few words (MLflow quotes urllib3's paragraph); any other answer as it is."""
    for signs, words in _SIGNS:
        if any(sign in detail for sign in signs):
            return words
    return detail.rstrip(". ")
