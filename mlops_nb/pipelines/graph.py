"""The stage graph of a notebook file, read without running it: its stages, which stage's outputs (names and
files) each one reads, the notebook parameters each reads, and what would break when they run apart.

Cells are read in notebook order, as ``mlops-nb run`` executes them:

- a ``%%track NAME`` cell is the stage NAME (its ``--in``/``--out``/``--params`` win over the inference);
  after ``%mlops auto``, each cell that does work is a stage named as the kernel names it (stages/auto.py);
- the ``parameters`` cell gives the notebook's parameters;
- setup cells (only imports, definitions, constants, magics) run before any stage, wherever it runs;
- any other cell is a node of kind ``cell``, named with what it defines (it is never cached: it runs
  whenever a stage after it needs what it defines).

A name a stage reads comes from the last cell before it that assigns it (or changes it in place). The
pre-flight check (``Graph.problems``) names what would break when stages run apart: an unstageable value
(a lock, an open connection or file, a generator) that crosses from a stage to another, a name that no
earlier stage, parameter or setup cell provides, a cycle (through a name read before the cell that defines
or changes it), and two stages of one name.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_nb.exceptions import MlopsNbError, UsageError
from mlops_nb.pipelines import preflight
from mlops_nb.pipelines.model import CELL, STAGE, Edge, Graph, Problem, StageNode
from mlops_nb.stages import auto, track
from mlops_nb.stages.analysis import CellAnalysis, analyse
from mlops_nb.stages.params import declared, defaults
from mlops_nb.stages.plan import IPYTHON_NAMES

__all__ = ["CELL", "STAGE", "Edge", "Graph", "Problem", "StageNode", "build_graph", "read"]

_AUTO = re.compile(r"^\s*%mlops\s+auto\b(?P<rest>.*)$", re.MULTILINE)
_BUILTINS = frozenset(dir(builtins)) | {"display", "get_ipython", "__file__"}


def read(notebook: Path) -> dict[str, Any]:
    """A notebook file's JSON; UsageError when it cannot be read as one."""
    try:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"Cannot read {notebook} as a notebook: {e}. Check the path, or open it in Jupyter.") from e
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise UsageError(f"{notebook} is not a Jupyter notebook (no 'cells' list).")
    return nb


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


@dataclass
class _Cell:
    """A code cell being read: its node (None for a setup cell) and what the analysis found."""

    index: int
    node: StageNode | None
    analysis: CellAnalysis | None
    reads: tuple[str, ...] = ()  # names it reads, before they are resolved
    provides: tuple[str, ...] = ()  # names it assigns (a setup cell's too)
    declared_params: tuple[str, ...] = ()


class _Builder:
    def __init__(self, notebook: Path, nb: dict[str, Any]) -> None:
        self.notebook = notebook
        self.nb = nb
        self.problems: list[Problem] = []
        self.parameters = declared(nb, injected=True) or set()
        self.functions: dict[str, tuple[str, ...]] = {}  # a function defined in a setup cell -> globals it reads
        self.generators: set[str] = set()  # functions (of any cell) that yield
        self.blind = False  # a star import, %run, exec: names may come from where the analysis cannot see
        self.namer = auto.Namer(str(notebook))
        self.taken: set[str] = set()

    def cells(self) -> list[_Cell]:
        found: list[_Cell] = []
        auto_on = False
        for index, cell in enumerate(self.nb["cells"]):
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            source = _source(cell)
            if not source.strip():
                continue
            tags = cell.get("metadata", {}).get("tags", []) or []
            read = self._cell(index, source, tags, auto_on)
            if read is not None:
                found.append(read)
            for match in _AUTO.finditer(source):
                auto_on = "--off" not in match.group("rest")
        return found

    def _analyse(self, where: str, code: str) -> CellAnalysis | None:
        try:
            analysis = analyse(code)
        except SyntaxError as e:
            self.problems.append(Problem(where, f"has a syntax error (line {e.lineno}): {e.msg}"))
            return None
        if any(o.startswith(("runs the magic %", "runs code from a string", "reaches names")) for o in analysis.opaque):
            self.blind = True
        if "import *" in analysis.python:
            self.blind = True
        self._note_definitions(analysis)
        return analysis

    def _note_definitions(self, analysis: CellAnalysis) -> None:
        tree = ast.parse(analysis.python)
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(stmt)):
                    self.generators.add(stmt.name)
            elif isinstance(stmt, ast.ImportFrom) and any(a.name == "*" for a in stmt.names):
                self.blind = True

    def _cell(self, index: int, source: str, tags: list[str], auto_on: bool) -> _Cell | None:
        where = f"cell {index + 1}"
        if {"parameters", "injected-parameters"} & set(tags):
            analysis = self._analyse(where, source)
            return _Cell(index, None, analysis, provides=analysis.outputs if analysis else ())
        tracked = track.cell_line(source)
        if tracked is not None:
            return self._stage(index, source, tracked)
        if auto_on and auto.does_work(source):
            return self._node(
                index, self.namer.name(source, 0), source, STAGE, track.TrackLine("", None, None, [], True, [])
            )
        if not auto.does_work(source):  # imports, definitions, constants, magics: setup
            analysis = self._analyse(where, source) if not source.lstrip().startswith("%%") else None
            if analysis is not None:
                self._functions(analysis)
                provides = (*analysis.outputs, *analysis.imports, *analysis.definitions)
                return _Cell(index, None, analysis, provides=provides)
            return _Cell(index, None, None)
        analysis = self._analyse(where, source)
        if analysis is None:
            return _Cell(index, None, None)
        return self._node(index, self._cell_name(index, analysis), source, CELL, None, analysis)

    def _cell_name(self, index: int, analysis: CellAnalysis) -> str:
        defined = [n for n in analysis.outputs if not IPYTHON_NAMES.match(n)]
        name = ", ".join(defined[:3]) + (", ..." if len(defined) > 3 else "") if defined else f"cell {index + 1}"
        if name in self.taken:
            name = f"{name} (cell {index + 1})"
        return name

    def _functions(self, analysis: CellAnalysis) -> None:
        """The globals each function a setup cell defines reads when it is called (a stage calling it reads them)."""
        for stmt in ast.parse(analysis.python).body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.functions[stmt.name] = analyse(ast.unparse(stmt)).inputs

    def _stage(self, index: int, source: str, tracked: tuple[str, str]) -> _Cell | None:
        line, body = tracked
        try:
            declared_line = track.parse(line)
        except MlopsNbError as e:
            self.problems.append(Problem(f"cell {index + 1}", f"its %%track line is refused: {e}"))
            return _Cell(index, None, None)
        return self._node(index, declared_line.stage, body, STAGE, declared_line)

    def _node(
        self,
        index: int,
        name: str,
        code: str,
        kind: str,
        line: track.TrackLine | None,
        analysis: CellAnalysis | None = None,
    ) -> _Cell:
        analysis = analysis or self._analyse(name, code)
        if analysis is None:
            node = StageNode(name, (), (), (), (), index, kind=kind)
            return _Cell(index, node, None)
        declared_in = [n for n in line.inputs if n.isidentifier()] if line and line.inputs is not None else None
        declared_out = [n for n in line.outputs if n.isidentifier()] if line and line.outputs is not None else None
        reads = list(declared_in if declared_in is not None else analysis.inputs)
        for function in list(reads):  # what the functions it calls read
            reads.extend(self.functions.get(function, ()))
        outputs = tuple(declared_out if declared_out is not None else analysis.outputs)
        files_in = [p for p in analysis.call_paths if p not in analysis.write_only]
        files_out = list(analysis.write_only)
        if line is not None:
            files_in += [p for p in line.inputs or () if not p.isidentifier()]
            files_out += [p for p in line.outputs or () if not p.isidentifier()]
        self.taken.add(name)
        node = StageNode(
            name=name,
            inputs=(),
            outputs=outputs,
            params=(),
            files=tuple(dict.fromkeys(files_in)),
            cell_index=index,
            writes=tuple(dict.fromkeys(files_out)),
            kind=kind,
            cache=line.cache if line is not None else False,
        )
        reads = [n for n in dict.fromkeys(reads) if n not in _BUILTINS and not IPYTHON_NAMES.match(n)]
        return _Cell(index, node, analysis, tuple(reads), outputs, tuple(line.params) if line else ())


def build_graph(notebook_path: str | Path, nb: dict[str, Any] | None = None) -> Graph:
    """The stage graph of the notebook file ``notebook_path`` (``nb``: its JSON, when already read).
    UsageError when the file cannot be read as a notebook."""
    notebook = Path(notebook_path)
    nb = read(notebook) if nb is None else nb
    builder = _Builder(notebook, nb)
    cells = builder.cells()
    nodes = {c.node.name: c.node for c in cells if c.node is not None}
    edges: dict[tuple[str, str], list[str]] = {}
    resolved: dict[str, tuple[list[str], list[str], tuple[str, ...]]] = {}  # node -> (inputs, params, outputs)
    modules: set[str] = set()  # names a setup cell imports: a method call on one does not change a value
    late: list[tuple[_Cell, str]] = []
    latest: dict[str, str | None] = {}  # name -> the node that last provided it (None: setup or parameters)
    params = set(builder.parameters)
    param_of: dict[str, bool] = {}  # a name's latest provider is the parameters cell
    file_writer: dict[str, str] = {}
    setup: list[int] = []
    for cell in cells:
        node = cell.node
        if node is None:
            setup.append(cell.index)
            modules.update(cell.analysis.imports if cell.analysis is not None else ())
            for name in cell.provides:
                latest[name] = None
                param_of[name] = name in params
            continue
        inputs: list[str] = []
        node_params: list[str] = list(cell.declared_params)
        for name in cell.reads:
            if name in latest:
                source = latest[name]
                if source is None:
                    if param_of.get(name):
                        node_params.append(name)
                elif source != node.name:
                    edges.setdefault((source, node.name), []).append(name)
                    inputs.append(name)
                else:
                    inputs.append(name)
            else:
                late.append((cell, name))
                inputs.append(name)
        for path in node.files:
            writer = file_writer.get(path)
            if writer is not None and writer != node.name:
                edges.setdefault((writer, node.name), []).append(path)
        provides = tuple(n for n in cell.provides if not (n in modules and latest.get(n, "") is None))
        resolved[node.name] = (inputs, list(dict.fromkeys(node_params)), provides)
        for name in provides:
            latest[name] = node.name
            param_of[name] = False
        for path in node.writes:
            file_writer[path] = node.name
    problems = list(builder.problems)
    for cell, name in late:
        node = cell.node
        assert node is not None
        later = [c for c in cells if c.index > cell.index and name in c.provides]
        if later:
            provider = later[0].node.name if later[0].node is not None else "a setup cell"
            if later[0].node is not None:
                edges.setdefault((provider, node.name), []).append(name)
            problems.append(
                Problem(
                    node.name,
                    f"reads {name} before the cell that provides it ({provider}, cell {later[0].index + 1}) has run: "
                    "move that cell above it",
                )
            )
        elif not builder.blind:
            problems.append(
                Problem(
                    node.name,
                    f"reads {name}, which no stage, parameter or setup cell provides: define it in a cell above, "
                    f"add it to the parameters cell, or declare the stage's inputs (%%track {node.name} --in ...)",
                )
            )
    final_nodes = tuple(
        StageNode(
            n.name,
            tuple(resolved[n.name][0]),
            resolved[n.name][2],
            tuple(resolved[n.name][1]),
            n.files,
            n.cell_index,
            n.writes,
            n.kind,
            n.cache,
        )
        for n in (c.node for c in cells if c.node is not None)
    )
    edge_list = tuple(Edge(s, t, tuple(dict.fromkeys(names))) for (s, t), names in edges.items())
    analyses = {c.node.name: c.analysis for c in cells if c.node is not None and c.analysis is not None}
    problems += preflight.unstageable(edge_list, nodes, analyses, builder.generators)
    problems += preflight.cycles(final_nodes, edge_list)
    problems += preflight.duplicates(final_nodes)
    values = defaults(nb)
    return Graph(
        notebook=str(notebook),
        stages=final_nodes,
        edges=tuple(sorted(edge_list, key=lambda e: (nodes[e.target].cell_index, nodes[e.source].cell_index))),
        problems=tuple(problems),
        parameters={n: values.get(n) for n in sorted(builder.parameters)},
        setup=tuple(setup),
    )
