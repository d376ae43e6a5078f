"""Running a corpus notebook: plainly in a fresh kernel (nbclient), and tracked through ``mlops-nb run``.

The tracked notebook is the plain one with a first cell ``%load_ext mlops_nb`` and every code cell wrapped in
``%%track sNN`` (NN: the cell's index in the plain notebook); a cell that starts with a cell magic of its own,
and an empty cell (IPython refuses a cell magic without a body), stay as they are. Every code cell carries its
plain index in its metadata, so the views of both runs line up.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from tests.corpus.compare import CELL_KEY

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
CELL_TIMEOUT = 120  # seconds a cell may run (the corpus keeps notebooks that run in ~20 s)
_INPUT = "mlops_nb.input."
_RUN_OPTIONS = ("--timeout", str(CELL_TIMEOUT), "--no-progress-bar")


@dataclass
class Execution:
    """An executed notebook: its cells with outputs, how long it took, and why it failed ('' when it did not)."""

    nb: nbformat.NotebookNode
    seconds: float
    error: str = ""
    run_id: str = ""  # the job run of a tracked execution
    cpu_seconds: float = 0.0  # the kernel's own CPU time (a plain execution): what a busy machine does not change


def numbered(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy whose code cells carry their index (the plain notebook's numbering)."""
    nb = nbformat.from_dict(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.metadata[CELL_KEY] = index
    return nb


def tracked_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with ``%load_ext mlops_nb`` first and each code cell a ``%%track`` stage."""
    nb = numbered(nb)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.strip() and not cell.source.lstrip().startswith("%%"):
            cell.source = f"%%track s{cell.metadata[CELL_KEY]:02}\n{cell.source}"
    nb.cells.insert(0, nbformat.v4.new_code_cell("%load_ext mlops_nb"))
    return nb


def _environment() -> dict[str, str]:
    from tests.conftest import SETTING_VARS

    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def plain(nb: nbformat.NotebookNode, workdir: Path, cell_timeout: float = CELL_TIMEOUT) -> Execution:
    """Run the notebook in a fresh kernel in ``workdir``, without mlops-nb."""
    import psutil
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = numbered(nb)
    workdir.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(
        nb, kernel_name="python3", timeout=cell_timeout, resources={"metadata": {"path": str(workdir)}}
    )
    started = time.perf_counter()
    error, cpu = "", 0.0
    with client.setup_kernel(env=_environment()):
        try:
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
        except CellTimeoutError:
            error = f"a cell ran for more than {cell_timeout:.0f} s"
        except CellExecutionError as e:
            error = _ANSI.sub("", f"{e.ename}: {e.evalue}")[:300]
        try:
            times = psutil.Process(client.km.provisioner.pid).cpu_times()
            cpu = times.user + times.system + times.children_user + times.children_system
        except (psutil.Error, AttributeError):
            cpu = 0.0
    return Execution(nb, time.perf_counter() - started, error, cpu_seconds=cpu)


def tracked(nb: nbformat.NotebookNode, project: Path, stem: str) -> Execution:
    """Run the tracked notebook with ``mlops-nb run`` in ``project`` (its cache under ``.mlops_nb/``)."""
    project.mkdir(parents=True, exist_ok=True)
    if not (project / "pyproject.toml").is_file():
        (project / "pyproject.toml").write_text("[project]\nname = 'corpus'\n")
    source = project / f"{stem}.ipynb"
    nbformat.write(tracked_notebook(nb), source)
    output = project / f"{stem}.out.ipynb"
    output.unlink(missing_ok=True)
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mlops-nb"), "run", source.name, "-o", output.name, *_RUN_OPTIONS],
        cwd=project,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=CELL_TIMEOUT * 20,
    )
    seconds = time.perf_counter() - started
    result = nbformat.read(output, as_version=4) if output.is_file() else tracked_notebook(nb)
    error = "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["?"])[-1][:300]
    run_id = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return Execution(result, seconds, error, run_id)


@dataclass
class StageOutcome:
    cell: int
    hit: bool
    miss_reason: str
    inputs: dict[str, str]  # input name -> fingerprint (tags mlops_nb.input.NAME)
    skipped: str = ""  # why the run stored no cache entry (mlops_nb.cache_skipped)


def stages(project: Path, run_id: str) -> dict[int, StageOutcome]:
    """The stages of a tracked job run, by cell index: served or not, and why not."""
    from tests.conftest import embedded_client

    if not run_id:
        return {}
    client = embedded_client(project)
    run = client.get_run(run_id)
    children = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'", max_results=1000)
    found = {}
    for child in children:
        name = child.data.tags.get("mlops_nb.stage", "")
        if name.startswith("s") and name[1:].isdigit():
            tags = child.data.tags
            inputs = {k.removeprefix(_INPUT): v for k, v in tags.items() if k.startswith(_INPUT)}
            hit, reason = tags.get("mlops_nb.cache_hit") == "true", tags.get("mlops_nb.cache_miss_reason", "")
            skipped = tags.get("mlops_nb.cache_skipped", "")
            found[int(name[1:])] = StageOutcome(int(name[1:]), hit, reason, inputs, skipped)
    return found


@dataclass(frozen=True)
class Change:
    """One numeric literal changed: where, from what, to what."""

    cell: int
    line: int
    old: str
    new: str


def _literals(source: str) -> list[ast.Constant]:
    """Numeric literals passed to a call or assigned to a name: the values of keyword arguments and plain
    assignments first (``n_samples=500``, ``alpha = 0.1``), then positional arguments (``RandomState(0)``),
    each group in source order."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    named, positional = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) or (
            isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets)
        ):
            named.append(node.value)
        elif isinstance(node, ast.Call):
            positional.extend(node.args)

    def numbers(values: list[ast.expr]) -> list[ast.Constant]:
        found = [v for v in values if isinstance(v, ast.Constant) and type(v.value) in (int, float)]  # not bool
        return sorted(found, key=lambda n: (n.lineno, n.col_offset))

    return numbers(named) + numbers(positional)


def changes(nb: nbformat.NotebookNode, limit: int = 3) -> list[tuple[nbformat.NotebookNode, Change]]:
    """Up to ``limit`` variants of the notebook, each with one numeric literal of an early cell (the first half
    of the code cells) changed: an int plus one, a float times 1.5; earliest cell first."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    early = code[: (len(code) + 1) // 2]
    found = []
    for index in early:
        source = nb.cells[index].source
        if source.lstrip().startswith("%"):
            continue
        lines = source.splitlines(keepends=True)
        for node in _literals(source):
            if node.lineno != node.end_lineno:
                continue
            value = node.value
            new = repr(value + 1) if isinstance(value, int) else repr(value * 1.5)
            line = lines[node.lineno - 1]
            start, end = _offsets(line, node.col_offset, node.end_col_offset or node.col_offset)
            lines_changed = [*lines]
            lines_changed[node.lineno - 1] = line[:start] + new + line[end:]
            changed = nbformat.from_dict(nb)
            changed.cells[index].source = "".join(lines_changed)
            found.append((changed, Change(index, node.lineno, line[start:end], new)))
            if len(found) == limit:
                return found
    return found


def _offsets(line: str, start: int, end: int) -> tuple[int, int]:
    """ast's offsets count UTF-8 bytes: as character offsets into ``line``."""
    raw = line.encode()
    return len(raw[:start].decode(errors="ignore")), len(raw[:end].decode(errors="ignore"))
