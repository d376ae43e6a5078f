"""What MLflow accepts, checked at the call: a record MLflow would refuse fails in the caller's code, with the
name and the reason, instead of in the background sender where it would take its whole batch down with it.

The rules are MLflow's own (``mlflow/utils/validation.py``): names of metrics, params and tags are at most 250
characters of letters, digits, ``_ - . / :`` and spaces, and a clean relative path; a param value holds at
most 6,000 characters, a tag value 8,000. Text must also be encodable as UTF-8: a lone surrogate (``\\ud800``,
or ``\\udcff``, which ``os.fsdecode`` gives for a file name byte that is not UTF-8) can be stored neither in a
database nor sent to a server. In a name it is refused; in a value (a param, a tag, a text artifact: often a
path, a traceback, a notebook's output) it is written as its escape, which keeps what the byte was.
"""

from __future__ import annotations

import json
import numbers
import posixpath
import re
from typing import Any

from mlops_nb.exceptions import InvalidRecordError

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
_NAME = re.compile(r"[/\w.\- :]*")  # MLflow's rule for metric, param and tag names (POSIX)
_NAMED = ("metric", "param", "tag")  # the kinds MLflow checks the characters of (artifact paths are free)


def surrogate_at(text: str) -> int | None:
    """The position of the first character of ``text`` that UTF-8 cannot encode (a lone surrogate), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


def escaped(text: str) -> str:
    """``text`` with each lone surrogate written as its escape (``\\udcff``): values, and the run names
    mlops-nb derives from file names, which must still make a run."""
    return text if surrogate_at(text) is None else text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_text(what: str, text: str) -> str:
    """``text`` if UTF-8 can encode it, else an InvalidRecordError naming ``what`` and the position."""
    at = surrogate_at(text)
    if at is not None:
        raise InvalidRecordError(
            f"{what} holds {text[at]!r} at position {at}: a lone surrogate, which is not text MLflow can store "
            "(os.fsdecode gives one for a file-name byte that is not UTF-8). Decode such bytes with "
            "errors='replace' or 'backslashreplace', e.g. os.fsencode(name).decode('utf-8', 'backslashreplace')."
        )
    return text


def check_key(kind: str, key: Any) -> str:
    """``key`` if MLflow accepts it as the name of a ``kind`` (metric, param, tag, artifact, model), else an
    InvalidRecordError saying which name and why."""
    if not isinstance(key, str) or not key:
        raise InvalidRecordError(f"A {kind} name must be a non-empty string, got {key!r}.")
    if len(key) > MAX_KEY:
        raise InvalidRecordError(
            f"{kind.capitalize()} name {key[:40]!r}... is longer than MLflow's {MAX_KEY} characters."
        )
    check_text(f"{kind.capitalize()} name {key!r}", key)
    if kind in _NAMED and not _NAME.fullmatch(key):
        bad = sorted({c for c in key if not _NAME.fullmatch(c)})
        suggestion = re.sub(r"[^/\w.\- :]", "_", key)
        raise InvalidRecordError(
            f"{kind.capitalize()} name {key!r} has characters MLflow refuses ({' '.join(map(repr, bad))}): names "
            f"may only hold letters, digits, underscores, dashes, periods, spaces, colons and slashes. Use "
            f"{suggestion!r}, say."
        )
    norm = posixpath.normpath(key)
    if norm != key or norm == "." or norm.startswith(("..", "/")):
        raise InvalidRecordError(
            f"{kind.capitalize()} name {key!r} is not a clean relative path (MLflow stores names as paths); "
            f"use {norm.lstrip('/')!r} or a name without '//', './' or '..'."
        )
    return key


def check_metric(key: str, value: Any, step: Any) -> tuple[float, int]:
    """The value and step MLflow stores for metric ``key``, checked: a real number (NaN allowed), an integer."""
    check_key("metric", key)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidRecordError(f"Metric {key!r} must be a number, got {type(value).__name__} {value!r}.")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidRecordError(f"The step of metric {key!r} must be an integer, got {step!r}.")
    return float(value), int(step)


def param_value(key: str, value: Any) -> str:
    """The text MLflow stores for param ``key`` = ``value`` (lists and dicts as JSON, lone surrogates
    escaped), checked."""
    check_key("param", key)
    if isinstance(value, str):
        text = value
    elif isinstance(value, (list, dict)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    text = escaped(text)
    if len(text) > MAX_PARAM_VALUE:
        raise InvalidRecordError(
            f"Param {key!r} is {len(text)} characters; MLflow keeps at most {MAX_PARAM_VALUE}. "
            "Log it as an artifact (mnb.log_text / mnb.log_dict) instead."
        )
    return text


def tag_value(key: str, value: Any) -> str:
    """The text MLflow stores for tag ``key`` = ``value`` (lone surrogates escaped), checked."""
    check_key("tag", key)
    text = escaped(str(value))
    if len(text) > MAX_TAG_VALUE:
        raise InvalidRecordError(f"Tag {key!r} is {len(text)} characters; MLflow keeps at most {MAX_TAG_VALUE}.")
    return text
