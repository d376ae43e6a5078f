"""The stage graph as people read it: a table (``mlops-nb graph``) or Graphviz DOT (``--dot``)."""

from __future__ import annotations

from mlops_nb.pipelines.graph import CELL, Graph
from mlops_nb.pipelines.model import printable

_MAX_CELL = 60  # characters of a table cell; longer lists end in '...'


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 3] + "..."


def table(graph: Graph) -> str:
    """Each stage with what it reads from which stage, its parameters and files; then the problems."""
    reads: dict[str, list[str]] = {}
    for edge in graph.edges:
        reads.setdefault(edge.target, []).append(f"{edge.source}: {', '.join(edge.names)}")
    rows = [("STAGE", "CELL", "READS FROM", "PARAMS", "FILES")]
    for s in graph.stages:
        files = [*s.files, *(f"-> {p}" for p in s.writes)]
        rows.append(
            (
                printable(s.name) + (" (cell)" if s.kind == CELL else ""),
                str(s.cell_index + 1),
                _clip(printable("; ".join(reads.get(s.name, ())))) or "-",
                _clip(", ".join(s.params)) or "-",
                _clip(printable(", ".join(files))) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        f"{graph.notebook}: {len(graph.names)} stage(s), {len(graph.edges)} edge(s); parameters: "
        + (", ".join(graph.parameters) or "none"),
        "",
        *("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows),
        "",
    ]
    if graph.problems:
        lines.append(f"The pre-flight check found {len(graph.problems)} problem(s) for running stages apart:")
        lines.extend(f"  {printable(p.stage)}: {printable(p.detail)}" for p in graph.problems)
    else:
        lines.append("The pre-flight check found no problem: each stage can run on its own (mlops-nb run --stage).")
    return "\n".join(lines)


def _escape(text: str) -> str:
    """Text inside a DOT quoted string: backslashes, quotes and line breaks escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")


def dot(graph: Graph) -> str:
    """Graphviz DOT of the graph: stages as boxes, cells outside stages as dashed ellipses, edges labelled
    with the names and files they carry, a stage's parameters under its name."""
    lines = [f'digraph "{_escape(graph.notebook)}" {{', "  rankdir=LR;", "  node [shape=box];"]
    for s in graph.stages:
        shape = " shape=ellipse style=dashed" if s.kind == CELL else ""
        params = f"\\n({_escape(', '.join(s.params))})" if s.params else ""
        lines.append(f'  "{_escape(s.name)}" [label="{_escape(s.name)}{params}"{shape}];')
    for e in graph.edges:
        lines.append(f'  "{_escape(e.source)}" -> "{_escape(e.target)}" [label="{_escape(", ".join(e.names))}"];')
    lines.append("}")
    return "\n".join(lines)
