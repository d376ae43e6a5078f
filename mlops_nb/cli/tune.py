"""``mlops-nb tune``: thin glue over ``mlops_nb.jobs.tune``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from mlops_nb.cli import handle_errors
from mlops_nb.cli.jobs import _options, _parameters
from mlops_nb.exceptions import UsageError


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("notebook", type=click.Path(path_type=Path))
@click.option(
    "--space",
    "spaces",
    multiple=True,
    metavar="NAME=DIST",
    help="A tuned parameter (repeatable). DIST: uniform(a,b), loguniform(a,b), int(a,b[,step=s]), choice(x,y,...).",
)
@click.option(
    "--space-file",
    type=click.Path(path_type=Path),
    help="A YAML file of NAME: DIST lines (--space adds to it). Without either: [tool.mlops_nb.tune.space].",
)
@click.option(
    "--trials", type=int, default=20, show_default=True, help="Trials in the study (a resumed one runs the rest)."
)
@click.option("--metric", required=True, help="The job metric to optimise (logged by the notebook).")
@click.option("--direction", default="maximize", show_default=True, help="maximize or minimize --metric.")
@click.option(
    "--sampler",
    type=click.Choice(["tpe", "random", "cmaes", "gp", "grid"]),
    default="tpe",
    show_default=True,
    help="Optuna's sampler.",
)
@click.option(
    "--pruner",
    default="median",
    show_default=True,
    metavar="median|hyperband|none",
    help="Optuna's pruner for mnb.report(value, step); Optuna's arguments in brackets: 'median(n_startup_trials=2)'.",
)
@click.option("--parallel", type=int, default=1, show_default=True, help="Trials at a time.")
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="local: the warm process pool on this machine; dask: tasks on a Dask cluster.",
)
@click.option("--scheduler", metavar="ADDRESS", help="Dask scheduler (tcp://host:8786); default: a local cluster.")
@click.option("--timeout", type=float, help="Stop starting trials after this many seconds (running ones finish).")
@click.option(
    "--study", "study_name", help="The study's name (default: the notebook's stem); the same name resumes it."
)
@click.option("--seed", type=int, help="Seed of the sampler.")
@click.option("--cell-timeout", type=float, help="Seconds any one cell may run before the trial fails.")
@click.option("--start-timeout", type=float, default=60, show_default=True, help="Seconds to wait for a kernel.")
@click.option("-p", "--parameter", "typed", nargs=2, multiple=True, metavar="NAME VALUE", help="A fixed parameter.")
@click.option("-r", "--parameter-raw", "raw", nargs=2, multiple=True, metavar="NAME VALUE", help="A fixed text one.")
@click.option("-f", "--parameters-file", "files", multiple=True, type=click.Path(path_type=Path), help="YAML file.")
@click.option("-y", "--parameters-yaml", "yaml", multiple=True, metavar="YAML", help="Fixed parameters as YAML.")
@click.option("--experiment", help="MLflow experiment (default: MLOPS_NB_EXPERIMENT, else the notebook's stem).")
@click.option("-k", "--kernel", help="Kernel name (default: the notebook's own).")
@click.option("--cwd", type=click.Path(path_type=Path), help="Working directory of the kernels.")
@click.option("--allow-new", is_flag=True, help="Inject parameters that the 'parameters' cell does not set.")
@click.option("--no-cache", is_flag=True, help="Run every %%track stage (no cache hits).")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Extra tag on the trials' job runs.")
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    help="Where the executed notebooks go (default: .mlops_nb/studies/<study>-<time>/).",
)
@click.option("--progress-bar/--no-progress-bar", default=None, help="Progress bar (default: on a terminal).")
@click.option(
    "--json", "json_file", type=click.Path(path_type=Path), help="Write the result as JSON here ('-': stdout)."
)
@handle_errors
def tune(
    notebook: Path,
    spaces: tuple[str, ...],
    space_file: Path | None,
    trials: int,
    metric: str,
    direction: str,
    sampler: str,
    pruner: str,
    parallel: int,
    executor: str,
    scheduler: str | None,
    timeout: float | None,
    study_name: str | None,
    seed: int | None,
    cell_timeout: float | None,
    output_dir: Path | None,
    progress_bar: bool | None,
    json_file: Path | None,
    **job: Any,
) -> None:
    """Tune NOTEBOOK's parameters with Optuna: a `study` run with one `job` run per trial.

    Each trial runs the notebook with the sampled parameters (stages that do not read them come from the
    cache); a failed trial does not stop the study. Prints the study run's id (stdout) and a summary with
    the best trial (stderr). Run the same command again to continue a study that was stopped or killed.

    \b
    mlops-nb tune notebooks/train.ipynb --space 'C=loguniform(1e-3,1e2)' --trials 30 --metric accuracy
    """
    from mlops_nb.jobs.space import parse_space
    from mlops_nb.jobs.tune import tune as run_tune

    if scheduler and executor != "dask":
        raise UsageError("--scheduler needs --executor dask.")
    specs = dict(_space_file(space_file)) if space_file else {}
    specs.update(parse_space(list(spaces)) if spaces else {})
    if not specs:  # the project's space, if it has one
        from mlops_nb.config import load_tune_space

        configured, source = load_tune_space()
        try:
            specs = parse_space(configured) if configured else {}
        except UsageError as e:
            raise UsageError(f"{e} (read from {source})") from e
    result = run_tune(
        notebook,
        specs if specs else [],
        trials=trials,
        metric=metric,
        direction=direction,
        sampler=sampler,
        pruner=pruner,
        parallel=parallel,
        executor=executor,
        scheduler=scheduler,
        timeout=timeout,
        study=study_name,
        seed=seed,
        fixed=_parameters(job),
        options=_options({**job, "requires": ()}),
        run={
            "kernel": job["kernel"],
            "cwd": job["cwd"],
            "timeout": cell_timeout,
            "start_timeout": job["start_timeout"],
            "allow_new": job["allow_new"],
        },
        output_dir=output_dir,
        progress=sys.stderr.isatty() if progress_bar is None else progress_bar,
    )
    click.echo(result.summary(), err=True)
    if json_file is not None:
        text = json.dumps(result.json(), indent=2, default=str)
        if str(json_file) == "-":
            click.echo(text)
            return
        json_file.write_text(text + "\n", encoding="utf-8")
    click.echo(result.run_id)


def _space_file(path: Path) -> dict[str, Any]:
    """The dimensions of a YAML file ``{NAME: DIST}``."""
    from mlops_nb.jobs.parameters import read_file
    from mlops_nb.jobs.space import parse_space

    return parse_space({str(k): str(v) for k, v in read_file(path).items()})
