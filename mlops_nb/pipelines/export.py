"""``mlops-nb export-pipeline``: a notebook's stage graph written as an Airflow DAG or a KFP v2 pipeline.

``export_pipeline`` reads the graph (pipelines/graph.py), lays out the tasks (tasks.py), renders the file
(airflow.py, kfp.py) and writes it into ``out`` as ``<stem>.py`` (Airflow: the DAG file; KFP:
``<stem>_pipeline.py``, and its compiled ``<stem>_pipeline.yaml`` when a Python with kfp is given).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mlops_nb.config import find_project_root
from mlops_nb.exceptions import UsageError
from mlops_nb.pipelines import airflow, kfp
from mlops_nb.pipelines.airflow import Exported
from mlops_nb.pipelines.finale import Finale
from mlops_nb.pipelines.graph import build_graph
from mlops_nb.pipelines.tasks import plan

ENGINES = ("airflow", "kfp")


def _write(path: Path, text: str) -> None:
    """Atomically: a reader (Airflow's DAG processor) never sees half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        Path(tmp).chmod(0o644)
        Path(tmp).replace(path)
    except OSError as exc:
        raise UsageError(
            f"--out {path.parent}: cannot write {path.name} there ({exc.strerror or exc}). Give a folder you can "
            "write to, e.g. --out dags/."
        ) from exc


def export_pipeline(
    notebook: Path,
    *,
    to: str,
    out: Path,
    groups: list[list[str]] | None = None,
    schedule: str | None = None,
    command: str = "mlops-nb",
    image: str | None = None,
    kfp_python: str | None = None,
    finale: Finale | None = None,
) -> Exported:
    """Write ``notebook``'s stages as a pipeline for ``to`` (airflow or kfp) into ``out``.

    ``command``: the ``mlops-nb`` executable the tasks run; ``image`` (KFP): the container image that has
    mlops-nb and the project; ``kfp_python`` (KFP): a Python with kfp that compiles the YAML; ``finale``
    (Airflow): the promote and monitor tasks after the stages.

    Raises:
        UsageError: an unknown engine, no such notebook, a notebook without stages, a graph the pre-flight
            check refuses, a bad ``--group`` or ``--schedule``, an ``out`` that cannot be written.
    """
    if to not in ENGINES:
        raise UsageError(f"--to {to!r}: give one of {', '.join(ENGINES)}.")
    if not command.strip():
        raise UsageError("--mlops-nb-command is empty: give the mlops-nb executable the tasks run.")
    schedule = airflow.check_schedule(schedule)
    if finale is not None:
        if to != "airflow":
            raise UsageError("--promote and --monitor-data end an Airflow DAG: give --to airflow.")
        finale.check()
    path = notebook.resolve()
    graph = build_graph(notebook)
    layout = plan(graph, groups)
    root = find_project_root(path.parent)
    if to == "airflow":
        name, text = airflow.render(
            layout, notebook=path, project_root=root, command=command, schedule=schedule, finale=finale
        )
        target = out / f"{name}.py"
        _write(target, text)
        return Exported(target, name, tuple(t.task_id for t in layout.tasks))
    name, text = kfp.render(layout, notebook=path, project_root=root, command=command, image=image)
    target = out / f"{path.stem}_pipeline.py"
    _write(target, text)
    compiled = kfp.compile_yaml(target, kfp_python) if kfp_python else None
    return Exported(target, name, tuple(t.task_id for t in layout.tasks), compiled)
