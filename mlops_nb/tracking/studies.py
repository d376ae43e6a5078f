"""Reading a study (``mlops-nb tune``) back from MLflow: its trials, and the run of its best trial.

A study may span several study runs (one per ``mlops-nb tune`` that worked on it, a resumed one naming the
one before in ``mlops_nb.study.resumes``); its trials are the ``job`` runs tagged with its name.
"""

from __future__ import annotations

from typing import TypedDict

from mlops_nb.config import Settings, load_settings
from mlops_nb.exceptions import UsageError
from mlops_nb.tracking import tags
from mlops_nb.tracking._client import client as _client
from mlops_nb.tracking.errors import map_mlflow_errors

_FIX = "Check the study run id or name (mlops-nb runs --kind study lists them) and MLFLOW_TRACKING_URI."


class TrialSummary(TypedDict):
    """One trial of a study, as ``mlops-nb show STUDY_RUN`` lists it."""

    trial: int
    state: str | None  # COMPLETE | PRUNED | FAIL; None for a trial whose process died (it was re-run)
    status: str  # the job run's MLflow status
    value: float | None  # the study's metric
    params: dict[str, str]
    best: bool
    run_id: str


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def study_trials(run_id: str, settings: Settings | None = None) -> list[TrialSummary]:
    """Every trial of the study that run ``run_id`` worked on (also those of its earlier runs), by number."""
    s = settings or load_settings()
    client = _client(s)
    with map_mlflow_errors(f"No run {run_id!r}", fix=_FIX, uri=s.tracking_uri):
        run = client.get_run(run_id)
    name = run.data.tags.get(tags.STUDY)
    if run.data.tags.get(tags.KIND) != "study" or not name:
        raise UsageError(f"Run {run_id} is not a study run (mlops-nb tune prints one; mlops-nb runs --kind study).")
    metric = run.data.params.get("metric", "")
    with map_mlflow_errors(f"reading the trials of study {name!r}", fix=_FIX, uri=s.tracking_uri):
        found = client.search_runs(
            [run.info.experiment_id],
            filter_string=f"tags.`{tags.STUDY}` = '{_quote(name)}' and tags.`{tags.KIND}` = 'job'",
            max_results=50_000,
        )
    trials = [
        TrialSummary(
            trial=int(r.data.tags.get(tags.TRIAL, -1)),
            state=r.data.tags.get(tags.TRIAL_STATE),
            status=r.info.status,
            value=r.data.metrics.get(metric) if r.data.tags.get(tags.TRIAL_STATE) == "COMPLETE" else None,
            params=dict(r.data.params),
            best=r.data.tags.get(tags.BEST) == "true",
            run_id=r.info.run_id,
        )
        for r in found
    ]
    return sorted(trials, key=lambda t: (t["trial"], t["run_id"]))


def best_trial_run(study: str, settings: Settings | None = None) -> str:
    """The job run of the best trial of ``study`` (a study run id, or a study's name: its latest run)."""
    s = settings or load_settings()
    client = _client(s)
    with map_mlflow_errors(f"looking for study {study!r}", fix=_FIX, uri=s.tracking_uri):
        experiments = [e.experiment_id for e in client.search_experiments(max_results=1000)]
        found = client.search_runs(
            experiments,
            filter_string=f"tags.`{tags.STUDY}` = '{_quote(study)}' and tags.`{tags.KIND}` = 'study'",
            max_results=50,
            order_by=["attributes.start_time DESC"],
        )
        if not found and len(study) == 32 and study.isalnum():
            found = [r for r in client.search_runs(experiments, f"attributes.run_id = '{study}'") if r]
    if not found:
        raise UsageError(f"No study {study!r}: give a study run id or a study's name. {_FIX}")
    for run in found:
        if run.data.tags.get(tags.KIND) != "study":
            raise UsageError(f"Run {study} is a {run.data.tags.get(tags.KIND) or 'plain'} run, not a study run.")
        best = run.data.tags.get(tags.STUDY_BEST)
        if best:
            return best
    raise UsageError(
        f"Study {study!r} has no complete trial yet, so no best trial to promote. Run mlops-nb tune on it first."
    )
