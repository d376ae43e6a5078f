"""The MLflow side of an evaluation (``mnb.evaluate``, ``mlops-nb evaluate``): its metrics, files and tags in a
run, finding it again for the promotion gates, and the last evaluation on a model version.

In a run (a ``%%track`` stage, the notebook's run, or an ``evaluation`` run of ``mlops-nb evaluate``), an
evaluation named ``evaluation`` logs:

- metrics: the model's metrics under MLflow's names (``accuracy_score``, ``roc_auc`` ...), ``cv.NAME.mean``,
  ``cv.NAME.low``, ``cv.NAME.high``, ``worst_slice.NAME`` and, with a baseline, ``delta.NAME``,
  ``delta.NAME.low``, ``delta.NAME.high``; another name (``holdout``) prefixes them (``holdout.roc_auc``).
  Inside a stage they roll up onto the notebook or job run like every metric, so gates see them there;
- artifacts under ``NAME/``: ``result.json``, ``report.html`` and ``plots/<plot>.vl.json`` (Vega-Lite);
- the tag ``mlops_nb.evaluation``: the names of the evaluations the run logged.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypedDict

from mlops_nb.config import Settings, load_settings
from mlops_nb.exceptions import StoreError, UsageError
from mlops_nb.tracking import tags
from mlops_nb.tracking.errors import map_mlflow_errors

DEFAULT_NAME = "evaluation"
RESULT_FILE = "result.json"
REPORT_FILE = "report.html"
PLOTS = "plots"
MAX_REPORT = 20 * 2**20  # bytes of a report read back (ours are tens of KB)
_names: dict[str, list[str]] = {}  # run key -> evaluation names logged in it by this process


def prefix(name: str) -> str:
    return "" if name == DEFAULT_NAME else f"{name}."


def metrics_of(result: dict[str, Any]) -> dict[str, float]:
    """The evaluation's metrics as logged (see the module's docstring)."""
    p = prefix(result["name"])
    found = {p + name: float(value) for name, value in result["metrics"].items()}
    for name, summary in (result.get("cv") or {}).items():
        found.update({f"{p}cv.{name}.{k}": float(summary[k]) for k in ("mean", "low", "high")})
    found.update({f"{p}worst_slice.{name}": float(v) for name, v in (result.get("worst_slice") or {}).items()})
    for name, delta in ((result.get("baseline") or {}).get("deltas") or {}).items():
        found[f"{p}delta.{name}"] = float(delta["delta"])
        found[f"{p}delta.{name}.low"] = float(delta["low"])
        found[f"{p}delta.{name}.high"] = float(delta["high"])
    return found


def record(run: Any, result: dict[str, Any], report: str, specs: dict[str, dict[str, Any]]) -> None:
    """Log the evaluation into the open ``run`` (an ``mlops_nb.tracking.runs.Run``)."""
    name = result["name"]
    names = _names.setdefault(run.key, [])
    run.log_metrics(metrics_of(result))
    run.log_text(json.dumps(result, indent=2) + "\n", f"{name}/{RESULT_FILE}")
    run.log_text(report, f"{name}/{REPORT_FILE}")
    for plot, spec in specs.items():
        run.log_text(json.dumps(spec), f"{name}/{PLOTS}/{plot}.vl.json")
    if name not in names:  # evaluated again (a cell run twice): the same files, the metrics' latest values
        names.append(name)
    run.set_tag(tags.EVALUATION, ",".join(names))


def open_evaluation_run(model_label: str, model_run_id: str | None, settings: Settings | None = None) -> Any:
    """A top-level ``evaluation`` run for ``mlops-nb evaluate`` of a logged model, in the experiment of the run
    that logged it (``mlops_nb.model`` = ``NAME/VERSION`` or the ``runs:/`` URI). End it with ``run.end()``."""
    from mlops_nb.tracking.runs import default_experiment, open_run

    s = settings or load_settings()
    experiment = None
    if model_run_id:
        from mlops_nb.tracking.query import client

        c = client(s)
        with map_mlflow_errors(f"reading run {model_run_id}", fix="Check the model URI.", uri=s.tracking_uri):
            experiment = c.get_experiment(c.get_run(model_run_id).info.experiment_id).name
    return open_run(
        f"evaluate {model_label}"[:250],
        experiment=experiment or default_experiment(),
        kind="evaluation",
        tags={tags.MODEL: model_label},
    )


def _read_result(run_id: str, name: str, s: Settings) -> dict[str, Any]:
    """The ``result.json`` of evaluation ``name`` in run ``run_id``.

    Raises:
        StoreError: it is not (yet) in MLflow, or it is no JSON object.
    """
    from mlops_nb.tracking import query

    with tempfile.TemporaryDirectory(prefix="mlops-nb-evaluation-") as tmp:
        path = query.download_artifacts(run_id, f"{name}/{RESULT_FILE}", Path(tmp), s)
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise StoreError(f"{name}/{RESULT_FILE} of run {run_id} cannot be read: {e}") from e
    if not isinstance(result, dict):
        raise StoreError(f"{name}/{RESULT_FILE} of run {run_id} is not a JSON object")
    result["run_id"] = run_id  # a job's kernel journals without knowing the id
    return result


def _names_of(run: dict[str, Any]) -> list[str]:
    return [n for n in run["tags"].get(tags.EVALUATION, "").split(",") if n]


def find_result(run_id: str, name: str = DEFAULT_NAME, settings: Settings | None = None) -> dict[str, Any] | None:
    """The result of the evaluation ``name`` logged in run ``run_id`` or, the latest first, in one of its
    finished stages; None when there is none."""
    from mlops_nb.tracking import reading

    s = settings or load_settings()
    run = reading.get_run(run_id, s)
    candidates = [run, *reversed([r for r in reading.child_runs(run_id, s) if r["status"] == "FINISHED"])]
    for candidate in candidates:
        if name not in _names_of(candidate):
            continue
        try:
            return _read_result(candidate["run_id"], name, s)
        except StoreError:
            continue  # its artifact is not (yet) in MLflow: an older stage may have one
    return None


class Logged(TypedDict):
    """An evaluation a run names in its ``mlops_nb.evaluation`` tag: where, and its result or why there is none."""

    name: str
    run_id: str  # the run whose artifacts hold it: the run, a stage, or the run a cache-hit stage came from
    stage: str | None  # None: the run itself
    report: str  # the artifact path of its HTML report in that run
    result: dict[str, Any] | None
    error: str | None


def results_in(run_id: str, settings: Settings | None = None) -> list[Logged]:
    """Every evaluation logged in run ``run_id`` and in its stages (not a sweep's jobs), the run's own first,
    then its stages oldest first. A cache-hit stage's evaluations are read from the run it came from. One whose
    result cannot be read is listed with the reason, never left out."""
    from mlops_nb.tracking import reading

    s = settings or load_settings()
    run = reading.get_run(run_id, s)
    holders: list[tuple[dict[str, Any], str | None]] = [(dict(run), None)]
    for child in reading.child_runs(run["run_id"], s):
        if child["tags"].get(tags.KIND) != "stage":
            continue  # a sweep's jobs, a study's trials: each shows its own (and there may be thousands)
        stage, source = child["tags"].get(tags.STAGE) or child["name"], child["tags"].get(tags.CACHE_SOURCE)
        holder: dict[str, Any] = dict(child)
        if not _names_of(child) and child["tags"].get(tags.CACHE_HIT) == "true" and source:
            try:
                holder = dict(reading.get_run(source, s))
            except (UsageError, StoreError):
                continue  # the cache's source run is gone: the stage says so itself (its cache_source_run)
        holders.append((holder, stage))
    found: list[Logged] = []
    for holder, stage in holders:
        for name in _names_of(holder):
            logged: Logged = {
                "name": name,
                "run_id": holder["run_id"],
                "stage": stage,
                "report": f"{name}/{REPORT_FILE}",
                "result": None,
                "error": None,
            }
            try:
                logged["result"] = _read_result(holder["run_id"], name, s)
            except StoreError as e:
                logged["error"] = f"its {name}/{RESULT_FILE} is not in MLflow ({str(e)[:200]})"
            found.append(logged)
    return found


def read_report(run_id: str, name: str = DEFAULT_NAME, settings: Settings | None = None) -> str:
    """The HTML report of evaluation ``name`` logged in run ``run_id`` (at most ``MAX_REPORT`` bytes).

    Raises:
        UsageError: the run logged no evaluation ``name``.
        StoreError: its report is not in MLflow, or too large.
    """
    from mlops_nb.tracking import query, reading

    s = settings or load_settings()
    run = reading.get_run(run_id, s)
    if name not in _names_of(run):
        logged = ", ".join(_names_of(run)) or "none"
        raise UsageError(f"Run {run['run_id']} logged no evaluation {name!r} (it logged: {logged}).")
    with tempfile.TemporaryDirectory(prefix="mlops-nb-evaluation-") as tmp:
        path = query.download_artifacts(run["run_id"], f"{name}/{REPORT_FILE}", Path(tmp), s)
        if path.stat().st_size > MAX_REPORT:
            raise StoreError(f"{name}/{REPORT_FILE} of run {run['run_id']} is over {MAX_REPORT // 2**20} MB")
        return path.read_text(encoding="utf-8", errors="replace")


def tag_last(name: str, version: str, summary: dict[str, Any], settings: Settings | None = None) -> None:
    """Put ``summary`` (JSON, with the time) on model version ``name``/``version`` as ``mlops_nb.evaluation.last``."""
    from mlops_nb.tracking.query import client

    s = settings or load_settings()
    stamped = {**summary, "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with map_mlflow_errors(f"tagging {name}/{version}", fix="Check the model URI.", uri=s.tracking_uri):
        client(s).set_model_version_tag(name, version, tags.EVALUATION_LAST, json.dumps(stamped)[:5000])
