"""What each cell of an executed notebook shows, and how a tracked run differs from a plain one.

A cell shows its text (stdout, stderr, the ``text/plain`` of its ``execute_result``), its figures (outputs
with an ``image/png``) and its error. mlops-nb's own line on a hit (``⟳ s03: restored from the cache``) is
not part of what the notebook shows. Memory addresses and the kernel's cell file names change from run to
run, so they are masked. Cells whose view differs between two plain runs are left out of the comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import nbformat

VERSION = 2  # bump when what a view holds or masks changes: remembered plain views are then made again
CELL_KEY = "mlops_nb_corpus_cell"  # cell metadata: the cell's index in the plain notebook
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
_CELL_FILE = re.compile(r"/tmp/ipykernel_\d+/\d+\.py:\d+|<ipython-input-[^>]*>|Cell In\[\d+\], line \d+")
_OWN_LINE = re.compile(r"^⟳ s\d+: .*\n?", re.MULTILINE)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# When a report was made: statsmodels' summaries print the date and time of the run.
_CLOCK = re.compile(r"\b[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4}\b|\b\d{2}:\d{2}:\d{2}\b")


@dataclass(frozen=True)
class View:
    """What one cell shows."""

    stdout: str = ""
    stderr: str = ""
    result: str = ""
    figures: int = 0
    error: str = ""


@dataclass
class Difference:
    """One cell that a tracked run shows otherwise than the plain run."""

    cell: int
    stage: str
    fields: dict[str, tuple[str | int, str | int]]  # field -> (plain, tracked)
    hit: bool | None  # the stage was served from the cache (None: no stage ran for it)
    cause: str = ""


@dataclass
class Comparison:
    """A tracked run against the plain run of the same notebook."""

    compared: int  # cells compared (the same in both plain runs)
    left_out: list[int] = field(default_factory=list)  # cells that differ between two plain runs
    differences: list[Difference] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences


def _clean(text: str) -> str:
    return _CLOCK.sub("<when>", _CELL_FILE.sub("<cell>", _ADDRESS.sub("0x…", _ANSI.sub("", text))))


def views(nb: nbformat.NotebookNode) -> dict[int, View]:
    """Each code cell's view, by its index in the plain notebook (cells without the index are skipped)."""
    found = {}
    for cell in nb.cells:
        if cell.cell_type != "code" or CELL_KEY not in cell.metadata:
            continue
        stdout, stderr, result, figures, error = [], [], "", 0, ""
        for out in cell.get("outputs", []):
            kind = out["output_type"]
            if kind == "stream":
                (stdout if out["name"] == "stdout" else stderr).append(out["text"])
            elif kind in ("execute_result", "display_data"):
                figures += "image/png" in out.get("data", {})
                if kind == "execute_result":
                    result = out.get("data", {}).get("text/plain", "")
            elif kind == "error":
                error = f"{out['ename']}: {out['evalue']}"
        found[cell.metadata[CELL_KEY]] = View(
            stdout=_clean(_OWN_LINE.sub("", "".join(stdout))),
            stderr=_clean("".join(stderr)),
            result=_clean(result),
            figures=figures,
            error=_clean(error),
        )
    return found


def stable(first: dict[int, View], second: dict[int, View]) -> tuple[list[int], list[int]]:
    """The cells that two plain runs show alike, and those they do not (left out of comparisons)."""
    same = [i for i in first if first[i] == second.get(i)]
    return same, [i for i in first if i not in same]


def compare(
    plain: dict[int, View], tracked: dict[int, View], cells: list[int], hits: dict[int, bool], left_out: list[int]
) -> Comparison:
    """``tracked`` against ``plain`` on ``cells``; ``hits`` says which cells' stages were served."""
    found = Comparison(compared=len(cells), left_out=left_out)
    for index in cells:
        want, got = plain[index], tracked.get(index, View(error="not executed"))
        if want == got:
            continue
        fields = {
            name: (getattr(want, name), getattr(got, name))
            for name in ("stdout", "stderr", "result", "figures", "error")
            if getattr(want, name) != getattr(got, name)
        }
        hit = hits.get(index)
        found.differences.append(Difference(index, f"s{index:02}", fields, hit, cause(want, got, hit)))
    return found


def cause(want: View, got: View, hit: bool | None) -> str:
    """The likely reasons for a difference, in terms of issue 17's items, joined by "; "."""
    if got.error == "not executed":
        return "not executed (an earlier cell failed)"
    if got.error and not want.error:
        return "tracked run raised"
    found = []
    if got.figures > want.figures:
        found.append("extra figure (pyplot state across cells, item 3)")
    if hit:
        shown = (got.stdout, got.result, got.figures)
        if not any(shown) and (want.stdout or want.result or want.figures):
            found.append("hit shows nothing (outputs not replayed, item 1)")
        elif got.figures < want.figures or (want.stdout and not got.stdout) or (want.result and not got.result):
            found.append("hit shows less (outputs not replayed, item 1)")
    elif hit is False and (got.stdout, got.result) != (want.stdout, want.result):
        found.append("ran, other values (mutated input or refit object restored upstream, items 2/9)")
    return "; ".join(found) or "other"
