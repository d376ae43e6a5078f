"""The result of ``mlops-nb tune``: every trial of the study (Optuna's record, with what this process
knows of the trials it ran), the best one, the summary and the JSON of ``--json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlops_nb.jobs import study as study_mod
from mlops_nb.jobs.job import JobResult


@dataclass
class Trial:
    """One trial of the study: its Optuna number, state, value, parameters and job run."""

    number: int
    state: str  # COMPLETE | PRUNED | FAIL | RUNNING | WAITING
    value: float | None
    params: dict[str, Any]
    run_id: str
    reason: str = ""
    rerun_of: int | None = None
    cache_hits: int | None = None  # of the trials this process ran: stages served from the cache
    duration: float | None = None

    def json(self) -> dict[str, Any]:
        return {
            "trial": self.number,
            "state": self.state,
            "value": self.value,
            "params": self.params,
            "run_id": self.run_id or None,
            "reason": self.reason,
            "rerun_of": self.rerun_of,
        }


@dataclass
class TuneResult:
    """What a ``tune`` did: the study's run, every trial of the study (also earlier runs'), the best."""

    study_name: str
    run_id: str
    experiment: str
    metric: str
    direction: str
    trials: list[Trial]
    best: Trial | None
    ran: list[int]  # the trials this process ran
    rerun: list[int]  # trials whose process had died, queued again
    duration: float
    study: Any = field(default=None, repr=False)  # the optuna.Study

    def json(self) -> dict[str, Any]:
        best = None
        if self.best is not None:
            best = {
                "trial": self.best.number,
                "value": self.best.value,
                "params": self.best.params,
                "run_id": self.best.run_id or None,
            }
        return {
            "study": self.study_name,
            "run_id": self.run_id,
            "experiment": self.experiment,
            "metric": self.metric,
            "direction": self.direction,
            "best": best,
            "trials": [t.json() for t in self.trials],
            "duration_s": round(self.duration, 3),
        }

    def summary(self) -> str:
        mine = [t for t in self.trials if t.number in self.ran]
        states = {s: sum(t.state == s for t in mine) for s in ("COMPLETE", "PRUNED", "FAIL")}
        lines = [
            f"study {self.study_name!r} (run {self.run_id}, experiment {self.experiment!r}): ran {len(mine)} trials "
            f"in {self.duration:.1f} s: {states['COMPLETE']} complete, {states['PRUNED']} pruned, {states['FAIL']} "
            f"failed; {len(self.trials)} in the study"
        ]
        if self.rerun:
            lines.append(f"  re-ran the trials left running by a process that died: {self.rerun}")
        for t in mine:
            point = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
            value = f" {self.metric}={t.value:.6g}" if t.value is not None else ""
            hits = f"  {t.cache_hits} cached stages" if t.cache_hits else ""
            took = f" {t.duration:.1f} s" if t.duration is not None else ""
            lines.append(f"  [{t.number}] {t.state:<8} {point}{value}{took}{hits}  run {t.run_id or '-'}")
            if t.reason and t.state != "COMPLETE":
                lines.append(f"        {t.reason}")
        if self.best is not None:
            point = ", ".join(f"{k}={_short(v)}" for k, v in self.best.params.items())
            lines.append(
                f"best ({self.direction} {self.metric}): trial {self.best.number}, {self.best.value:.6g}, {point}, "
                f"run {self.best.run_id}"
            )
        return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else repr(value)


def trials_of(st: Any, results: dict[int, tuple[JobResult | None, str]] | None = None) -> list[Trial]:
    """Every trial of the study, in order, with what this process knows of the ones it ran."""
    results = results or {}
    again = study_mod.reruns(st)
    out = []
    for t in st.get_trials(deepcopy=False):
        result = results.get(t.number, (None, ""))[0]
        reason = t.user_attrs.get(study_mod.REASON, "")
        if t.number in again:
            reason = f"re-run as a later trial: {again[t.number]}"
        out.append(
            Trial(
                number=t.number,
                state=t.state.name,
                value=t.value if t.state.name == "COMPLETE" else None,
                params=dict(t.params),
                run_id=(result.run_id if result else "") or t.user_attrs.get(study_mod.RUN, {}).get("id", ""),
                reason=reason,
                rerun_of=t.user_attrs.get(study_mod.RERUN_OF),
                cache_hits=sum(s.cache_hit for s in result.stages) if result else None,
                duration=result.duration if result else None,
            )
        )
    return out
