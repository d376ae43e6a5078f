"""``mlops-nb runs / show / diff / lineage``: what was recorded, as tables on a terminal or ``--json``.

Glue only: the records come from ``tracking.reading`` and ``tracking.diff``; this module formats them.
Colour goes to terminals only (click drops it elsewhere). Every text from the store is shown with its control
characters escaped (``_shown``): a run name from a shared store is data, never a terminal command.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import click

from mlops_nb.cli import handle_errors

HEADLINE = 4  # params and metrics shown as columns of `runs`
# C0 and C1 controls (ESC, CR, BEL...), and the invisible format characters that reorder or hide text
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _visible(text: str, keep: str = "") -> str:
    """``text`` with its control characters written as escapes (``\\x1b``, ``\\r``, ``\\u202e``), except ``keep``."""
    return _CONTROL.sub(lambda m: m[0] if m[0] in keep else m[0].encode("unicode_escape").decode(), text)


def _shown(value: Any) -> Any:
    """A record with every text in it (keys too) made ``_visible``, for a terminal."""
    if isinstance(value, str):
        return _visible(value)
    if isinstance(value, dict):
        return {_shown(k): _shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v) for v in value]
    return value


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M") if ms else ""


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _status(status: str) -> str:
    colour = {"FINISHED": "green", "FAILED": "red", "KILLED": "yellow", "RUNNING": "cyan"}.get(status)
    return click.style(status, fg=colour) if colour else status


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Columns aligned on their widest cell (styles do not count towards the width)."""
    widths = [max([len(click.unstyle(c)) for c in column], default=0) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(c + " " * (w - len(click.unstyle(c))) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([click.style(line(header), bold=True), *(line(r) for r in rows)])


def _dump(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("notebook", required=False)
@click.option("--experiment", help="Only this experiment's runs (default: every experiment).")
@click.option(
    "--kind",
    type=click.Choice(["notebook", "job", "sweep", "study", "script", "monitor", "evaluation"]),
    help="Only runs of this kind.",
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="How many runs.")
@click.option("--page-token", help="The next_page_token of a previous --json answer.")
@click.option("--json", "as_json", is_flag=True, help="Print {runs, next_page_token} as JSON.")
@handle_errors
def runs(
    notebook: str | None, experiment: str | None, kind: str | None, limit: int, page_token: str | None, as_json: bool
) -> None:
    """The runs of NOTEBOOK (or of every notebook), newest first, with their headline params and metrics."""
    from pathlib import Path

    from mlops_nb.exceptions import UsageError
    from mlops_nb.tracking import recorder
    from mlops_nb.tracking.reading import list_runs

    waiting = recorder.waiting_records()
    if waiting:  # a killed kernel's records, say: sent first, so that the list is complete
        click.echo(f"{waiting} records of processes that ended are not in MLflow yet: sending them...", err=True)
        recorder.send_waiting()
    page = list_runs(notebook, experiment=experiment, kind=kind, max_results=limit, page_token=page_token)
    if notebook and not page["runs"] and not page_token and not Path(notebook).exists():
        raise UsageError(
            f"No notebook {notebook!r} here (in {Path.cwd()}), and no recorded run's notebook path ends so. "
            "Check the path, or give the end of a recorded one (mlops-nb runs lists every run)."
        )
    if as_json:
        _dump(page)
        return
    if not page["runs"]:
        click.echo("No runs yet. Record some with %%track in a notebook, or mlops-nb run NOTEBOOK.", err=True)
        return
    page = _shown(page)
    params = list(dict.fromkeys(k for r in page["runs"] for k in r["params"]))[:HEADLINE]
    metrics = list(dict.fromkeys(k for r in page["runs"] for k in sorted(r["metrics"])))[:HEADLINE]
    header = ["run_id", "kind", "status", "started", "duration", "name", *params, *metrics]
    rows = [
        [
            r["run_id"],
            r["kind"] or "",
            _status(r["status"]),
            _when(r["start_time"]),
            f"{r['duration_s']:.1f}s" if r["duration_s"] is not None else "",
            (r["name"] or "")[:30],
            *(r["params"].get(p, "")[:20] for p in params),
            *(_num(r["metrics"].get(m)) for m in metrics),
        ]
        for r in page["runs"]
    ]
    click.echo(_table(header, rows))
    if page["next_page_token"]:
        click.echo(f"(more: --page-token {page['next_page_token']})", err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run and its stages as JSON.")
@handle_errors
def show(run_id: str, as_json: bool) -> None:
    """One run: its parameters, metrics and stages (status, duration, cache hit, metrics), and the headline of
    each evaluation it logged (mnb.evaluate, mlops-nb evaluate)."""
    from mlops_nb.jobs.evaluate import run_evaluations
    from mlops_nb.tracking.reading import run_detail

    detail: dict[str, Any] = dict(run_detail(run_id))
    if detail["kind"] == "study":
        from mlops_nb.tracking.studies import study_trials

        detail["trials"] = study_trials(run_id)
    detail["evaluations"] = run_evaluations(detail["run_id"])
    if as_json:
        _dump(detail)
        return
    detail = _shown(detail)
    if detail["deleted"]:
        click.echo(_deleted(detail["run_id"]), err=True)
    deleted = click.style(" DELETED", fg="red") if detail["deleted"] else ""
    click.echo(
        f"{click.style(detail['run_id'], bold=True)}  {detail['kind'] or 'run'} {detail['name'] or ''}  "
        f"{_status(detail['status'])}{deleted}  experiment {detail['experiment']!r}  "
        f"started {_when(detail['start_time'])}"
    )
    if detail["notebook"]:
        click.echo(f"notebook  {detail['notebook']}")
    if detail["params"]:
        click.echo("params    " + ", ".join(f"{k}={v}" for k, v in sorted(detail["params"].items())))
    if detail["metrics"]:
        click.echo("metrics   " + ", ".join(f"{k}={_num(v)}" for k, v in sorted(detail["metrics"].items())))
    if detail["stages"]:
        rows = [
            [
                s["stage"],
                _status(s["status"]),
                "hit" if s["cache_hit"] else "",
                _num(s["duration_s"]),
                ", ".join(f"{k}={_num(v)}" for k, v in sorted(s["metrics"].items()))[:60],
                s["run_id"],
            ]
            for s in detail["stages"]
        ]
        click.echo("")
        click.echo(_table(["stage", "status", "cache", "seconds", "metrics", "stage run"], rows))
    if detail.get("trials"):
        rows = [
            [
                str(t["trial"]),
                t["state"] or _status(t["status"]),
                _num(t["value"]) if t["value"] is not None else "",
                "best" if t["best"] else "",
                ", ".join(f"{k}={v}" for k, v in sorted(t["params"].items()))[:60],
                t["run_id"],
            ]
            for t in detail["trials"]
        ]
        click.echo("")
        metric = detail["params"].get("metric", "value")
        click.echo(_table(["trial", "state", metric, "", "params", "job run"], rows))
    for evaluation in detail["evaluations"]:
        click.echo("")
        _show_evaluation(evaluation)


def _interval(i: dict[str, float] | None) -> str:
    return f"[{_num(i['low'])}, {_num(i['high'])}]" if i else ""


def _show_evaluation(e: dict[str, Any]) -> None:
    """An evaluation's headline: metrics with intervals, CV, the worst slices, the baseline's deltas, what was
    skipped, and where its report is."""
    where = f"stage {e['stage']}" if e["stage"] else "this run"
    click.echo(click.style(f"evaluation {e['name']}", bold=True) + f"  ({where}, run {e['run_id']})")
    if e["error"]:
        click.echo(click.style(f"  not readable: {e['error']}", fg="yellow"))
        return
    click.echo(f"  {e['model']}: {e['task']}, {e['rows']} rows")
    cv, base = e["cv"] or {}, e["baseline"]
    header = ["metric", "value", "95% interval"] + (["cv mean [interval]"] if cv else [])
    if base:
        header += [f"vs {base['model']}"[:40], "paired interval"]
    rows = []
    for name, value in e["metrics"].items():
        row = [name, _num(value), _interval(e["intervals"].get(name))]
        if cv:
            c = cv.get(name)
            row.append(f"{_num(c['mean'])} {_interval(c)}" if c else "")
        if base:
            d = base["deltas"].get(name)
            row += [_delta(d["delta"], _lower_is_better(name)) if d else "", _interval(d)]
        rows.append(row)
    click.echo(_table(header, rows))
    primary = e["primary"]
    for s in e["worst_slices"]:
        value = f"{primary} {_num(s['metrics'].get(primary))} {_interval(s['intervals'].get(primary))}"
        click.echo(f"  worst slice: {s['slice']} ({s['rows']} rows): {value}")
    if not e["worst_slices"]:
        click.echo("  worst slice: none below the overall value")
    for skipped in e["skipped"]:
        click.echo(click.style(f"  skipped {skipped['part']}: {skipped['reason']}", fg="yellow"))
    click.echo(f"  report: {e['report']} (mlflow artifacts download -r {e['run_id']} -a {e['report']})")


def _deleted(run_id: str) -> str:
    return click.style(
        f"Run {run_id} is deleted: it is in MLflow's trash, and `mlflow gc` removes it for good. "
        f"`mlflow runs restore --run-id {run_id}` brings it back.",
        fg="yellow",
    )


def _arrow(a: Any, b: Any) -> str:
    return f"{'—' if a is None else a} → {'—' if b is None else b}"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_a")
@click.argument("run_b")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@handle_errors
def diff(run_a: str, run_b: str, as_json: bool) -> None:
    """Why RUN_B differs from RUN_A: params, metric deltas, and per stage what changed (code, the parameters it
    read, its input data) — the stage a change entered the pipeline at; and their evaluations' metric deltas
    with intervals (independent: for a paired interval evaluate one with the other as baseline)."""
    from mlops_nb.jobs.evaluate import diff_evaluations
    from mlops_nb.tracking.diff import diff_runs
    from mlops_nb.tracking.reading import run_detail, stage_code

    result: dict[str, Any] = dict(diff_runs(run_detail(run_a), run_detail(run_b), stage_code))
    result["evaluations"] = diff_evaluations(result["a"], result["b"])
    if as_json:
        _dump(result)
        return
    for run_id, deleted in zip((result["a"], result["b"]), result["deleted"], strict=True):
        if deleted:
            click.echo(_deleted(run_id), err=True)
    code = [s["code_diff"] for s in result["stages"]]  # shown line by line, tabs kept
    result = _shown(result)
    click.echo(f"a = {result['a']}\nb = {result['b']}")
    if result["params"]:
        click.echo(click.style("\nparams", bold=True))
        click.echo(_table(["name", "a → b"], [[k, _arrow(*v)] for k, v in result["params"].items()]))
    changed = {k: v for k, v in result["metrics"].items() if v[0] != v[1]}
    if changed:
        click.echo(click.style("\nmetrics", bold=True))
        rows = [[k, _arrow(_num(v[0]), _num(v[1])), _delta(v[2])] for k, v in changed.items()]
        click.echo(_table(["name", "a → b", "b - a"], rows))
    click.echo(click.style("\nstages", bold=True))
    for s, code_diff in zip(result["stages"], code, strict=True):
        click.echo(f"  {click.style(s['stage'], bold=True)}: {_stage_line(s)}")
        if code_diff:
            for line in (_visible(line, keep="\t") for line in code_diff.splitlines()):
                colour = "green" if line.startswith("+") else "red" if line.startswith("-") else None
                click.echo("      " + (click.style(line, fg=colour) if colour else line))
    for e in result["evaluations"]:
        _diff_evaluation(e)


def _diff_evaluation(e: dict[str, Any]) -> None:
    """An evaluation of both runs: metric deltas with the interval of the difference, CV means, worst slices."""
    click.echo(
        click.style(f"\nevaluation {e['name']}", bold=True) + ("" if e["in"] == "both" else f" (only in {e['in']})")
    )
    rows = []
    for name, (a, b, d) in e["metrics"].items():
        interval = e["deltas"].get(name)
        rows.append([name, _arrow(_num(a), _num(b)), _delta(d, _lower_is_better(name)), _interval(interval)])
    for part in ("cv", "worst_slice"):
        rows += [
            [f"{part}.{k}", _arrow(_num(a), _num(b)), _delta(d, _lower_is_better(k)), ""]
            for k, (a, b, d) in e[part].items()
        ]
    if rows:
        click.echo(_table(["name", "a → b", "b - a", "95% interval of b - a"], rows))


def _delta(value: float | None, lower_is_better: bool = False) -> str:
    if value is None:
        return ""
    better = -value if lower_is_better else value
    return click.style(f"{value:+.4g}", fg="green" if better > 0 else "red" if better < 0 else None)


def _lower_is_better(name: str) -> bool:
    from mlops_nb.evaluation.metrics import LOWER_IS_BETTER

    return name.rsplit(".", 1)[-1] in LOWER_IS_BETTER


def _stage_line(s: Any) -> str:
    from mlops_nb.tracking.diff import changes

    if s["in"] != "both":
        return changes(s)
    hits = ["hit" if h else "ran" for h in s["cache_hit"]]
    moved = [f"{k} {_num(v[0])} → {_num(v[1])}" for k, v in s["metrics"].items() if v[0] != v[1]]
    return "; ".join([changes(s), f"cache {hits[0]}/{hits[1]}", *moved])


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model_uri")
@click.option("--json", "as_json", is_flag=True, help="Print the lineage as JSON.")
@handle_errors
def lineage(model_uri: str, as_json: bool) -> None:
    """Where MODEL_URI (models:/NAME@ALIAS or models:/NAME/VERSION) comes from: version -> run -> stages ->
    notebook, git commit and inputs -> promotion evidence -> monitoring."""
    from mlops_nb.tracking.reading import lineage as read_lineage

    result = read_lineage(model_uri)
    if as_json:
        _dump(result)
        return
    result = _shown(result)
    m = result["model"]
    aliases = f" @{', @'.join(m['aliases'])}" if m["aliases"] else ""
    click.echo(
        f"{click.style(m['name'], bold=True)} version {m['version']}{aliases}  (registered {_when(m['creation_time'])})"
    )
    run = result["source_run"]
    if run is None:
        click.echo("  source run: unknown (registered outside mlops-nb promote)")
    else:
        click.echo(f"  ← run {run['run_id']} ({run['kind'] or 'run'} {run['name'] or ''}, {run['status']})")
        click.echo(f"    notebook {result['notebook'] or '?'}  git {result['git_commit'] or '?'}")
        for s in run["stages"]:
            inputs = ", ".join([*s["inputs"], *(f"file:{f}" for f in s["files"])])
            marker = " (cache hit)" if s["cache_hit"] else ""
            click.echo(f"    stage {s['stage']}{marker}  inputs: {inputs or '-'}")
    if result["model_run"]:
        click.echo(f"  model logged by run {result['model_run']}")
    if result["evidence"]:
        click.echo("  evidence:")
        for k, v in sorted(result["evidence"].items()):
            click.echo(f"    {k} = {v[:100]}")
    click.echo(
        f"  monitors: {len(result['monitors'])}"
        + "".join(f"\n    {r['run_id']} {_when(r['start_time'])} {r['status']}" for r in result["monitors"][:10])
    )
