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
from typing import Any

from mlops_nb.config import Settings, load_settings
from mlops_nb.exceptions import StoreError
from mlops_nb.tracking import tags
from mlops_nb.tracking.errors import map_mlflow_errors

DEFAULT_NAME = "evaluation"
RESULT_FILE = "result.json"
REPORT_FILE = "report.html"
PLOTS = "plots"
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


def find_result(run_id: str, name: str = DEFAULT_NAME, settings: Settings | None = None) -> dict[str, Any] | None:
    """The result of the evaluation ``name`` logged in run ``run_id`` or, the latest first, in one of its
    finished stages; None when there is none."""
    from mlops_nb.tracking import query, reading

    s = settings or load_settings()
    run = reading.get_run(run_id, s)
    candidates = [run, *reversed([r for r in reading.child_runs(run_id, s) if r["status"] == "FINISHED"])]
    for candidate in candidates:
        if name not in candidate["tags"].get(tags.EVALUATION, "").split(","):
            continue
        with tempfile.TemporaryDirectory(prefix="mlops-nb-evaluation-") as tmp:
            try:
                path = query.download_artifacts(candidate["run_id"], f"{name}/{RESULT_FILE}", Path(tmp), s)
                result = dict(json.loads(path.read_text()))
            except (StoreError, OSError, ValueError):
                continue  # its artifact is not (yet) in MLflow: an older stage may have one
        result["run_id"] = candidate["run_id"]  # a job's kernel journals without knowing the id
        return result
    return None


def tag_last(name: str, version: str, summary: dict[str, Any], settings: Settings | None = None) -> None:
    """Put ``summary`` (JSON, with the time) on model version ``name``/``version`` as ``mlops_nb.evaluation.last``."""
    from mlops_nb.tracking.query import client

    s = settings or load_settings()
    stamped = {**summary, "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with map_mlflow_errors(f"tagging {name}/{version}", fix="Check the model URI.", uri=s.tracking_uri):
        client(s).set_model_version_tag(name, version, tags.EVALUATION_LAST, json.dumps(stamped)[:5000])
