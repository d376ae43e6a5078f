"""``mlops-nb run | sweep | reproduce | ci``: thin glue over ``mlops_nb.jobs``.

Human-readable summaries go to stderr; stdout carries only what a script captures (the run id, or JSON with
``--json``). Exit codes: 0 success, 1 a cell raised, 2 bad usage or input (nothing ran), 3 a requirement
did not hold, 4 the kernel died or a cell timed out, 5 the records could not reach MLflow, 130 interrupted
(Ctrl-C or SIGTERM; the runs end KILLED).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mlops_nb import exit_codes
from mlops_nb.cli import handle_errors
from mlops_nb.exceptions import UsageError
from mlops_nb.tracking.runs import parse_tags


def _parameters(job: dict[str, Any]) -> dict:
    """Files first, then -y, -p, -r (later wins), as papermill merges them."""
    from mlops_nb.jobs.parameters import read_file, read_yaml
    from mlops_nb.jobs.parameters import typed as typed_value

    params: dict[str, Any] = {}
    for path in job["files"]:
        params.update(read_file(path))
    for text in job["yaml"]:
        params.update(read_yaml(text))
    params.update({name: typed_value(value) for name, value in job["typed"]})
    params.update(dict(job["raw"]))
    return params


def _job_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by run and sweep."""
    options = [
        click.option(
            "-p",
            "--parameter",
            "typed",
            nargs=2,
            multiple=True,
            metavar="NAME VALUE",
            help="Parameter to inject, typed as papermill does (True/False/None, int, float, else text).",
        ),
        click.option(
            "-r",
            "--parameter-raw",
            "raw",
            nargs=2,
            multiple=True,
            metavar="NAME VALUE",
            help="Parameter to inject as text, untyped.",
        ),
        click.option(
            "-f",
            "--parameters-file",
            "files",
            multiple=True,
            type=click.Path(path_type=Path),
            help="YAML file of parameters (repeatable; -y, -p and -r override it).",
        ),
        click.option(
            "-y",
            "--parameters-yaml",
            "yaml",
            multiple=True,
            metavar="YAML",
            help="Parameters as YAML text, as papermill's -y: -y 'layers: [64, 32]' (repeatable).",
        ),
        click.option(
            "--experiment", help="MLflow experiment (default: MLOPS_NB_EXPERIMENT, else the notebook's stem)."
        ),
        click.option(
            "--require",
            "requires",
            multiple=True,
            metavar='"METRIC OP VALUE"',
            help='Fail unless the job\'s metric holds, e.g. --require "accuracy >= 0.9" (repeatable).',
        ),
        click.option(
            "--timeout", type=float, help="Seconds any one cell may run before the job fails (default: none)."
        ),
        click.option(
            "--start-timeout",
            type=float,
            default=60,
            show_default=True,
            help="Seconds to wait for the kernel to start.",
        ),
        click.option("-k", "--kernel", help="Kernel name (default: the notebook's own)."),
        click.option("--cwd", type=click.Path(path_type=Path), help="Working directory of the kernel."),
        click.option("--allow-new", is_flag=True, help="Inject parameters that the 'parameters' cell does not set."),
        click.option("--no-cache", is_flag=True, help="Run every %%track stage (no cache hits)."),
        click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Extra tag on the job run(s)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("notebook", type=click.Path(path_type=Path))
@_job_options
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Where the executed notebook goes (default: NOTEBOOK's stem + .out.ipynb beside it).",
)
@click.option("--name", help="Run name (default: the notebook's stem).")
@click.option("--log-output", is_flag=True, help="Stream the cells' output to the console, as papermill does.")
@click.option("--progress-bar/--no-progress-bar", default=None, help="Cell progress bar (default: on a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout instead of the run id.")
@click.option(
    "--stage",
    metavar="NAME",
    help="Run only this stage (and the setup cells): what it needs from upstream stages is restored from the stage "
    "cache, and an upstream stage with no cache entry runs first.",
)
@click.option("--until", metavar="NAME", help="Run the stages up to NAME (and the setup cells), then stop.")
@click.option(
    "--no-upstream",
    is_flag=True,
    help="With --stage/--until: exit 2, naming it, when an upstream stage is not in the cache (instead of running it).",
)
@click.option(
    "--pipeline-run",
    metavar="ID",
    help="With --stage: record the stage into the job run of this orchestrator run (Airflow's run_id), which "
    "`mlops-nb pipeline-run open` made, instead of a job run of its own (export-pipeline's tasks do).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="dask: run the stage graph on Dask, independent stages at once, each stage a task (one job run).",
)
@click.option("--scheduler", metavar="ADDR", help="With --executor dask: its scheduler (default: a local cluster).")
@handle_errors
def run(
    notebook: Path,
    output: Path | None,
    name: str | None,
    log_output: bool,
    progress_bar: bool | None,
    as_json: bool,
    stage: str | None,
    until: str | None,
    no_upstream: bool,
    pipeline_run: str | None,
    executor: str,
    scheduler: str | None,
    **job: Any,
) -> None:
    """Execute NOTEBOOK with papermill as one tracked MLflow job run.

    Its %%track stages nest under the job run; the input and executed notebooks are logged as artifacts, the
    injected parameters as params. Prints the run id (stdout) and a summary (stderr).

    \b
    mlops-nb run notebooks/train.ipynb -p alpha 0.5 --require "accuracy >= 0.9"
    mlops-nb run notebooks/train.ipynb --stage train -p C 0.5
    """
    from mlops_nb.jobs.runner import run_job, select_stages

    options = _options(job, name)
    if scheduler and executor != "dask":
        raise UsageError("--scheduler needs --executor dask.")
    if executor == "dask":
        refused = {
            "--stage": stage,
            "--until": until,
            "--no-upstream": no_upstream,
            "--pipeline-run": pipeline_run,
            "--output": output,
            "--require": job["requires"],
        }
        _run_on_dask(notebook, options, job, scheduler, refused)
    if pipeline_run is not None and stage is None:
        raise UsageError("--pipeline-run records one stage into the pipeline's job run: give --stage NAME.")
    selection = None
    if stage is not None or until is not None or no_upstream:
        selection = select_stages(notebook, stage=stage, until=until, no_upstream=no_upstream, cache=options.cache)
        click.echo(selection.describe(), err=True)
    if pipeline_run is not None:
        from mlops_nb.jobs.pipeline_run import attach

        options.attached, options.stage = attach(notebook, pipeline_run, (stage,)), stage
    try:
        result = run_job(
            notebook,
            output=output,
            parameters=_parameters(job),
            options=options,
            kernel=job["kernel"],
            cwd=job["cwd"],
            timeout=job["timeout"],
            start_timeout=job["start_timeout"],
            allow_new=job["allow_new"],
            progress_bar=sys.stderr.isatty() if progress_bar is None else progress_bar,
            log_output=log_output,
            selection=selection,
        )
    except KeyboardInterrupt:
        if options.result is None:  # before the job run existed
            raise
        result = options.result  # the job ended KILLED: say so as for any other outcome (exit 130)
    click.echo(result.summary(), err=True)
    click.echo(json.dumps(_result_json(result)) if as_json else result.run_id)
    sys.exit(result.exit_code)


def _run_on_dask(notebook: Path, options: Any, job: dict[str, Any], scheduler: str | None, refused: dict) -> None:
    from mlops_nb.jobs.pipeline import run_pipeline

    given = [flag for flag, value in refused.items() if value]
    if given:
        raise UsageError(f"--executor dask runs every stage of the graph: leave out {', '.join(given)}.")
    result = run_pipeline(
        notebook,
        parameters=_parameters(job),
        options=options,
        scheduler=scheduler,
        cwd=job["cwd"],
        timeout=job["timeout"],
        start_timeout=job["start_timeout"],
    )
    click.echo(result.summary(), err=True)
    click.echo(result.run_id)
    sys.exit(result.exit_code)


def _check_cache(no_cache: bool) -> None:
    """A shared stage cache that does not answer stops the command before anything runs (exit 2)."""
    if not no_cache:
        from mlops_nb.config import load_settings
        from mlops_nb.stages.store import check_shared

        check_shared(load_settings())


def _options(job: dict[str, Any], name: str | None = None) -> Any:
    from mlops_nb.gates import parse_requirement
    from mlops_nb.jobs.job import JobOptions

    _check_cache(job["no_cache"])
    return JobOptions(
        experiment=job["experiment"],
        run_name=name,
        tags=parse_tags(job["tags"]),
        requirements=[parse_requirement(r) for r in job["requires"]],
        cache=not job["no_cache"],
    )


def _result_json(result: Any) -> dict[str, Any]:
    return {
        "run_id": result.run_id or None,
        "run_key": result.key,
        "experiment": result.experiment,
        "outcome": result.outcome,
        "exit_code": result.exit_code,
        "message": result.message,
        "metrics": result.metrics,
        "stages": [vars(s) for s in result.stages],
        "requirements": [{"requirement": str(g.requirement), "ok": g.ok, "actual": g.actual} for g in result.gates],
        "duration_s": round(result.duration, 3),
        "output": result.output,
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("notebook", type=click.Path(path_type=Path))
@click.option(
    "--grid",
    "grids",
    multiple=True,
    metavar="NAME=V1,V2",
    help="Values of one parameter (repeatable; the sweep runs every combination). "
    'NAME=[1, "a,b"] is read as a YAML list.',
)
@click.option("--random", "sample", type=int, metavar="N", help="Run N combinations drawn at random instead of all.")
@click.option("--seed", type=int, help="Seed for --random (default: a different draw each time).")
@click.option("--parallel", type=int, default=1, show_default=True, help="Jobs at a time.")
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="local: a process pool on this machine; dask: tasks on a Dask cluster.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Dask scheduler (tcp://host:8786); without it --executor dask starts a local cluster.",
)
@click.option("--metric", help="Pick the best job by this metric.")
@click.option("--higher-is-better/--lower-is-better", default=True, help="Direction of --metric (default: higher).")
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    help="Where the executed notebooks go (default: .mlops_nb/sweeps/<notebook>-<time>/).",
)
@click.option("--progress-bar/--no-progress-bar", default=None, help="Progress bar (default: on a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout instead of the run id.")
@_job_options
@handle_errors
def sweep(
    notebook: Path,
    grids: tuple[str, ...],
    sample: int | None,
    seed: int | None,
    parallel: int,
    executor: str,
    scheduler: str | None,
    metric: str | None,
    higher_is_better: bool,
    output_dir: Path | None,
    progress_bar: bool | None,
    as_json: bool,
    **job: Any,
) -> None:
    """Run NOTEBOOK once per combination of the --grid values: a `sweep` run with one `job` run each.

    A failed job does not stop the others. Prints the sweep's run id (stdout) and a table of its jobs with
    the best by --metric (stderr). Exit 0 when every job succeeded, 1 when some failed, 2 when --metric
    names a metric no job logged (the message lists those they did).

    \b
    mlops-nb sweep train.ipynb --grid alpha=0.1,1,10 --grid penalty=l1,l2 --parallel 2 --metric accuracy
    """
    from mlops_nb.jobs.sweep import combinations, parse_grid, run_sweep

    if scheduler and executor != "dask":
        raise UsageError("--scheduler needs --executor dask.")
    grid = parse_grid(grids)
    result = run_sweep(
        notebook,
        grid,
        points=combinations(grid, sample, seed),
        fixed=_parameters(job),
        options=_options(job),
        run={k: job[k] for k in ("kernel", "cwd", "timeout", "start_timeout", "allow_new")},
        parallel=parallel,
        executor=executor,
        scheduler=scheduler,
        metric=metric,
        higher_is_better=higher_is_better,
        output_dir=output_dir,
        progress=sys.stderr.isatty() if progress_bar is None else progress_bar,
    )
    click.echo(result.summary(), err=True)
    if as_json:
        children = [
            {
                "index": c.index,
                "parameters": c.parameters,
                "ok": c.ok,
                "why": "" if c.ok else c.why,
                **(_result_json(c.result) if c.result else {}),
            }
            for c in result.children
        ]
        best = result.best.result.run_id if result.best and result.best.result else None
        click.echo(json.dumps({"run_id": result.run_id, "best_run_id": best, "jobs": children}, default=str))
    else:
        click.echo(result.run_id)
    sys.exit(result.exit_code)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_id")
@click.option("--rtol", type=float, default=1e-9, show_default=True, help="Relative tolerance for metrics.")
@click.option("--atol", type=float, default=0.0, show_default=True, help="Absolute tolerance for metrics.")
@click.option("--strict", is_flag=True, help="Refuse to run when installed packages differ from the recorded ones.")
@click.option(
    "--cwd",
    type=click.Path(path_type=Path),
    help="Working directory of the kernel (default: the job's recorded one, when it exists here).",
)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Also write the executed notebook here.")
@click.option("-k", "--kernel", help="Kernel name (default: the notebook's own).")
@click.option("--timeout", type=float, help="Seconds any one cell may run.")
@click.option("--progress-bar/--no-progress-bar", default=None, help="Cell progress bar (default: on a terminal).")
@handle_errors
def reproduce(
    run_id: str,
    rtol: float,
    atol: float,
    strict: bool,
    cwd: Path | None,
    output: Path | None,
    kernel: str | None,
    timeout: float | None,
    progress_bar: bool | None,
) -> None:
    """Re-run the recorded job RUN_ID and compare every metric and stage input.

    Uses the notebook and parameters recorded with the job (not today's file), runs every stage (no cache),
    and links the new run to RUN_ID (tag mlops_nb.reproduces). Exit 0 when every metric agrees within the
    tolerances and no stage input changed, 3 when they differ; the new run's id goes to stdout.
    """
    from mlops_nb.jobs.reproduce import reproduce as reproduce_job

    reproduction = reproduce_job(
        run_id,
        rtol=rtol,
        atol=atol,
        strict=strict,
        cwd=cwd,
        output=output,
        kernel=kernel,
        timeout=timeout,
        progress_bar=sys.stderr.isatty() if progress_bar is None else progress_bar,
        warn=lambda text: click.echo(text, err=True),
    )
    click.echo(reproduction.summary(), err=True)
    click.echo(reproduction.result.run_id)
    sys.exit(reproduction.exit_code)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("config", required=False, type=click.Path(path_type=Path))
@click.option("--junit", type=click.Path(path_type=Path), help="Write a JUnit XML report here.")
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    default=Path("reports/notebooks"),
    show_default=True,
    help="Where the executed notebooks go.",
)
@click.option(
    "--init",
    "init",
    type=click.Choice(["github"]),
    help="Write a CI workflow that runs `mlops-nb ci` (GitHub Actions) instead of running the jobs; with "
    "[tool.mlops_nb.monitor] in pyproject.toml, also a scheduled one that runs `mlops-nb monitor`.",
)
@click.option("--force", is_flag=True, help="With --init: overwrite an existing workflow.")
@click.option("--no-cache", is_flag=True, help="Run every %%track stage of every job (no cache hits).")
@handle_errors
def ci(
    config: Path | None, junit: Path | None, output_dir: Path, init: str | None, force: bool, no_cache: bool
) -> None:
    """Run the notebook jobs listed in CONFIG ([tool.mlops_nb.ci] of pyproject.toml by default, or a YAML
    file) with their requirements; exit non-zero when any fails.

    \b
    [[tool.mlops_nb.ci.jobs]]
    notebook = "notebooks/train.ipynb"
    parameters = { n_estimators = 50 }
    require = ["accuracy >= 0.9"]
    """
    from mlops_nb.config import find_project_root, load_monitor_settings
    from mlops_nb.jobs.ci import junit_xml, load_config, run_ci, write_monitor_workflow, write_workflow

    root = find_project_root()
    if init:
        monitoring = load_monitor_settings(root)
        path = write_workflow(root, force)
        click.echo(f"Wrote {path}: it runs `mlops-nb ci --junit reports/notebooks.xml` on every push.", err=True)
        if monitoring.configured:
            path = write_monitor_workflow(root, monitoring.schedule, force)
            click.echo(
                f"Wrote {path}: it runs `mlops-nb monitor` ([tool.mlops_nb.monitor]) on the schedule "
                f"{monitoring.schedule!r} (UTC).",
                err=True,
            )
        return
    jobs, _ = load_config(config, root)
    _check_cache(no_cache)
    outcomes = run_ci(jobs, output_dir, echo=lambda text: click.echo(text, err=True), cache=not no_cache)
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(junit_xml(outcomes), encoding="utf-8")
    failed = [o for o in outcomes if not o.ok]
    click.echo(
        f"{len(outcomes) - len(failed)} of {len(outcomes)} notebook jobs passed"
        + (f"; failed: {', '.join(o.job.name for o in failed)}" if failed else ""),
        err=True,
    )
    sys.exit(exit_codes.FAILED if failed else exit_codes.OK)
