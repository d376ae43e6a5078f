"""The stage graph's records: ``Graph`` of ``StageNode``, ``Edge`` and ``Problem`` (built by graph.py)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from mlops_nb.exceptions import UsageError
from mlops_nb.tracking.records import StageGraph

STAGE = "stage"
CELL = "cell"


def printable(text: str) -> str:
    """A name from a notebook as one line of plain text for a terminal: control characters (a newline, an
    escape sequence in a stage name) shown escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


@dataclass(frozen=True)
class StageNode:
    """A stage (or, of kind ``cell``, a cell outside any stage that does work).

    ``inputs``: the names it reads from the stages and cells before it (parameters are in ``params``);
    ``outputs``: the names it assigns or changes in place; ``files``: the files it reads; ``writes``: the
    files it writes; ``cell_index``: its position among the notebook's cells, from 0.
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: tuple[str, ...]
    files: tuple[str, ...]
    cell_index: int
    writes: tuple[str, ...] = ()
    kind: str = STAGE
    cache: bool = True  # False: %%track --no-cache (a cell node is never cached)


@dataclass(frozen=True)
class Edge:
    """``target`` reads ``names`` (Python names and file paths) that ``source`` assigns or writes."""

    source: str
    target: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class Problem:
    """What would break when ``stage`` runs apart from the others, and how to fix it."""

    stage: str
    detail: str


@dataclass(frozen=True)
class Graph:
    """The stages of ``notebook`` in notebook order, their edges, the pre-flight problems, the parameters
    (name -> default; None when the default is not a literal) and the setup cells (indices) every run runs."""

    notebook: str
    stages: tuple[StageNode, ...]
    edges: tuple[Edge, ...]
    problems: tuple[Problem, ...]
    parameters: dict[str, Any] = field(default_factory=dict)
    setup: tuple[int, ...] = ()

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages if s.kind == STAGE]

    def node(self, name: str) -> StageNode:
        """The stage ``name``; UsageError naming the close names (or the stages) when there is none."""
        for node in self.stages:
            if node.name == name and node.kind == STAGE:
                return node
        names = self.names
        if not names:
            raise UsageError(
                f"{self.notebook} has no stages: mark a cell as one with %%track NAME on its first line, or run "
                "%mlops auto in a cell before them."
            )
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"Did you mean {' or '.join(close)}? " if close else ""
        raise UsageError(printable(f"{self.notebook} has no stage {name!r}. {hint}Its stages: {', '.join(names)}."))

    def upstream(self, name: str) -> list[str]:
        """Every node ``name`` depends on, directly or not, in notebook order (cells included)."""
        sources: dict[str, list[str]] = {}
        for edge in self.edges:
            sources.setdefault(edge.target, []).append(edge.source)
        seen: set[str] = set()
        todo = list(sources.get(name, ()))
        while todo:
            current = todo.pop()
            if current not in seen and current != name:
                seen.add(current)
                todo.extend(sources.get(current, ()))
        return [s.name for s in self.stages if s.name in seen]

    def dependencies(self, name: str) -> list[str]:
        """The stages ``name`` reads from, directly or through cells outside any stage (an exporter's task
        edges: a cell runs inside every task that needs it)."""
        sources: dict[str, list[str]] = {}
        for edge in self.edges:
            sources.setdefault(edge.target, []).append(edge.source)
        kinds = {s.name: s.kind for s in self.stages}
        found: set[str] = set()
        seen: set[str] = set()
        todo = list(sources.get(name, ()))
        while todo:
            current = todo.pop()
            if current in seen or current == name:
                continue
            seen.add(current)
            if kinds.get(current) == STAGE:
                found.add(current)
            else:
                todo.extend(sources.get(current, ()))
        return [s.name for s in self.stages if s.name in found]

    def to_json(self) -> StageGraph:
        return {
            "notebook": self.notebook,
            "stages": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "cell": s.cell_index + 1,
                    "inputs": list(s.inputs),
                    "outputs": list(s.outputs),
                    "params": list(s.params),
                    "files": list(s.files),
                    "writes": list(s.writes),
                }
                for s in self.stages
            ],
            "edges": [{"from": e.source, "to": e.target, "names": list(e.names)} for e in self.edges],
            "problems": [{"stage": p.stage, "detail": p.detail} for p in self.problems],
            "parameters": self.parameters,
        }
