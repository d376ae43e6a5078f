"""``%mlops auto``: every code cell of a notebook a stage, without editing it.

Each cell that does work becomes a stage, named after its first comment, else the markdown heading above it
in the notebook file, else its position (``cell-7``). Cells that only import, define functions or classes,
or assign constants (a parameters cell) run as they are: their definitions reach the next stage through its
inputs, whose fingerprints cover the code of the functions it calls (so they are folded into it). Cells that
are only magics or shell commands, and cells that start with a cell magic (``%%track`` cells keep their own
names), are left alone.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from mlops_nb.stages.analysis import to_python

_MAGIC_CALLS = {"run_line_magic", "run_cell_magic", "system", "getoutput"}
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
MAX_NAME = 48


def slug(text: str) -> str:
    """A stage name from a comment or heading: words joined by '-', lower case, at most MAX_NAME long."""
    words = re.sub(r"[^\w.]+", "-", text.strip().lower()).strip("-._")
    return words[:MAX_NAME].rstrip("-._")


def _is_magic(node: ast.stmt) -> bool:
    call = node.value if isinstance(node, ast.Expr) else getattr(node, "value", None)
    return (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr in _MAGIC_CALLS
        and isinstance(call.func.value, ast.Call)
        and getattr(call.func.value.func, "id", "") == "get_ipython"
    )


def _is_definition(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # a docstring
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        try:
            ast.literal_eval(node.value)  # a constant: a parameter
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False
        return True
    return False


def does_work(cell: str) -> bool:
    """True for a cell that becomes a stage: code beyond imports, definitions, constants and magics."""
    if cell.lstrip().startswith("%%"):
        return False
    try:
        tree = ast.parse(to_python(cell))
    except SyntaxError:
        return False  # IPython reports it as for any cell
    return any(not _is_definition(node) and not _is_magic(node) for node in tree.body)


def first_comment(cell: str) -> str:
    for line in cell.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not stripped.startswith(("#!", "# %%", "#%%")):
            text = stripped.lstrip("#").strip()
            if slug(text):
                return text
        elif stripped:
            return ""  # only comments before the code name the cell
    return ""


@dataclass
class _Notebook:
    """The notebook file's code cells (their source) and the nearest markdown heading above each."""

    sources: list[str] = field(default_factory=list)
    headings: list[str] = field(default_factory=list)


def read_notebook(path: str) -> _Notebook:
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return _Notebook()
    found = _Notebook()
    heading = ""
    for cell in cells if isinstance(cells, list) else []:
        source = cell.get("source", "") if isinstance(cell, dict) else ""
        source = "".join(source) if isinstance(source, list) else str(source)
        if cell.get("cell_type") == "markdown":
            for line in source.splitlines():
                match = _HEADING.match(line)
                if match:
                    heading = match.group(1)
        elif cell.get("cell_type") == "code":
            found.sources.append(source.strip())
            found.headings.append(heading)
    return found


class Namer:
    """Stage names for the cells of one session: each cell keeps its name when it runs again; two cells
    with the same comment or heading get ``-2``, ``-3``."""

    def __init__(self, notebook: str | None) -> None:
        self._path = notebook
        self._mtime = -1.0
        self._notebook = _Notebook()
        self._names: dict[str, str] = {}  # cell identity -> name
        self._taken: set[str] = set()

    def _file(self) -> _Notebook:
        if self._path:
            try:
                mtime = Path(self._path).stat().st_mtime
            except OSError:
                return self._notebook
            if mtime != self._mtime:
                self._mtime, self._notebook = mtime, read_notebook(self._path)
        return self._notebook

    def name(self, cell: str, execution_count: int) -> str:
        notebook = self._file()
        source = cell.strip()
        index = notebook.sources.index(source) if source in notebook.sources else None
        identity = f"cell {index}" if index is not None else hashlib.sha1(source.encode()).hexdigest()
        if identity in self._names:
            return self._names[identity]
        if index is not None:
            # The cells above that do work take their names first, as in a run from the top: a cell keeps its
            # name when cells above it are skipped (mlops-nb run --stage) or run later.
            for earlier in range(index):
                if f"cell {earlier}" not in self._names and does_work(notebook.sources[earlier]):
                    self._name(f"cell {earlier}", notebook.sources[earlier], earlier, execution_count)
        return self._name(identity, cell, index, execution_count)

    def _name(self, identity: str, cell: str, index: int | None, execution_count: int) -> str:
        notebook = self._notebook
        base = slug(first_comment(cell))
        if not base and index is not None:
            base = slug(notebook.headings[index])
        if not base:
            base = f"cell-{index + 1 if index is not None else execution_count}"
        name, n = base, 1
        while name in self._taken:
            n += 1
            name = f"{base}-{n}"
        self._taken.add(name)
        self._names[identity] = name
        return name
