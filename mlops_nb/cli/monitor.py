"""``mlops-nb monitor``: parses the options, calls ``mlops_nb.watch.monitor.watch``, reports and sets the exit code."""

from __future__ import annotations

import json
import os
import sys

import click

from mlops_nb.cli import handle_errors

DRIFT_EXIT = 3


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
    default="mlops-nb",
    show_default=True,
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
    preset: str,
    sample_rows: int,
) -> None:
    """Check new data against the training reference: data problems and drift, per feature and for the dataset.

    MODEL_URI (models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/model) monitors a logged model
    against the reference stored with it, as an MLflow run (kind monitor) whose last result is tagged on the
    model version. Without MODEL_URI, give --reference: the data is checked and nothing is recorded.

    Exit status: 0 done (drift or not); 3 the dataset drifted and --fail-on-drift was given; 2 bad input
    (unreadable data, an unknown model, a model without a reference, bad option values), with a message
    naming the fix. A webhook that fails only warns.
    """
    from mlops_nb.monitoring import report as text_report
    from mlops_nb.watch.monitor import watch

    outcome = watch(
        model_uri,
        data=data,
        logs=logs,
        reference=reference,
        labels=labels,
        window=window,
        timestamp=timestamp,
        json_out=json_out,
        report=report,
        webhook=webhook,
        webhook_timeout=webhook_timeout,
        preset=preset,
        sample_rows=sample_rows,
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
    if fail_on_drift and result["dataset_drift"]:
        raise click.exceptions.Exit(DRIFT_EXIT)


def _where(outcome: object) -> list[str]:
    lines = []
    for label, value in (("Report", "report"), ("JSON", "json"), ("MLflow run", "run_id")):
        found = getattr(outcome, value)
        if found:
            lines.append(f"{label}: {found}")
    return lines
