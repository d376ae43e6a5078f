"""Paths a request names, confined to the server's root folder (the handlers and the jobs both take them)."""

from __future__ import annotations

from pathlib import Path

from mlops_nb.exceptions import UsageError
from mlops_nb.tracking.validation import surrogate_at

MAX_NAME = 255  # bytes of one file name (NAME_MAX)
MAX_PATH = 4096  # bytes of a path (PATH_MAX)


def confine(root: Path, path: str | None, what: str = "path") -> Path:
    """``path`` (relative to ``root``, or absolute) resolved with its symlinks; UsageError outside ``root``, or
    for a path no file can have (a lone surrogate, a name longer than 255 bytes)."""
    if not path or "\0" in path:
        raise UsageError(f"Give {what}=PATH: a notebook path relative to the server's root folder.")
    if surrogate_at(path) is not None:
        raise UsageError(f"{what} {path!r} is not a path: it holds a lone surrogate (give the path as UTF-8 text).")
    if any(len(part.encode()) > MAX_NAME for part in Path(path).parts) or len(path.encode()) > MAX_PATH:
        raise UsageError(
            f"{what} {path[:60]!r}... is longer than a path can be ({MAX_NAME} bytes a name, {MAX_PATH} in all)."
        )
    try:
        resolved = (root / path).resolve()
    except OSError as e:
        raise UsageError(f"{what} {path[:200]!r} cannot be resolved: {e.strerror or e}.") from e
    if not resolved.is_relative_to(root):
        raise UsageError(f"{what} {path!r} is outside the server's root folder; give a path inside it.")
    return resolved
