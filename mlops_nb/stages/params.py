"""The notebook's parameters: the names its papermill ``parameters`` cell assigns.

Found in the notebook file (the cell tagged ``parameters``) when the kernel knows its notebook, and in this
session's history (papermill's injected cell starts with ``# Parameters``). A stage's params are the
parameters it reads; a stage that reads none is not invalidated when a parameter changes.
"""

from __future__ import annotations

import ast
import functools
import json
from pathlib import Path
from typing import Any

from mlops_nb.stages.analysis import analyse

INJECTED_MARK = "# Parameters"  # the first line of the cell papermill injects


@functools.lru_cache(maxsize=16)
def _from_file(path: str, mtime: float) -> frozenset[str]:
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return frozenset()
    return frozenset(declared(nb, injected=True) or ())


def declared(nb: dict[str, Any], *, injected: bool = False) -> set[str] | None:
    """The names a notebook's ``parameters`` cell assigns (and papermill's injected cell's, with
    ``injected``); None when no cell is tagged ``parameters``. ``nb`` is the notebook's JSON."""
    wanted = {"parameters", "injected-parameters"} if injected else {"parameters"}
    names: set[str] | None = None
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") == "code" and wanted.intersection(tags):
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            names = (names or set()) | set(_assigned(source))
    return names


def defaults(nb: dict[str, Any]) -> dict[str, Any]:
    """The values the ``parameters`` cell gives its names, where they are literals (``C = 1.0``,
    ``layers = [2, 3]``); a name set by anything else (a call, an expression of other names) is left out."""
    values: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") != "code" or "parameters" not in tags:
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            if len(targets) != 1 or not isinstance(targets[0], ast.Name) or getattr(node, "value", None) is None:
                continue
            try:
                values[targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                values.pop(targets[0].id, None)  # set by something else: its value is not known here
    return values


def _assigned(source: str) -> tuple[str, ...]:
    try:
        return analyse(source).outputs
    except SyntaxError:
        return ()


def parameter_names(namespace: dict[str, Any], notebook: str | None) -> set[str]:
    """Names of the notebook's parameters in this session."""
    names: set[str] = set()
    if notebook:
        try:
            names.update(_from_file(notebook, Path(notebook).stat().st_mtime))
        except OSError:
            pass
    for source in namespace.get("In", ()):
        if isinstance(source, str) and source.lstrip().startswith(INJECTED_MARK):
            names.update(_assigned(source))
    return names
