"""The one exception tree of mlops-nb.

::

    MlopsNbError
    ├── ConfigError            a setting is invalid (names the setting, where it came from, the fix)
    ├── UsageError             bad input to a command: a notebook, a parameter, a requirement (also a ValueError)
    │   ├── ExportError        a model that cannot be exported: bad URI, unsupported model, --out in the way
    │   └── UnknownMetricError a metric the compared runs do not have (names the ones they have)
    └── TrackingError          recording into MLflow went wrong
        ├── InvalidRecordError a param/metric/tag/artifact that MLflow would refuse (also a ValueError)
        ├── JournalError       the local journal cannot be written (nothing was recorded)
        └── StoreError         the MLflow store cannot be reached or initialised

Every message says how to fix the problem, and shows no credentials: URIs in it are redacted.
"""

from __future__ import annotations

from mlops_nb.redaction import redact_uri


class MlopsNbError(Exception):
    """Base class of every error mlops-nb raises on purpose. Its message never shows a URI's credentials
    (MLflow's own errors, quoted in ours, repeat the tracking URI as given)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_uri(a) if isinstance(a, str) else a for a in args))


class ConfigError(MlopsNbError):
    """A setting has a bad value.

    Attributes:
        setting: the setting's name (``tracking_uri``, ``flush_interval`` ...).
        source: where the bad value came from (a pyproject path, an environment variable, an argument).
    """

    def __init__(self, message: str, *, setting: str | None = None, source: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting
        self.source = source


class UsageError(MlopsNbError, ValueError):
    """Bad input to a command or function: a missing notebook, an unknown parameter, a malformed requirement."""


class UpstreamNotCached(UsageError):
    """``mlops-nb run --stage NAME --no-upstream``: a stage NAME depends on has no cache entry for its key."""


class ExportError(UsageError):
    """The model cannot be exported: bad URI, no such model, unsupported model, or ``--out`` in the way."""


class UnknownMetricError(UsageError):
    """A metric asked for (``metrics=`` of a comparison) that none of the runs has.

    Attributes:
        unknown: the names asked for that no run has.
        available: every metric the runs have, in the comparison's default order.
    """

    def __init__(self, message: str, *, unknown: list[str], available: list[str]) -> None:
        super().__init__(message)
        self.unknown = unknown
        self.available = available


class TrackingError(MlopsNbError):
    """Recording into MLflow failed."""


class InvalidRecordError(TrackingError, ValueError):
    """A record MLflow would refuse: bad key, wrong value type, a param changed within a run."""


class JournalError(TrackingError):
    """The journal folder cannot be written, so nothing can be recorded durably."""


class StoreError(TrackingError):
    """The MLflow tracking store cannot be reached or initialised."""
