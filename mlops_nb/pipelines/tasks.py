"""The task layout an exporter writes: one task per stage, or per ``--group`` of stages, and their edges.

``plan(graph, groups)`` refuses (UsageError naming the fix) a notebook without stages, a graph the
pre-flight check refuses, an unknown or twice-grouped stage, and groups whose edges would form a cycle. A
task's ``task_id`` is its stage's name (or its group's names, in notebook order, joined by ``__``) reduced
to the characters Airflow and KFP allow (letters, digits, ``_``, ``-``, ``.``), made unique; its
``stages`` run in notebook order, each as ``mlops-nb run NOTEBOOK --stage NAME``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mlops_nb.exceptions import UsageError
from mlops_nb.pipelines.model import Graph, printable

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_ID = 200  # Airflow's task_id limit is 250 characters, with room for a suffix


@dataclass(frozen=True)
class Task:
    """``task_id`` runs ``stages`` (in notebook order) after the tasks ``upstream`` (by task_id)."""

    task_id: str
    stages: tuple[str, ...]
    upstream: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """The tasks of ``graph`` in notebook order, and the parameters a run may set (name -> literal default)."""

    graph: Graph
    tasks: tuple[Task, ...]
    parameters: dict[str, Any]


def safe_id(name: str, taken: set[str]) -> str:
    """``name`` in the characters ids allow (letters, digits, ``_ - .``), not starting with one of ``_ - .``,
    nor ending with one, at most MAX_ID long, and not in ``taken`` (a ``_2``, ``_3``... suffix then)."""
    base = _NOT_ALLOWED.sub("_", name).strip("_.-")[:MAX_ID] or "stage"
    found, n = base, 1
    while found.lower() in taken:
        n += 1
        found = f"{base}_{n}"
    taken.add(found.lower())
    return found


def _refuse_problems(graph: Graph) -> None:
    if graph.problems:
        listed = "\n".join(f"  {printable(p.stage)}: {printable(p.detail)}" for p in graph.problems)
        raise UsageError(
            f"{graph.notebook}: its stages cannot run apart as tasks; the pre-flight check (mlops-nb graph "
            f"{graph.notebook}) found:\n{listed}\nFix these in the notebook, then export again."
        )


def _groups(graph: Graph, groups: list[list[str]]) -> list[list[str]]:
    """Every stage in exactly one group, groups in notebook order of their first stage."""
    owner: dict[str, int] = {}
    for number, group in enumerate(groups):
        for name in group:
            graph.node(name)  # UsageError: unknown stage, close names suggested
            if name in owner:
                raise UsageError(printable(f"--group: stage {name!r} is in two groups; put it in one."))
            owner[name] = number
    order = graph.names
    found: dict[int | str, list[str]] = {}
    for name in order:
        found.setdefault(owner.get(name, name), []).append(name)
    return list(found.values())


def _check_acyclic(tasks: dict[str, list[str]], upstream: dict[str, set[str]]) -> None:
    state: dict[str, int] = {}

    def visit(task: str, path: list[str]) -> None:
        state[task] = 1
        for before in sorted(upstream[task]):
            if state.get(before) == 1:
                cycle = [*path[path.index(before) :], before] if before in path else [before, task]
                raise UsageError(
                    printable(
                        "--group: the groups depend on each other in a cycle ("
                        + " -> ".join(cycle)
                        + "): a stage between two stages of one group belongs to another. Add it to that group, "
                        "or split the group."
                    )
                )
            if not state.get(before):
                visit(before, [*path, before])
        state[task] = 2

    for task in tasks:
        if not state.get(task):
            visit(task, [task])


def plan(graph: Graph, groups: list[list[str]] | None = None) -> Plan:
    """The tasks of ``graph``, one per stage or per group of ``groups``; UsageError when it cannot be exported."""
    if not graph.names:
        graph.node("")  # UsageError: how to mark stages
    _refuse_problems(graph)
    layout = _groups(graph, groups or [])
    taken: set[str] = set()
    ids = [safe_id("__".join(group), taken) for group in layout]
    task_of = {name: task_id for task_id, group in zip(ids, layout, strict=True) for name in group}
    stages = dict(zip(ids, layout, strict=True))
    upstream = {
        task_id: {task_of[d] for name in group for d in graph.dependencies(name)} - {task_id}
        for task_id, group in stages.items()
    }
    _check_acyclic(stages, upstream)
    tasks = tuple(
        Task(task_id, tuple(group), tuple(t for t in ids if t in upstream[task_id]))
        for task_id, group in stages.items()
    )
    parameters = {name: value for name, value in graph.parameters.items() if value is not None}
    return Plan(graph=graph, tasks=tasks, parameters=parameters)


def parse_groups(values: tuple[str, ...]) -> list[list[str]]:
    """``--group a,b`` (repeatable) as lists of stage names; empty names are refused."""
    groups = []
    for value in values:
        names = [n.strip() for n in value.split(",")]
        if not all(names):
            raise UsageError(f"--group {printable(value)!r}: give stage names separated by commas, e.g. --group a,b.")
        groups.append(names)
    return groups
