"""Evaluations end to end: ``mnb.evaluate`` (:func:`evaluate`) and ``mlops-nb evaluate`` (:func:`evaluate_uri`).

Both compute with :func:`mlops_nb.evaluation.report.evaluate_model` and record through
``mlops_nb.tracking.evaluations``. A baseline named by a URI or an alias (``champion``) is resolved once to
its version and loaded as ``mlops-nb export`` loads models (skops, inert types only, never a pickle).
``mnb.evaluate`` records into the current run (the ``%%track`` stage, else the notebook's run);
``mlops-nb evaluate`` into an ``evaluation`` run of its own, in the experiment of the run that logged the model,
and tags the model version with the result (``mlops_nb.evaluation.last``).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_nb.evaluation.report import Evaluation, evaluate_model
from mlops_nb.exceptions import UsageError

if TYPE_CHECKING:
    from mlops_nb.config import Settings
    from mlops_nb.evaluation.summary import EvaluationDiff, Headline

_ALIAS = re.compile(r"^[\w-]+$")


def _resolve_baseline(baseline: Any, registered_model: str | None, tmp: Path) -> tuple[Any, str | None, str | None]:
    """(the baseline model or None, its label, why there is none): a fitted model is used as it is; a URI or
    an alias of ``registered_model`` is pinned to its version and loaded. An alias no version has yet (the
    first promotion) is no baseline, with the reason."""
    if baseline is None:
        return None, None, None
    if not isinstance(baseline, str):
        if not callable(getattr(baseline, "predict", None)):
            raise UsageError(
                f"baseline={type(baseline).__name__}: give a fitted model, a model URI (models:/NAME@ALIAS, "
                "runs:/RUN_ID/model) or an alias of registered_model (baseline='champion')."
            )
        return baseline, f"baseline {type(baseline).__name__}", None
    uri = baseline
    if not baseline.startswith(("models:/", "runs:/")):
        if not _ALIAS.match(baseline):
            raise UsageError(f"baseline={baseline!r} is neither a model URI nor an alias such as 'champion'.")
        if not registered_model:
            raise UsageError(
                f"baseline={baseline!r} is an alias: say of which registered model, "
                f"mnb.evaluate(..., registered_model='churn') or baseline='models:/churn@{baseline}'."
            )
        uri = f"models:/{registered_model}@{baseline}"
        from mlops_nb.tracking.reading import model_version

        try:
            version = model_version(uri)
        except UsageError as e:
            return None, uri, f"no baseline: {uri} does not resolve ({str(e)[:200]})"
        uri = f"models:/{version['name']}/{version['version']}"
    elif baseline.startswith("models:/") and "@" in baseline:
        from mlops_nb.tracking.reading import model_version

        version = model_version(baseline)
        uri = f"models:/{version['name']}/{version['version']}"
    from mlops_nb.loading.model import TrustedModels

    return TrustedModels(tmp / "baseline").get(uri), uri, None


def evaluate(
    model: Any,
    X: Any,
    y: Any,
    *,
    slices: list[str] | None = None,
    baseline: Any = None,
    cv: Any = None,
    explain: bool = True,
    name: str = "evaluation",
    registered_model: str | None = None,
    min_support: int | None = None,
    record: bool = True,
) -> Evaluation:
    """``mnb.evaluate``: evaluate ``model`` on ``X``, ``y`` and record it into the current run.

    Args:
        model: a fitted scikit-learn classifier or regressor (or a pipeline ending in one).
        X, y: labelled rows: a DataFrame (or array) and one label per row.
        slices: declared slices: column names, ``"col:quantile(4)"``.
        baseline: a fitted model, a model URI, or an alias of ``registered_model`` (``"champion"``).
        cv: folds of cross-validation on ``X``, ``y`` (clones refitted), or a scikit-learn splitter.
        explain: SHAP values (with ``mlops-nb[explain]``) and permutation importance.
        name: the evaluation's name: its metrics' prefix (none for ``evaluation``) and artifact folder.
        registered_model: the registered model whose alias ``baseline`` names.
        min_support: the fewest rows of a found worst segment (default 5% of the rows, at least 20).
        record: log it into the current run (a ``%%track`` stage, or the notebook's own run).

    Raises:
        UsageError: bad input (the message names the fix).
    """
    from mlops_nb.tracking.evaluations import DEFAULT_NAME

    check_name(name or DEFAULT_NAME)
    with tempfile.TemporaryDirectory(prefix="mlops-nb-evaluate-") as tmp:
        base, label, missing = _resolve_baseline(baseline, registered_model, Path(tmp))
        evaluation = evaluate_model(
            model,
            X,
            y,
            slices=slices,
            baseline=base,
            baseline_label=label or "baseline",
            cv=cv,
            explain=explain,
            name=name,
            min_support=min_support,
        )
    if missing:
        evaluation.result["skipped"].append({"part": "baseline", "reason": missing})
    if record:
        from mlops_nb.tracking.runs import current_run

        _record(current_run(), evaluation)
    return evaluation


def check_name(name: str) -> None:
    """An evaluation's name: its metrics' prefix and artifact folder.

    Raises:
        UsageError: not 1-64 letters, digits, '_' or '-'.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise UsageError(f"name={name!r}: an evaluation's name is 1-64 letters, digits, '_' or '-', e.g. 'holdout'.")


def _record(run: Any, evaluation: Evaluation) -> None:
    from mlops_nb.exceptions import TrackingError
    from mlops_nb.tracking import evaluations

    try:
        evaluation.result["run_id"] = run.run_id
    except TrackingError:  # a job's kernel only journals: the process that sends its runs knows their ids
        evaluation.result["run_id"] = None
    specs = {chart.name: chart.spec() for chart in evaluation.charts}
    evaluations.record(run, dict(evaluation.result), evaluation.html(page=True), specs)


def read_data(path: str | Path, label: str) -> tuple[Any, Any]:
    """(X, y) from a CSV, Parquet or JSON lines file (or folder, glob): every column but ``label``, and it.

    Raises:
        UsageError: no such data, or no column ``label`` (the message lists the columns).
    """
    import pyarrow as pa

    from mlops_nb.monitoring import data as data_io

    tables = list(data_io.chunks(path))
    if not tables:
        raise UsageError(f"--data {path}: no rows. Give labelled rows to evaluate on.")
    frame = pa.concat_tables(tables).to_pandas()
    if label not in frame.columns:
        columns = ", ".join(map(str, list(frame.columns)[:30]))
        raise UsageError(f"--label {label}: --data {path} has no such column (columns: {columns}). Name the labels.")
    return frame.drop(columns=[label]), frame[label]


def _inputs(model: Any, X: Any, model_uri: str) -> Any:
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return X
    missing = [str(n) for n in names if n not in X.columns]
    if missing:
        raise UsageError(
            f"--data lacks input columns of {model_uri}: {', '.join(missing[:10])}. Give rows with every column "
            "the model was trained on."
        )
    return X[list(names)]


def evaluate_uri(
    model_uri: str,
    *,
    data: str | Path,
    label: str,
    slices: list[str] | None = None,
    baseline: str | None = None,
    cv: int | None = None,
    explain: bool = True,
    json_out: str | Path | None = None,
    report: str | Path | None = None,
) -> Evaluation:
    """``mlops-nb evaluate``: evaluate the logged model ``model_uri`` on ``data``, as an ``evaluation`` run.

    ``baseline``: an alias of the same registered model (``champion``) or a model URI.

    Raises:
        UsageError: a bad URI, data, column, slice or baseline (the message names the fix).
    """
    from mlops_nb.loading.model import TrustedModels
    from mlops_nb.tracking import evaluations, monitor_runs

    for path, option in ((json_out, "--json"), (report, "--report")):
        if path not in (None, "-") and not Path(path).parent.is_dir():
            raise UsageError(f"{option} {path}: its folder does not exist. Give a path in an existing folder.")
    X, y = read_data(data, label)
    model = monitor_runs.resolve(model_uri)
    if baseline is not None and not baseline.startswith(("models:/", "runs:/")) and not model.name:
        raise UsageError(
            f"--baseline {baseline}: {model_uri} is not a registered version, so it has no alias {baseline!r}. "
            "Give the baseline's URI (models:/NAME@ALIAS), or evaluate the registered version."
        )
    pinned = f"models:/{model.name}/{model.version}" if model.name else model.uri
    with tempfile.TemporaryDirectory(prefix="mlops-nb-evaluate-") as tmp:
        fitted = TrustedModels(Path(tmp) / "model").get(pinned)
        base, base_label, missing = _resolve_baseline(baseline, model.name, Path(tmp))
        if baseline is not None and missing:
            raise UsageError(f"--baseline {baseline}: {missing}. Promote a version there first, or leave it out.")
        evaluation = evaluate_model(
            fitted,
            _inputs(fitted, X, model_uri),
            y,
            slices=slices,
            baseline=base,
            baseline_label=base_label or "baseline",
            cv=cv,
            explain=explain,
            label=pinned,
        )
    run = evaluations.open_evaluation_run(model.label, model.run_id)
    try:
        _record(run, evaluation)
    except BaseException as e:
        run.end("FAILED", e)
        raise
    run.end("FINISHED")
    monitor_runs.flush()
    if model.name and model.version:
        metrics = evaluation.result["metrics"]
        evaluations.tag_last(model.name, model.version, {"run_id": evaluation.result["run_id"], "metrics": metrics})
    if json_out not in (None, "-"):
        Path(json_out).write_text(json.dumps(evaluation.result, indent=2) + "\n", encoding="utf-8")
    if report:
        Path(report).write_text(evaluation.html(page=True), encoding="utf-8")
    return evaluation


def run_evaluations(run_id: str, settings: Settings | None = None) -> list[Headline]:
    """``mlops-nb show`` and the sidebar: the headline of every evaluation logged in run ``run_id`` and its
    stages (``evaluation.summary.Headline``), the run's own first, then its stages oldest first.

    Raises:
        UsageError: no such run.
    """
    from mlops_nb.evaluation import summary
    from mlops_nb.tracking.evaluations import results_in

    headlines: list[Headline] = []
    for logged in results_in(run_id, settings):
        where = {"run_id": logged["run_id"], "stage": logged["stage"], "report": logged["report"]}
        if logged["result"] is None:
            headlines.append(summary.unreadable(logged["name"], reason=logged["error"] or "unreadable", **where))
        else:
            headlines.append(summary.headline(logged["result"], **where))
    return headlines


def diff_evaluations(run_a: str, run_b: str, settings: Settings | None = None) -> list[EvaluationDiff]:
    """``mlops-nb diff``: the evaluations of two runs side by side (``evaluation.summary.EvaluationDiff``)."""
    from mlops_nb.evaluation import summary

    return summary.compare(run_evaluations(run_a, settings), run_evaluations(run_b, settings))
