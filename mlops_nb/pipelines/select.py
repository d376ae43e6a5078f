"""Which cells a run of one stage (``--stage NAME``) or of the stages up to one (``--until NAME``) runs.

``--stage NAME`` runs the stage, every stage and cell it depends on (directly or not), and the setup cells;
``--until NAME`` runs every cell up to NAME's, and the setup cells after it. A stage it depends on is
served from the cache when the cache has its key, and runs otherwise; with ``no_upstream`` it must be
served from the cache (the kernel refuses a miss, see stages/stage.py). Refused (UsageError, nothing runs):
a notebook without stages, an unknown stage (close names suggested), a pre-flight problem of a stage that
would run.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops_nb.exceptions import UsageError
from mlops_nb.pipelines.graph import STAGE, Graph
from mlops_nb.pipelines.model import printable


@dataclass(frozen=True)
class Selection:
    """``run``: the indices (among the notebook's cells) of the code cells to run; ``skip``: those to skip;
    ``upstream``: the stages before ``target`` that run or are restored, in notebook order; ``cache_only``:
    those that must be served from the cache (``no_upstream``)."""

    target: str
    until: bool
    run: tuple[int, ...]
    skip: tuple[int, ...]
    upstream: tuple[str, ...]
    cache_only: tuple[str, ...]

    def describe(self) -> str:
        what = f"the stages up to {self.target}" if self.until else f"stage {self.target}"
        if not self.upstream:
            return f"mlops-nb: running {what} ({len(self.skip)} cell(s) skipped)"
        how = "from the cache (required)" if self.cache_only else "restored from the cache, or run first"
        return (
            f"mlops-nb: running {what}; upstream {', '.join(self.upstream)}: {how} ({len(self.skip)} cell(s) skipped)"
        )


def select(
    graph: Graph, code_cells: list[int], *, stage: str, until: bool = False, no_upstream: bool = False
) -> Selection:
    """The cells to run for ``stage`` (or up to it, ``until``). ``code_cells``: the indices of the notebook's
    code cells."""
    target = graph.node(stage)  # UsageError: no stages, an unknown name
    if until:
        needed = [s for s in graph.stages if s.cell_index < target.cell_index]
    else:
        wanted = set(graph.upstream(stage))
        needed = [s for s in graph.stages if s.name in wanted]
    names = {s.name for s in needed} | {stage}
    run = {*graph.setup, target.cell_index, *(s.cell_index for s in needed)}
    if until:
        run |= {i for i in code_cells if i <= target.cell_index}
    problems = [
        p
        for p in graph.problems
        if p.stage in names or (p.stage.startswith("cell ") and p.stage[5:].isdigit() and int(p.stage[5:]) - 1 in run)
    ]
    if problems:
        listed = "\n".join(f"  {printable(p.stage)}: {printable(p.detail)}" for p in problems)
        raise UsageError(
            f"{graph.notebook}: {printable(stage)} cannot run apart from the other stages; the pre-flight check "
            f"(mlops-nb graph {graph.notebook}) found:\n{listed}\n"
            "Fix these, or run the whole notebook (without --stage)."
        )
    upstream = tuple(s.name for s in needed if s.kind == STAGE)
    cache_only: tuple[str, ...] = ()
    if no_upstream:
        never = [s.name for s in needed if s.kind == STAGE and not s.cache]
        if never:
            raise UsageError(
                f"--no-upstream: upstream stage(s) {', '.join(never)} are %%track --no-cache and always run. Drop "
                "--no-upstream, or --no-cache from their %%track line."
            )
        cache_only = upstream
    return Selection(
        target=stage,
        until=until,
        run=tuple(sorted(i for i in run if i in code_cells)),
        skip=tuple(i for i in code_cells if i not in run),
        upstream=upstream,
        cache_only=cache_only,
    )
