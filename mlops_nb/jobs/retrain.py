"""The closed loop: on dataset drift, retrain (``mlops-nb run``) and promote through the gates (``mlops-nb promote``).

``retrain(result, loop, monitor_run_id=...)`` takes a monitoring result and the loop's settings
(:class:`~mlops_nb.config.RetrainSettings`, from ``[tool.mlops_nb.monitor.retrain]`` or the command line):

- no dataset drift: nothing starts;
- drift: the retraining notebook runs as one tracked job (:func:`mlops_nb.jobs.runner.run_job`), its run
  tagged ``mlops_nb.trigger`` = ``monitor:<monitor run id>``;
- the job succeeded: its model goes through the promotion gates (:func:`mlops_nb.registry.promote.promote`):
  requirements, must-beat. The alias moves only when every gate holds;
- a job that fails or cannot start, or a refused promotion, leaves the alias where it was, and the
  :class:`Retraining` says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_nb.config import RetrainSettings, Settings
from mlops_nb.exceptions import StoreError, UsageError
from mlops_nb.jobs.job import JobOptions, JobResult
from mlops_nb.tracking.tags import TRIGGER

if TYPE_CHECKING:
    from mlops_nb.registry.promote import Promotion

NO_DRIFT = "no_drift"
JOB_FAILED = "job_failed"
REFUSED = "refused"
PROMOTED = "promoted"


@dataclass
class Retraining:
    """What the loop did.

    Attributes:
        outcome: ``no_drift`` (nothing started), ``job_failed`` (the job failed or could not start: no
            promotion), ``refused`` (a gate held the alias, or the promotion could not be made), ``promoted``.
        message: why, in one sentence.
        trigger: the ``mlops_nb.trigger`` tag the job carries (``monitor:<run id>``).
        job: the retraining job, when one ran.
        promotion: the promotion and its gates, when one was tried and evaluated.
    """

    outcome: str
    message: str
    trigger: str
    job: JobResult | None = None
    promotion: Promotion | None = None

    @property
    def promoted(self) -> bool:
        return self.outcome == PROMOTED

    def summary(self) -> str:
        """The message, then the job's and the gates' lines."""
        lines = [self.message]
        if self.job is not None:
            lines.append(f"  job: {self.job.summary().splitlines()[0]}")
        if self.promotion is not None:
            lines.extend(f"  {'✓' if g.ok else '✗'} {g.name}: {g.message}" for g in self.promotion.gates)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """JSON for the monitoring result's ``retraining``."""
        promotion = self.promotion
        return {
            "outcome": self.outcome,
            "message": self.message,
            "trigger": self.trigger,
            "job_run_id": self.job.run_id if self.job else None,
            "job_outcome": self.job.outcome if self.job else None,
            "version": promotion.version if promotion else None,
            "alias": promotion.alias if promotion else None,
            "alias_version": promotion.alias_version if promotion else None,
            "gates": [{"name": g.name, "ok": g.ok, "message": g.message} for g in promotion.gates] if promotion else [],
        }


def retrain(
    result: Mapping[str, Any],
    loop: RetrainSettings,
    *,
    monitor_run_id: str | None,
    output: Path | None = None,
    settings: Settings | None = None,
) -> Retraining:
    """On ``result["dataset_drift"]``, run the retraining job and promote its model if every gate holds.

    Args:
        result: a monitoring result (``dataset_drift``, ``drift_share``).
        loop: the notebook, its parameters and the promotion gates.
        monitor_run_id: the monitor's MLflow run (the job's ``mlops_nb.trigger`` names it).
        output: where the executed notebook goes (default beside it).
        settings: where MLflow is (default: the settings in force).

    Returns:
        What was done, and why. Job failures and refused gates are outcomes, not exceptions.
    """
    from mlops_nb.jobs.runner import run_job
    from mlops_nb.registry.promote import promote

    trigger = f"monitor:{monitor_run_id or 'unrecorded'}"
    share = float(result.get("drift_share") or 0.0)
    keep = f"{loop.promote}@{loop.alias} stays where it was"
    if not result.get("dataset_drift"):
        return Retraining(NO_DRIFT, f"No dataset drift (drift share {share:.0%}): no retraining started.", trigger)
    try:
        job = run_job(
            loop.notebook,
            output=output,
            parameters=dict(loop.parameters),
            options=JobOptions(experiment=loop.experiment, tags={TRIGGER: trigger}),
            timeout=loop.timeout,
        )
    except UsageError as e:
        return Retraining(JOB_FAILED, f"The retraining job could not start: {e} {keep}.", trigger)
    if not job.ok:
        why = job.message or job.outcome
        return Retraining(JOB_FAILED, f"Retraining job {job.run_id} {job.outcome}: {why}. {keep}.", trigger, job)
    try:
        promotion = promote(
            job.run_id,
            loop.promote,
            alias=loop.alias,
            require=loop.require,
            must_beat=loop.must_beat,
            metric=loop.metric,
            higher_is_better=loop.higher_is_better,
            settings=settings,
        )
    except (UsageError, StoreError) as e:
        return Retraining(REFUSED, f"The model of job {job.run_id} cannot be promoted: {e} {keep}.", trigger, job)
    if not promotion.promoted:
        refused = next((g for g in promotion.gates if not g.ok), None)
        where = f"version {promotion.alias_version}" if promotion.alias_version else "no version"
        because = f"{refused.name}: {refused.message}" if refused else "a gate did not hold"
        message = f"Refused by {because}. {loop.promote}@{loop.alias} stays at {where}."
        return Retraining(REFUSED, message, trigger, job, promotion)
    was = f"version {promotion.previous_version}" if promotion.previous_version else "no version"
    message = (
        f"Drift {share:.0%} -> job {job.run_id} -> {loop.promote}@{loop.alias} moved to version "
        f"{promotion.version} (was {was})."
    )
    return Retraining(PROMOTED, message, trigger, job, promotion)
