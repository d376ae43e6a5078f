"""``mlops-nb graph | export-pipeline | pipeline-run``: thin glue over ``mlops_nb.pipelines`` and ``mlops_nb.jobs``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mlops_nb import exit_codes
from mlops_nb.cli import handle_errors


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("notebook", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the graph as JSON: stages, edges, problems, parameters.")
@click.option("--dot", "as_dot", is_flag=True, help="Print the graph in Graphviz DOT (| dot -Tsvg > graph.svg).")
@handle_errors
def graph(notebook: Path, as_json: bool, as_dot: bool) -> None:
    """The stages of NOTEBOOK and their edges, read without running it: which stage's outputs (names and
    files) each stage reads, and the notebook parameters each reads. Then the pre-flight check: what would
    break when the stages run apart (mlops-nb run --stage).

    Exit codes: 0 no problem, 3 the pre-flight check found problems (listed), 2 bad input.

    \b
    mlops-nb graph notebooks/train.ipynb
    mlops-nb graph notebooks/train.ipynb --dot | dot -Tsvg > train.svg
    """
    from mlops_nb.exceptions import UsageError
    from mlops_nb.jobs.runner import load_notebook
    from mlops_nb.pipelines.graph import build_graph
    from mlops_nb.pipelines.show import dot, table

    if as_json and as_dot:
        raise UsageError("Give one of --json and --dot.")
    found = build_graph(notebook, load_notebook(notebook))
    if not found.stages:
        found.node("")  # UsageError: how to mark stages
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2, default=str))
    elif as_dot:
        click.echo(dot(found))
    else:
        click.echo(table(found))
    sys.exit(exit_codes.REFUSED if found.problems else exit_codes.OK)


@click.command("export-pipeline", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("notebook", type=click.Path(path_type=Path))
@click.option("--to", "to", type=click.Choice(["airflow", "kfp"]), required=True, help="The engine to write for.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write into (e.g. dags/).")
@click.option(
    "--group",
    "groups",
    multiple=True,
    metavar="A,B",
    help="Stages to run as one task, in notebook order (repeatable; default: a task per stage).",
)
@click.option("--schedule", metavar="CRON", help="Airflow: a cron line or preset (@daily); default: manual runs only.")
@click.option(
    "--mlops-nb-command",
    "command",
    envvar="MLOPS_NB_PIPELINE_COMMAND",
    default="mlops-nb",
    show_default=True,
    help="The mlops-nb executable the tasks run (env MLOPS_NB_PIPELINE_COMMAND), e.g. /opt/venv/bin/mlops-nb.",
)
@click.option("--image", metavar="IMAGE", help="KFP: the container image with the project and mlops-nb.")
@click.option(
    "--kfp-python",
    metavar="PYTHON",
    help="KFP: a Python that has kfp, to compile the pipeline's YAML beside it (default: write the Python only).",
)
@click.option(
    "--promote",
    "promote_name",
    metavar="NAME",
    help="Airflow: end with `mlops-nb promote` of the DAG run's job run to NAME.",
)
@click.option(
    "--alias", metavar="ALIAS", help="With --promote: the alias moved when every gate holds (default champion)."
)
@click.option(
    "--require", "requires", multiple=True, metavar='"METRIC OP VALUE"', help="With --promote: a gate (repeatable)."
)
@click.option(
    "--must-beat", metavar="ALIAS", help="With --promote: the model must beat the version @ALIAS on --metric."
)
@click.option("--metric", metavar="M", help="With --promote: the metric --must-beat compares on.")
@click.option(
    "--monitor-data",
    metavar="PATH",
    help="Airflow: end with `mlops-nb monitor` of the promoted model (or --monitor) on PATH.",
)
@click.option(
    "--monitor",
    "monitor_model",
    metavar="MODEL_URI",
    help="With --monitor-data: the model to check (default models:/NAME@ALIAS of --promote).",
)
@handle_errors
def export_pipeline(
    notebook: Path,
    to: str,
    out: Path,
    groups: tuple[str, ...],
    schedule: str | None,
    command: str,
    image: str | None,
    kfp_python: str | None,
    promote_name: str | None,
    alias: str | None,
    requires: tuple[str, ...],
    must_beat: str | None,
    metric: str | None,
    monitor_data: str | None,
    monitor_model: str | None,
) -> None:
    """Write NOTEBOOK's stages (mlops-nb graph) as a pipeline: a task per stage (or per --group), each
    running `mlops-nb run NOTEBOOK --stage NAME` in the project root, so the tasks share the stage cache;
    the notebook's parameters are the pipeline's parameters. Airflow: OUT/STEM.py, a DAG whose dag_id is
    the notebook's stem. KFP: OUT/STEM_pipeline.py (python it to compile the YAML, or give --kfp-python).

    Exit codes: 0 written, 2 bad input (no stages, a pre-flight problem, a bad --group, --out not writable).

    \b
    mlops-nb export-pipeline notebooks/train.ipynb --to airflow --out dags/ --schedule "0 6 * * *"
    mlops-nb export-pipeline notebooks/train.ipynb --to kfp --out pipelines/ --image registry/train:1
    mlops-nb export-pipeline notebooks/train.ipynb --to airflow --out dags/ --promote wine --require "accuracy >= 0.9"
    """
    from mlops_nb.pipelines.export import export_pipeline as export
    from mlops_nb.pipelines.finale import Finale
    from mlops_nb.pipelines.model import printable
    from mlops_nb.pipelines.tasks import parse_groups

    done = export(
        notebook,
        to=to,
        out=out,
        groups=parse_groups(groups),
        schedule=schedule,
        command=command,
        image=image,
        kfp_python=kfp_python,
        finale=Finale(promote_name, alias, requires, must_beat, metric, monitor_data, monitor_model)
        if promote_name or alias or requires or must_beat or metric or monitor_data or monitor_model
        else None,
    )
    click.echo(
        printable(f"mlops-nb: wrote {done.path} ({done.name}: {len(done.tasks)} task(s): {', '.join(done.tasks)})"),
        err=True,
    )
    if done.compiled:
        click.echo(f"mlops-nb: compiled {done.compiled}", err=True)
    click.echo(str(done.path))


@click.group("pipeline-run", context_settings={"help_option_names": ["-h", "--help"]})
def pipeline_run() -> None:
    """The job run of one orchestrator run (an Airflow DAG run, a KFP pipeline job): export-pipeline's first
    task opens it, each stage task records into it (mlops-nb run --stage NAME --pipeline-run ID), its last
    task ends it."""


@pipeline_run.command("open")
@click.argument("notebook", type=click.Path(path_type=Path))
@click.option("--pipeline-run", "run_id", metavar="ID", required=True, help="The orchestrator's run id.")
@click.option("-p", "--parameter", "typed", nargs=2, multiple=True, metavar="NAME VALUE", help="As mlops-nb run -p.")
@click.option("-r", "--parameter-raw", "raw", nargs=2, multiple=True, metavar="NAME VALUE", help="As mlops-nb run -r.")
@click.option("-y", "--parameters-yaml", "yaml", multiple=True, metavar="YAML", help="As mlops-nb run -y.")
@click.option("--experiment", help="MLflow experiment (default: MLOPS_NB_EXPERIMENT, else the notebook's stem).")
@handle_errors
def open_run(
    notebook: Path,
    run_id: str,
    typed: tuple[tuple[str, str], ...],
    raw: tuple[tuple[str, str], ...],
    yaml: tuple[str, ...],
    experiment: str | None,
) -> None:
    """Open the job run of pipeline run ID of NOTEBOOK (a retry finds the one made before); prints its id."""
    from mlops_nb.cli.jobs import _parameters
    from mlops_nb.jobs.pipeline_run import open_parent

    parameters = _parameters({"files": (), "yaml": yaml, "typed": typed, "raw": raw})
    parent = open_parent(notebook, run_id, parameters, experiment)
    click.echo(f"mlops-nb: pipeline run {run_id!r}: job run {parent.run_id} in {parent.experiment!r}", err=True)
    click.echo(parent.run_id)


@pipeline_run.command("close")
@click.argument("notebook", type=click.Path(path_type=Path))
@click.option("--pipeline-run", "run_id", metavar="ID", required=True, help="The orchestrator's run id.")
@handle_errors
def close_run(notebook: Path, run_id: str) -> None:
    """End the job run of pipeline run ID: FINISHED when every stage of NOTEBOOK finished under it, else FAILED
    with each failed or missing stage (exit 1). Stage runs a killed task left RUNNING end KILLED."""
    from mlops_nb.jobs.pipeline_run import close_parent

    closed = close_parent(notebook, run_id)
    click.echo(closed.summary(), err=True)
    click.echo(closed.run_id)
    sys.exit(exit_codes.OK if closed.status == "FINISHED" else exit_codes.FAILED)
