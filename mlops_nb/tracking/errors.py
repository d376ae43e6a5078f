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
            raise UsageError(f"{what} in MLflow at {uri}: {detail}. {fix}") from e
        raise StoreError(f"MLflow at {uri} could not answer ({what}): {detail}") from e
    except OSError as e:
        raise StoreError(f"MLflow at {uri} could not be reached ({what}): {e}") from e
