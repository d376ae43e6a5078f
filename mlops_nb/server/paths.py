"""Paths a request names, confined to the server's root folder (the handlers and the jobs both take them)."""

from __future__ import annotations

from pathlib import Path

from mlops_nb.exceptions import UsageError


def confine(root: Path, path: str | None, what: str = "path") -> Path:
    """``path`` (relative to ``root``, or absolute) resolved with its symlinks; UsageError outside ``root``."""
    if not path or "\0" in path:
        raise UsageError(f"Give {what}=PATH: a notebook path relative to the server's root folder.")
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise UsageError(f"{what} {path!r} is outside the server's root folder; give a path inside it.")
    return resolved
