"""The ``mlops-nb`` command line (also ``python -m mlops_nb``): thin glue over jobs/, registry/, serving/, monitoring/.

Each command lives in a module of this package and is imported only when it runs, so ``mlops-nb --help``
and every command start without loading MLflow.
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import click

from mlops_nb import exit_codes
from mlops_nb.exceptions import MlopsNbError, StoreError

# command name -> "module:attribute" of its click command
COMMANDS = {
    "run": "mlops_nb.cli.jobs:run",
    "sweep": "mlops_nb.cli.jobs:sweep",
    "tune": "mlops_nb.cli.tune:tune",
    "reproduce": "mlops_nb.cli.jobs:reproduce",
    "ci": "mlops_nb.cli.jobs:ci",
    "promote": "mlops_nb.cli.registry:promote",
    "export": "mlops_nb.cli.serving:export",
    "runs": "mlops_nb.cli.read:runs",
    "show": "mlops_nb.cli.read:show",
    "diff": "mlops_nb.cli.read:diff",
    "lineage": "mlops_nb.cli.read:lineage",
    "monitor": "mlops_nb.cli.monitor:monitor",
    "evaluate": "mlops_nb.cli.evaluate:evaluate",
    "graph": "mlops_nb.cli.pipelines:graph",
    "export-pipeline": "mlops_nb.cli.pipelines:export_pipeline",
    "pipeline-run": "mlops_nb.cli.pipelines:pipeline_run",
}
HELP = {
    "run": "Execute a notebook with papermill as one tracked job.",
    "sweep": "Run a notebook over a grid of parameters (process pool or Dask).",
    "tune": "Tune a notebook's parameters with Optuna: each trial a tracked, cached job.",
    "reproduce": "Re-run a recorded job and compare its metrics.",
    "ci": "Run the project's notebook jobs as CI checks (JUnit XML).",
    "promote": "Register a run's model in the MLflow registry behind gates.",
    "export": "Generate a standalone FastAPI serving package for a model.",
    "runs": "List the runs of a notebook (or all), newest first.",
    "show": "One run with its stages: status, duration, cache hits, metrics.",
    "diff": "Why two runs differ: params, metrics, and the stages whose code or inputs changed.",
    "lineage": "A model version back to its run, stages, notebook, commit and evidence.",
    "monitor": "Check new data against the training reference: data problems and drift.",
    "evaluate": "A model's quality report: metrics, plots, explanations, slices, CV, a baseline.",
    "graph": "A notebook's stage graph and the pre-flight check for running its stages apart.",
    "export-pipeline": "Write a notebook's stages as an Airflow DAG or a Kubeflow Pipelines pipeline.",
    "pipeline-run": "Open or end the job run of one pipeline run (an exported pipeline's first and last task).",
}


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Every command: mlops-nb's errors become one message and an exit code, no traceback; MLflow's INFO
    lines and download bars stay off the console (the user's own MLFLOW_* settings win)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mlops_nb.tracking.store import quiet_console

        quiet_console()  # before MLflow loads, maybe in the background
        try:
            return func(*args, **kwargs)
        except MlopsNbError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(exit_codes.STORE if isinstance(e, StoreError) else exit_codes.USAGE)
        except KeyboardInterrupt:  # what was recorded so far is kept; open runs end KILLED
            click.echo("Interrupted: what was recorded is kept, and any run still open ended KILLED.", err=True)
            sys.exit(exit_codes.INTERRUPTED)

    return wrapper


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, HELP[name]) for name in COMMANDS]  # without importing the commands
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="mlops-nb", prog_name="mlops-nb")
def main(**_: Any) -> None:
    """mlops-nb: notebook-first MLOps on MLflow.

    Records go to MLFLOW_TRACKING_URI (or tracking_uri in [tool.mlops_nb]); without one, to the embedded
    SQLite store under .mlops_nb/ in the project root.
    """


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run() -> None:
    """The ``mlops-nb`` console script: the command, then a quick exit.

    Once the command is done and this process's records are flushed into MLflow, the process leaves with
    ``os._exit``: Python's own teardown of the thousands of modules MLflow loads takes about half a second
    and has nothing left to do. An unexpected exception still goes through Python's normal exit.
    """
    # SIGTERM (a CI job cancelled, kill) ends a command as Ctrl-C does: runs KILLED, records flushed.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main(prog_name="mlops-nb")
    except SystemExit as e:
        code = e.code
    if isinstance(code, str):  # sys.exit("message")
        print(code, file=sys.stderr)
        code = 1
    from mlops_nb.tracking import recorder, runs

    runs.end_all_runs()
    recorder.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
