"""``mlops-nb graph``: thin glue over ``mlops_nb.pipelines``."""

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
