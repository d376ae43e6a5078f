"""Values as Python source, and as one line of text: the one escaping path into the generated package.

Model names, URIs, column names and versions come from MLflow, where anyone who can log or register a
model chooses them: a name holding ``\"\"\"`` and a newline must neither end a docstring nor start a line of
a Dockerfile or YAML file. ``render`` lets a value into a Python template only through ``python_literal`` or
``identifier`` (anything else is an error at render time), and into any other file only as one line
(``one_line``). Python literals are written the way ruff formats them, so the package stays format-clean.
"""

from __future__ import annotations

import keyword
from typing import Any

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def python_string(text: str) -> str:
    """A double-quoted Python string literal for ``text``: only printable characters, every other one escaped."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def python_literal(value: Any, indent: int = 0) -> str:
    """Python source for a str, int, float, bool, None, or a list/tuple/dict of them.

    Containers are written one item per line with a trailing comma (ruff keeps that layout), nested at
    ``indent`` spaces.

    Raises:
        TypeError: any other type (no ``repr`` of arbitrary objects reaches generated code).
    """
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, str):
        return python_string(value)
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if text not in ("nan", "inf", "-inf") else f'float("{text}")'
    inner = " " * (indent + 4)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{python_literal(str(k))}: {python_literal(v, indent + 4)}," for k, v in value.items()]
        return "{\n" + "\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, (list, tuple)):
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
        if not value:
            return open_ + close
        items = [f"{inner}{python_literal(v, indent + 4)}," for v in value]
        return open_ + "\n" + "\n".join(items) + "\n" + " " * indent + close
    raise TypeError(f"{type(value).__name__} has no Python literal here: {value!r}")


def identifier(name: str) -> str:
    """``name`` when it is an ASCII Python identifier that is not a keyword; ValueError otherwise."""
    if not (name.isascii() and name.isidentifier()) or keyword.iskeyword(name):
        raise ValueError(f"{name!r} is not a plain Python identifier")
    return name


def one_line(value: Any) -> str:
    """``value`` as text on one line: every line break and control character becomes a space."""
    text = str(value)
    return "".join(ch if ch.isprintable() else " " for ch in text)
