"""``mlops-nb export``: thin glue over ``mlops_nb.serving.export``."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from mlops_nb.cli import handle_errors


@click.command("export")
@click.argument("model_uri")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the serving package (created; must be missing or empty).",
)
@click.option("--force", is_flag=True, help="Replace --out when it exists and is not empty.")
@click.option(
    "--trust",
    multiple=True,
    metavar="TYPE",
    help="A type of the skops model file to trust when loading it (repeatable). Trust never comes from the model's "
    "own files: skops' defaults and inert scikit-learn/numpy/scipy classes are trusted, every other type needs this.",
)
@click.option(
    "--allow-unsafe",
    multiple=True,
    metavar="TYPE",
    help="A type that can run code when loaded (os.system, builtins.eval ...), refused even with --trust: load "
    "it all the same (repeatable; only for a file you know why it holds it).",
)
@click.option(
    "--allow-pickle",
    is_flag=True,
    help="Convert a pickle/cloudpickle model to skops (loads the pickle here: only for a model you trust).",
)
@handle_errors
def export(
    model_uri: str, out: Path, force: bool, trust: tuple[str, ...], allow_unsafe: tuple[str, ...], allow_pickle: bool
) -> None:
    """Generate a standalone FastAPI serving package for MODEL_URI.

    MODEL_URI is models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/PATH. Start the package with
    `python -m app --port 8080` in --out; it needs neither mlops-nb nor MLflow.
    """
    from mlops_nb.serving import export as export_package

    result = export_package(
        model_uri, out, force=force, trust=trust, allow_unsafe=allow_unsafe, allow_pickle=allow_pickle
    )
    ref = result.ref
    what = f"{ref.name} version {ref.version}" if ref.name else ref.uri
    click.echo(f"Exported {what} (run {ref.run_id}) to {result.out}")
    click.echo(f"  model file: skops, sha256 {result.sha256}")
    if result.converted_from:
        click.echo(f"  converted from {result.converted_from} to skops at export")
    if result.trusted_types:
        click.echo(f"  trusted types beyond skops' defaults: {', '.join(result.trusted_types)}")
    click.echo(
        f"Start it in an environment of its own: cd {shlex.quote(str(result.out))} && python3 -m venv .venv && "
        ".venv/bin/pip install -r requirements.txt && .venv/bin/python -m app --port 8080"
    )
