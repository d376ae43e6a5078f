"""sphinx-gallery scripts (scikit-learn's ``examples/``) as Jupyter notebooks, with nbformat.

A script is a module docstring (the example's title and introduction), then code. A line ``# %%`` (or a line
of 20 or more ``#``) starts a new cell; the comment lines right after it are the text of that cell, written
as markdown; what follows until the next separator is code. This is how sphinx-gallery itself reads them.
"""

from __future__ import annotations

import ast
import re

import nbformat

from tests.notebooks import KERNELSPEC

_SEPARATOR = re.compile(r"^(# ?%%(?P<title>.*)|#{20,})\s*$")
# What a notebook needs the network for: datasets fetched at run time, URLs, downloads.
_ONLINE = re.compile(r"fetch_|urlopen|urllib|requests|pooch|openml|https?://|download|load_sample_image")


def blocks(script: str) -> list[tuple[str, str]]:
    """The script as ``(kind, text)`` blocks in order, kind ``markdown`` or ``code``."""
    tree = ast.parse(script)
    found: list[tuple[str, str]] = []
    lines = script.splitlines()
    start = 0
    docstring = ast.get_docstring(tree, clean=True)
    if docstring and tree.body and isinstance(tree.body[0], ast.Expr):
        found.append(("markdown", docstring))
        start = tree.body[0].end_lineno or 0
    code: list[str] = []
    text: list[str] | None = None  # the comment block right after a separator, while it lasts

    def flush_code() -> None:
        body = "\n".join(code).strip("\n")
        if body.strip():
            found.append(("code", body))
        code.clear()

    for line in lines[start:]:
        match = _SEPARATOR.match(line)
        if match:
            flush_code()
            title = (match.group("title") or "").strip()
            text = [f"## {title}", ""] if title else []
            continue
        if text is not None:
            if line.startswith("#"):
                text.append(line[2:] if line.startswith("# ") else line[1:])
                continue
            if "".join(text).strip():
                found.append(("markdown", "\n".join(text).strip("\n")))
            text = None
        code.append(line)
    if text is not None and "".join(text).strip():
        found.append(("markdown", "\n".join(text).strip("\n")))
    flush_code()
    return found


def to_notebook(script: str) -> nbformat.NotebookNode:
    """A notebook of the script's cells, as Jupyter would write it."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    for kind, text in blocks(script):
        cell = nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text)
        nb.cells.append(cell)
    return nb


def online(nb: nbformat.NotebookNode) -> str | None:
    """What in the notebook's code needs the network (a fetch_* dataset, a URL), or None."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            code = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith("#"))
            match = _ONLINE.search(code)
            if match:
                return match.group(0)
    return None
