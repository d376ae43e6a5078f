"""The pre-flight checks of a stage graph that need more than reading names: values no cache can keep that
cross a stage boundary, cycles, stages of one name (graph.py finds names nobody provides)."""

from __future__ import annotations

import ast
from collections.abc import Iterable

from mlops_nb.pipelines.model import STAGE, Edge, Problem, StageNode
from mlops_nb.stages.analysis import CellAnalysis

# Values no cache can keep, by the name of the call that makes them: they cannot cross a stage boundary.
_UNSTAGEABLE = {
    **dict.fromkeys(("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier"), "a lock"),
    **dict.fromkeys(
        ("connect", "create_engine", "Session", "MongoClient", "Redis", "StrictRedis", "socket", "create_connection"),
        "an open connection",
    ),
    **dict.fromkeys(("urlopen", "getOrCreate"), "an open connection"),
    **dict.fromkeys(("open", "NamedTemporaryFile", "TemporaryFile", "ZipFile", "File"), "an open file"),
    **dict.fromkeys(
        ("Thread", "Process", "Pool", "ThreadPool", "ThreadPoolExecutor", "ProcessPoolExecutor"),
        "a thread or process pool",
    ),
}


def _unstageable_values(analysis: CellAnalysis, generators: set[str]) -> dict[str, str]:
    """Names a cell binds to values no cache can keep, seen in its code: name -> what the value is."""
    found: dict[str, str] = {}
    for stmt in ast.walk(ast.parse(analysis.python)):
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            continue
        value, name = stmt.value, stmt.targets[0].id
        if isinstance(value, ast.GeneratorExp):
            found[name] = "a generator"
        elif isinstance(value, ast.Call):
            func = value.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in generators:
                found[name] = f"a generator (what {called}() returns)"
            elif called in _UNSTAGEABLE:
                found[name] = f"{_UNSTAGEABLE[called]} ({ast.unparse(func)}())"
    return found


def unstageable(
    edges: Iterable[Edge], nodes: dict[str, StageNode], analyses: dict[str, CellAnalysis], generators: set[str]
) -> list[Problem]:
    """A problem for each value no cache can keep that an edge from a stage carries. ``analyses``: each
    node's code analysis; ``generators``: the notebook's functions that yield."""
    problems: list[Problem] = []
    for edge in edges:
        analysis = analyses.get(edge.source)
        if nodes[edge.source].kind != STAGE or analysis is None:
            continue  # a cell outside any stage runs in every run that needs it: its values need no cache
        values = _unstageable_values(analysis, generators)
        for name in edge.names:
            if name in values:
                problems.append(
                    Problem(
                        edge.source,
                        f"{name} is {values[name]}, read by {edge.target}: no cache can keep it, so {edge.target} "
                        f"cannot run apart from {edge.source}. Create it in {edge.target}, in a setup cell, or "
                        "merge the two stages",
                    )
                )
    return problems


def cycles(nodes: tuple[StageNode, ...], edges: tuple[Edge, ...]) -> list[Problem]:
    """A problem for each cycle of the edges (strongly connected nodes; only a name read before the cell that
    provides it makes one), naming the names changed in place on it."""
    targets: dict[str, list[str]] = {}
    for edge in edges:
        targets.setdefault(edge.source, []).append(edge.target)
    order = {n.name: n.cell_index for n in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def connect(name: str) -> None:  # Tarjan's algorithm
        index[name] = low[name] = len(index)
        stack.append(name)
        for target in targets.get(name, ()):
            if target not in index:
                connect(target)
                low[name] = min(low[name], low[target])
            elif target in stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == name:
                    break
            if len(component) > 1:
                components.append(sorted(component, key=order.__getitem__))

    for node in nodes:
        if node.name not in index:
            connect(node.name)
    changed = {n.name: set(n.outputs) & set(n.inputs) for n in nodes}  # read and assigned: changed in place
    problems = []
    for component in components:
        members = set(component)
        inside = [e for e in edges if e.source in members and e.target in members]
        names = sorted({n for e in inside for n in e.names})
        mutated = sorted({n for e in inside for n in e.names if n in changed[e.source] | changed[e.target]})
        through = f" through {', '.join(mutated)}, changed in place" if mutated else f" through {', '.join(names)}"
        problems.append(
            Problem(
                component[0],
                f"is on a cycle with {', '.join(component[1:])}{through}: each reads what the other makes. Give "
                "each name one stage that makes it, above the stages that read it",
            )
        )
    return problems


def duplicates(nodes: tuple[StageNode, ...]) -> list[Problem]:
    """A problem for each name two stages have."""
    cells: dict[str, list[int]] = {}
    for node in nodes:
        if node.kind == STAGE:
            cells.setdefault(node.name, []).append(node.cell_index + 1)
    return [
        Problem(
            name,
            f"{len(where)} stages have this name (cells {', '.join(map(str, where))}): rename all but one, so that "
            "--stage and the cache tell them apart",
        )
        for name, where in cells.items()
        if len(where) > 1
    ]
