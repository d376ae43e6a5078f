"""``mlops-nb monitor``: parses the options, calls ``mlops_nb.monitoring.monitor``, reports and sets the exit code."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from mlops_nb import exit_codes
from mlops_nb.cli import handle_errors
from mlops_nb.exceptions import UsageError


@click.command()
@click.argument("model_uri", required=False)
@click.option(
    "--reference",
    metavar="PATH",
    required=True,
    help="The training data (CSV, Parquet, JSON lines: a file, folder or glob) or its reference_profile.json.",
)
@click.option("--data", "data", metavar="PATH", required=True, help="The data to check: a file, a folder or a glob.")
@click.option("--json", "json_out", metavar="FILE", help="Also write the result as JSON to FILE ('-': stdout only).")
@click.option("--fail-on-drift", is_flag=True, help="Exit 3 when the dataset drifts.")
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
    reference: str,
    data: str,
    json_out: str | None,
    fail_on_drift: bool,
    preset: str,
    sample_rows: int,
) -> None:
    """Check DATA against the training reference: data problems and drift, per feature and for the dataset.

    MODEL_URI (the reference stored with a registered model) is not supported yet: give --reference.

    Exit status: 0 done (drift or not); 3 the dataset drifted and --fail-on-drift was given; 2 bad input
    (unreadable data, unknown option values), with a message naming the fix.
    """
    if model_uri is not None:
        raise UsageError(
            f"Monitoring a registered model ({model_uri}) is not there yet: pass --reference with the training data "
            "or its reference_profile.json, and no MODEL_URI."
        )
    from mlops_nb.monitoring import data as data_io
    from mlops_nb.monitoring import report
    from mlops_nb.monitoring.monitor import load_reference
    from mlops_nb.monitoring.monitor import monitor as run_monitor

    ref = load_reference(reference, sample_rows)
    result = run_monitor(ref, data_io.chunks(data), preset_name=preset, sample_rows=sample_rows)
    text = json.dumps(result, indent=2)
    if json_out == "-":
        click.echo(text)
    else:
        if json_out:
            try:
                Path(json_out).write_text(text + "\n")
            except OSError as e:
                raise UsageError(f"--json {json_out}: cannot write it ({e.strerror}). Give a writable path.") from e
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        click.echo(report.text(result, color=color), color=color)
    if fail_on_drift and result["dataset_drift"]:
        raise click.exceptions.Exit(exit_codes.DRIFT)
