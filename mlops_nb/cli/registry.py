"""``mlops-nb promote``: parses the options, calls ``mlops_nb.registry.promote``, reports and sets the exit code."""

from __future__ import annotations

import click

from mlops_nb import exit_codes
from mlops_nb.cli import handle_errors
from mlops_nb.exceptions import UsageError


@click.command()
@click.argument("run_id", required=False)
@click.option(
    "--study",
    metavar="STUDY_RUN_OR_NAME",
    help="Promote the best trial of this study (mlops-nb tune's run id, or the study's name) instead of RUN_ID.",
)
@click.option(
    "--name", required=True, metavar="MODEL", help="Registered model to add the version to (created if missing)."
)
@click.option(
    "--alias", default="champion", show_default=True, help="Alias to move to the version if every gate holds."
)
@click.option(
    "--require",
    "requires",
    multiple=True,
    metavar='"METRIC OP VALUE"',
    help='A requirement on the run\'s metrics, e.g. "accuracy >= 0.9" (OP: >= > <= < == !=). Repeatable.',
)
@click.option(
    "--must-beat",
    metavar="ALIAS",
    help="The run must beat the version that has this alias, on --metric. Default: must_beat in "
    "[tool.mlops_nb.promote].",
)
@click.option("--no-must-beat", is_flag=True, help="Skip the must-beat gate that [tool.mlops_nb.promote] sets.")
@click.option(
    "--metric",
    metavar="M",
    help="The metric the run is compared on with the alias's version, and that --must-beat gates on. Default: "
    "metric in [tool.mlops_nb.promote], else the first --require's.",
)
@click.option(
    "--higher-is-better/--lower-is-better",
    default=None,
    help="Direction of --metric. Default: higher_is_better in [tool.mlops_nb.promote], else higher.",
)
@click.option("--model", metavar="NAME", help="The model to promote when the run logged several (NAME or STAGE/NAME).")
@handle_errors
def promote(
    run_id: str | None,
    study: str | None,
    name: str,
    alias: str,
    requires: tuple[str, ...],
    must_beat: str | None,
    no_must_beat: bool,
    metric: str | None,
    higher_is_better: bool | None,
    model: str | None,
) -> None:
    """Register RUN_ID's model as a new version of MODEL; move the alias to it only if every gate holds.

    RUN_ID is the job or notebook run (the one `mlops-nb run` prints): the model logged in one of its stages
    is found. With --study, the best trial of a `mlops-nb tune` study is promoted, through the same gates.
    Exit status: 0 promoted; 3 a gate refused it (nothing registered, the alias did not move, the evidence is
    in tags on RUN_ID); 2 bad input (nothing registered). When the alias already points at a version, the run
    is compared with it on the project's metric, with a warning when it is worse.
    """
    from mlops_nb.config import load_promote_settings
    from mlops_nb.registry.promote import promote as promote_run

    configured = load_promote_settings()
    if no_must_beat and must_beat:
        raise UsageError("--must-beat and --no-must-beat contradict each other: give one of them.")
    if (run_id is None) == (study is None):
        raise UsageError("Give either RUN_ID or --study STUDY (the best trial of a mlops-nb tune study), not both.")
    if study is not None:
        from mlops_nb.tracking.studies import best_trial_run

        run_id = best_trial_run(study)
        click.echo(f"The best trial of study {study!r} is run {run_id}.")
    assert run_id is not None
    result = promote_run(
        run_id,
        name,
        alias=alias,
        require=requires,
        must_beat=None if no_must_beat else must_beat or configured.must_beat,
        metric=metric or configured.metric,
        higher_is_better=configured.higher_is_better if higher_is_better is None else higher_is_better,
        model=model,
    )
    if result.promoted:
        click.echo(f"Registered {name} version {result.version} from {result.model.uri} ({result.model.label}).")
    for gate in result.gates:
        click.echo(f"  {'✓' if gate.ok else '✗'} {gate.message}")
    compared = result.comparison
    if compared is not None:
        click.echo(f"  against {name}@{alias}: {compared.message}")
    if result.promoted:
        was = f"version {result.previous_version}" if result.previous_version else "no version"
        click.echo(f"Promoted: {name}@{alias} -> version {result.version} (was {was}).")
        if compared is not None and compared.worse:
            click.echo(
                f"Warning: {name}@{alias} moved to a version with a worse {compared.metric} than version "
                f"{compared.version}'s. To refuse such promotions, pass --must-beat {alias} --metric "
                f'{compared.metric}, or set must_beat = "{alias}" in [tool.mlops_nb.promote].',
                err=True,
            )
        elif compared is None and result.previous_version:
            click.echo(
                f"Not compared with version {result.previous_version}: pass --metric M, or set metric in "
                "[tool.mlops_nb.promote].",
                err=True,
            )
        return
    state = f"version {result.alias_version}" if result.alias_version else "no version"
    click.echo(
        f"Refused by {', '.join(g.name for g in result.failed)}: {name}@{alias} did not move (it points to {state}); "
        f"nothing was registered. The evidence is on run {run_id} (tags mlops_nb.promotion.refused*)."
    )
    raise click.exceptions.Exit(exit_codes.REFUSED)
