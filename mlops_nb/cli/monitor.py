"""``mlops-nb monitor``: parses the options over ``[tool.mlops_nb.monitor]``, calls ``mlops_nb.watch.monitor.watch``,
reports and sets the exit code."""

from __future__ import annotations

import json
import os
import sys

import click

from mlops_nb import exit_codes
from mlops_nb.cli import handle_errors
from mlops_nb.config import RetrainSettings, load_monitor_settings
from mlops_nb.exceptions import UsageError


@click.command()
@click.argument("model_uri", required=False)
@click.option(
    "--data", "data", metavar="PATH", help="The data to check: a CSV, Parquet or JSON lines file, folder or glob."
)
@click.option(
    "--logs",
    metavar="DIR",
    help="Instead of --data: the exported serving package's prediction log folder (predictions become a column).",
)
@click.option(
    "--reference",
    metavar="PATH",
    help="The training data or its reference_profile.json (default: the reference stored with MODEL_URI).",
)
@click.option(
    "--labels",
    metavar="COL",
    help="The column of true labels in the data: not a feature; gives the realised performance.",
)
@click.option("--window", metavar="W", help="Also the drift of each window: 1h, 30min, 1d (time) or 10000rows.")
@click.option(
    "--timestamp", metavar="COL", help="The time column of --data for time windows (default: a column 'timestamp')."
)
@click.option("--json", "json_out", metavar="FILE", help="Also write the result as JSON to FILE ('-': stdout only).")
@click.option("--report", metavar="FILE.html", help="Write the HTML report (one self-contained file) to FILE.html.")
@click.option("--fail-on-drift", is_flag=True, help="Exit 3 when the dataset drifts.")
@click.option("--webhook", metavar="URL", help="POST a JSON summary to URL (retried; a failure only warns).")
@click.option(
    "--webhook-timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    metavar="S",
    help="Seconds per webhook attempt (3 attempts).",
)
@click.option(
    "--preset",
    type=click.Choice(["mlops-nb", "evidently"]),
    help="Which method decides per kind, and thresholds (evidently: Evidently's DataDriftPreset choices).",
)
@click.option(
    "--sample-rows",
    default=1_000_000,
    show_default=True,
    metavar="N",
    help="Rows of each side kept for KS/Wasserstein; above, a seeded uniform sample (KS counts stay exact).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    help="Where the statistics are computed: local (default), or dask: one task per --data file on the cluster.",
)
@click.option("--scheduler", metavar="ADDR", help="The Dask scheduler of --executor dask (tcp://host:8786).")
@click.option(
    "--retrain", metavar="NOTEBOOK", help="On dataset drift, run NOTEBOOK as a job, then --promote its model."
)
@click.option(
    "-p",
    "--parameter",
    "parameters",
    nargs=2,
    multiple=True,
    metavar="NAME VALUE",
    help="A parameter of the --retrain notebook (typed as mlops-nb run does).",
)
@click.option("--promote", "promote_name", metavar="NAME", help="The registered model the retrained model goes to.")
@click.option("--alias", metavar="ALIAS", help="The alias moved when every gate holds (default champion).")
@click.option("--must-beat", metavar="ALIAS", help="The retrained model must beat the version @ALIAS on --metric.")
@click.option("--metric", metavar="M", help="The metric of --must-beat.")
@click.option("--require", "requires", metavar='"METRIC OP VALUE"', multiple=True, help="A gate on the job's metrics.")
@click.option("--lower-is-better", is_flag=True, default=None, help="--metric is better when lower (default: higher).")
@click.option("--no-retrain", is_flag=True, help="Leave out the loop of [tool.mlops_nb.monitor.retrain] this time.")
@handle_errors
def monitor(
    model_uri: str | None,
    data: str | None,
    logs: str | None,
    reference: str | None,
    labels: str | None,
    window: str | None,
    timestamp: str | None,
    json_out: str | None,
    report: str | None,
    fail_on_drift: bool,
    webhook: str | None,
    webhook_timeout: float,
    preset: str | None,
    sample_rows: int,
    executor: str | None,
    scheduler: str | None,
    retrain: str | None,
    parameters: tuple[tuple[str, str], ...],
    promote_name: str | None,
    alias: str | None,
    must_beat: str | None,
    metric: str | None,
    requires: tuple[str, ...],
    lower_is_better: bool | None,
    no_retrain: bool,
) -> None:
    """Check new data against the training reference: data problems and drift, per feature and for the dataset.

    MODEL_URI (models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/model) monitors a logged model
    against the reference stored with it, as an MLflow run (kind monitor) whose last result is tagged on the
    model version. Without MODEL_URI, give --reference: the data is checked and nothing is recorded.

    Exit status: 0 done (drift or not); 3 the dataset drifted and --fail-on-drift was given; 2 bad input
    (unreadable data, an unknown model, a model without a reference, bad option values), with a message
    naming the fix. A webhook that fails only warns.

    Every option can be set under [tool.mlops_nb.monitor] in pyproject.toml (model, data, reference, labels,
    preset, thresholds, drift_share, fail_on_drift, executor, scheduler), and the loop under
    [tool.mlops_nb.monitor.retrain], so a scheduler runs `mlops-nb monitor` with no options; options given
    here win. The loop (--retrain NOTEBOOK --promote NAME [--must-beat ALIAS --metric M] [--require ...]):
    on dataset drift the notebook runs as a job tagged mlops_nb.trigger=monitor:<run id>, and its model is
    promoted only when every gate holds; a failed job or gate leaves the alias where it was.
    """
    from mlops_nb.monitoring import data as data_io
    from mlops_nb.monitoring import report as text_report

    data_io.returning_allocator()
    from mlops_nb.watch.monitor import watch

    config = load_monitor_settings()
    loop = None if no_retrain else config.retrain
    if retrain is not None:
        loop = _loop(retrain, parameters, promote_name, alias, must_beat, metric, requires, lower_is_better)
    elif parameters or promote_name or alias or must_beat or metric or requires or lower_is_better:
        raise UsageError("-p, --promote, --alias, --must-beat, --metric, --require go with --retrain NOTEBOOK.")
    outcome = watch(
        model_uri or config.model,
        data=data if data is not None or logs is not None else config.data,
        logs=logs,
        reference=reference or config.reference,
        labels=labels or config.labels,
        window=window,
        timestamp=timestamp,
        json_out=json_out,
        report=report,
        webhook=webhook,
        webhook_timeout=webhook_timeout,
        preset=preset or config.preset or "mlops-nb",
        sample_rows=sample_rows,
        thresholds=config.thresholds,
        drift_share=config.drift_share,
        executor=executor or config.executor,
        scheduler=scheduler or (config.scheduler if (executor or config.executor) == "dask" else None),
        retrain=loop,
        warn=lambda message: click.echo(f"Warning: {message}", err=True),
    )
    result = outcome.result
    if json_out == "-":
        click.echo(json.dumps(result, indent=2))
    else:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        click.echo(text_report.text(dict(result), color=color), color=color)
        for line in _where(outcome):
            click.echo(line)
    if outcome.retraining is not None:
        click.echo(outcome.retraining.summary(), err=True)
    if (fail_on_drift or config.fail_on_drift) and result["dataset_drift"]:
        raise click.exceptions.Exit(exit_codes.DRIFT)


def _where(outcome: object) -> list[str]:
    lines = []
    for label, value in (("Report", "report"), ("JSON", "json"), ("MLflow run", "run_id")):
        found = getattr(outcome, value)
        if found:
            lines.append(f"{label}: {found}")
    return lines


def _loop(
    notebook: str,
    parameters: tuple[tuple[str, str], ...],
    name: str | None,
    alias: str | None,
    must_beat: str | None,
    metric: str | None,
    requires: tuple[str, ...],
    lower_is_better: bool | None,
) -> RetrainSettings:
    from pathlib import Path

    from mlops_nb.jobs.parameters import typed

    if not name:
        raise UsageError(f"--retrain {notebook} needs --promote NAME: the registered model its model goes to.")
    if (must_beat is None) != (metric is None):
        raise UsageError("--must-beat ALIAS and --metric M go together, e.g. --must-beat champion --metric accuracy.")
    return RetrainSettings(
        notebook=Path(notebook),
        promote=name,
        parameters={key: typed(value) for key, value in parameters},
        alias=alias or "champion",
        must_beat=must_beat,
        metric=metric,
        higher_is_better=not lower_is_better,
        require=requires,
    )
