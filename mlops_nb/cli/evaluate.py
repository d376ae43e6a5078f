"""``mlops-nb evaluate``: parses the options, calls ``mlops_nb.jobs.evaluate.evaluate_uri``, prints the result."""

from __future__ import annotations

import json

import click

from mlops_nb.cli import handle_errors


@click.command()
@click.argument("model_uri")
@click.option("--data", required=True, metavar="PATH", help="Labelled rows: a CSV, Parquet or JSON lines file.")
@click.option("--label", required=True, metavar="COL", help="The column of true labels in --data.")
@click.option(
    "--slices",
    "slices",
    multiple=True,
    metavar="SPEC",
    help="A declared slice: a column (one slice per value) or COL:quantile(K). Repeatable; commas also separate.",
)
@click.option(
    "--baseline",
    metavar="ALIAS|URI",
    help="Compare with this model on the same rows (paired bootstrap): an alias of the same registered model "
    "(champion) or a model URI.",
)
@click.option("--cv", type=click.IntRange(min=2), metavar="K", help="Also K-fold cross-validation on --data.")
@click.option("--no-explain", is_flag=True, help="Leave out SHAP values and permutation importance.")
@click.option("--json", "json_out", metavar="FILE", help="Write the result as JSON to FILE ('-': stdout).")
@click.option("--report", metavar="FILE.html", help="Write the HTML report (one self-contained file) to FILE.html.")
@handle_errors
def evaluate(
    model_uri: str,
    data: str,
    label: str,
    slices: tuple[str, ...],
    baseline: str | None,
    cv: int | None,
    no_explain: bool,
    json_out: str | None,
    report: str | None,
) -> None:
    """Evaluate MODEL_URI (models:/NAME/VERSION, models:/NAME@ALIAS, runs:/RUN_ID/model) on labelled --data.

    Records an MLflow run (mlops_nb.kind = evaluation) with the metrics under MLflow's names, the plots,
    evaluation/result.json and evaluation/report.html, and tags the model version with the result.
    Exit 0; 2 on bad input.
    """
    from mlops_nb.jobs.evaluate import evaluate_uri

    declared = [part.strip() for spec in slices for part in spec.split(",") if part.strip()]
    evaluation = evaluate_uri(
        model_uri,
        data=data,
        label=label,
        slices=declared or None,
        baseline=baseline,
        cv=cv,
        explain=not no_explain,
        json_out=json_out,
        report=report,
    )
    result = evaluation.result
    if json_out == "-":
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{result['model']}: {result['task']}, {result['rows']} rows, run {result['run_id']}")
    deltas = (result["baseline"] or {}).get("deltas") or {}
    for name, value in result["metrics"].items():
        delta = deltas.get(name)
        versus = f"  ({delta['delta']:+.4g} [{delta['low']:+.4g}, {delta['high']:+.4g}] vs baseline)" if delta else ""
        click.echo(f"  {name:<34} {value:.6g}{versus}")
    for skipped in result["skipped"]:
        click.echo(f"  not computed: {skipped['part']}: {skipped['reason']}", err=True)
