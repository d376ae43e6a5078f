"""Promotion: register a run's model as a new version of a registered model, and move an alias behind gates.

``promote`` finds the model the run (or one of its stages) logged, following a stage served from the cache
to the run that produced it; checks the requirements on the run's metrics and the must-beat gate against
the metric recorded on the current champion's source run; and only when every gate holds registers the version
with the evidence as ``mlops_nb.*`` tags and moves the alias. A refused promotion registers nothing: its
evidence goes on the run as ``mlops_nb.promotion.refused`` tags.

Compare-and-set: the version is registered and the alias moved under a per-model lock
(``tracking/registry.py``). Under the lock the must-beat gate is evaluated again when the version to beat
moved meanwhile, and the promotion is refused when the alias moved otherwise, so of overlapping promotions of
one model only one wins.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import posixpath
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from mlops_nb.config import Settings, load_settings
from mlops_nb.exceptions import StoreError, UsageError
from mlops_nb.gates import Requirement, canonical, lookup, parse_requirement
from mlops_nb.tracking import evaluations, query, reading, registry, tags
from mlops_nb.tracking.filters import quotable
from mlops_nb.tracking.records import RunRecord
from mlops_nb.tracking.registry import LOCK_SUFFIX

TAG = tags.PROMOTION_PREFIX  # prefix of the promotion's own evidence on a version
_ALIAS = re.compile(r"^[\w-]+$")  # MLflow's rule for alias names
_RUN_TAGS = (tags.GIT_COMMIT, tags.GIT_DIRTY)  # copied from the source run onto the version
_MAX_TAG = 8000  # MLflow's limit on a run tag's value
# the must-beat evidence, kept with a refusal
_COMPARED = (
    "metric", "value", "champion_version", "champion_run", "champion_value", "previous_version", "paired_delta"
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Gate:
    """One check of a promotion: its name (``accuracy >= 0.9``), whether it held, and a message that starts
    with the name and says why, with the margin."""

    name: str
    ok: bool
    message: str


@dataclasses.dataclass(frozen=True)
class FoundModel:
    """A model found in a run: the stage run of the given run that logged it, and the run holding the artifact."""

    stage: RunRecord
    run_id: str  # the stage's own id, or for a stage served from the cache the run that produced it
    path: str  # the model's name: its run artifact folder (mnb.log_model), or an MLflow 3 logged model's name
    model_id: str | None = None  # an MLflow 3 logged model (mlflow.<flavor>.log_model, autolog)

    @property
    def label(self) -> str:
        """``STAGE/NAME``, as ``--model`` accepts it."""
        return f"{self.stage['tags'].get(tags.STAGE) or self.stage['name']}/{self.path}"

    @property
    def uri(self) -> str:
        return f"models:/{self.model_id}" if self.model_id else f"runs:/{self.run_id}/{self.path}"


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The run against the version the alias pointed at, on the metric the project promotes by. A value is
    None when that run did not record the metric."""

    metric: str
    value: float | None
    version: str
    version_value: float | None
    higher_is_better: bool

    @property
    def worse(self) -> bool:
        """True when the run's value is worse than the version's (a NaN is worse than any number)."""
        if self.value is None or self.version_value is None or math.isnan(self.version_value):
            return False
        if math.isnan(self.value):
            return True
        return self.value < self.version_value if self.higher_is_better else self.value > self.version_value

    @property
    def message(self) -> str:
        """``accuracy: 0.911 against 0.933 of version 1 (0.022 worse; higher is better)``."""
        if self.value is None or self.version_value is None:
            which = "this run" if self.value is None else f"version {self.version}'s run"
            return f"{self.metric}: not compared, {which} recorded no {self.metric!r}"
        direction = "higher is better" if self.higher_is_better else "lower is better"
        against = f"{self.metric}: {self.value:g} against {self.version_value:g} of version {self.version}"
        gap = abs(self.value - self.version_value)
        if self.worse:
            return f"{against} ({gap:g} worse; {direction})"
        if self.value == self.version_value or math.isnan(self.value):
            return f"{against} (no better; {direction})"
        return f"{against} ({gap:g} better; {direction})"


@dataclasses.dataclass(frozen=True)
class Promotion:
    """What ``promote`` did. ``promoted`` is False when a gate refused it: nothing was registered (``version``
    is None) and the alias did not move."""

    name: str
    version: str | None
    alias: str
    model: FoundModel
    gates: list[Gate]
    promoted: bool
    previous_version: str | None  # where the alias pointed when the gates were evaluated
    alias_version: str | None  # where it points now
    comparison: Comparison | None = None  # against previous_version, when a metric to compare on is known

    @property
    def failed(self) -> list[Gate]:
        return [g for g in self.gates if not g.ok]


def promote(
    run_id: str,
    name: str,
    *,
    alias: str = "champion",
    require: Sequence[str] = (),
    must_beat: str | None = None,
    metric: str | None = None,
    higher_is_better: bool = True,
    model: str | None = None,
    settings: Settings | None = None,
) -> Promotion:
    """Register the model of run ``run_id`` as a new version of ``name``; move ``alias`` to it if every gate holds.

    Args:
        run_id: a job or notebook run (its stages are searched for the model), or the stage run itself.
        name: the registered model (created when missing).
        alias: the alias to move.
        require: requirements ``"METRIC OP VALUE"`` on the run's metrics.
        must_beat: an alias whose version the run must beat on ``metric`` (nothing to beat when it is unset).
        metric: the metric the run is compared on with the version ``alias`` points at (default: the metric of
            the first requirement), and the metric of the must-beat gate.
        higher_is_better: the direction of ``metric``; a tie does not beat.
        model: ``NAME`` or ``STAGE/NAME`` when the run has more than one model.
        settings: where MLflow is (default: the settings in force).

    Returns:
        The promotion. When a gate refused it nothing is registered, the alias stays where it was, and the
        evidence is recorded on run ``run_id`` (tags ``mlops_nb.promotion.refused`` and ``...refused_gates``).

    Raises:
        UsageError: bad input; nothing was registered.
        StoreError: no run ``run_id`` in the store.
    """
    requirements = [parse_requirement(text) for text in require]
    _check_arguments(name, alias, must_beat, metric)
    s = settings or load_settings()
    run = reading.get_run(run_id, s)
    run_id = run["run_id"]  # the full id, when a prefix was given
    if run["status"] in ("FAILED", "KILLED"):
        raise UsageError(
            f"Run {run_id} ended {run['status']}; its model is not promoted. Fix the notebook, run it again "
            "and promote the new run."
        )
    found = find_model(run, model, s)
    evaluation = evaluations.find_result(run_id, settings=s)  # mnb.evaluate's: figures, paired deltas, report
    metrics = {**(evaluations.metrics_of(evaluation) if evaluation else {}), **run["metrics"]}
    gates = [_requirement_gate(r, metrics, run_id) for r in requirements]
    before = registry.aliases(name, s)
    if must_beat is not None and must_beat not in before:
        close = difflib.get_close_matches(must_beat, list(before), n=1)
        if close:  # a typo would otherwise pass as "nothing to beat" and move the alias
            raise UsageError(
                f"--must-beat {must_beat!r}: no version of {name!r} has that alias (it has "
                f"{', '.join(sorted(before))}). Did you mean {close[0]!r}?"
            )
    attempt = _Attempt(s, run, found, name, alias, must_beat, metric, higher_is_better, evaluation)
    evidence = _evidence(run, found, alias, before.get(alias))
    if evaluation is not None and evaluation.get("run_id"):  # the report behind the gates, on the version
        evidence[TAG + "evaluation"] = f"runs:/{evaluation['run_id']}/{evaluation['name']}/report.html"
    if must_beat is not None:
        gate, compared = attempt.must_beat_gate(before.get(must_beat))
        gates.append(gate)
        evidence.update(compared)
    compare_on = metric or (requirements[0].metric if requirements else None)
    comparison = _compare(s, name, before.get(alias), compare_on, higher_is_better, run) if compare_on else None

    if not all(g.ok for g in gates):  # refused before anything is registered: the registry stays as it was
        _record_refusal(s, run_id, name, alias, gates, evidence)
        return Promotion(name, None, alias, found, gates, False, before.get(alias), before.get(alias), comparison)
    version, current = _compare_and_set(attempt, gates, evidence, before)
    if version is None:
        _record_refusal(s, run_id, name, alias, gates, evidence)
    promoted = version is not None
    return Promotion(name, version, alias, found, gates, promoted, before.get(alias), current.get(alias), comparison)


def _check_arguments(name: str, alias: str, must_beat: str | None, metric: str | None) -> None:
    check_model_name(name)
    if name.endswith(LOCK_SUFFIX):
        raise UsageError(
            f"--name {name!r}: names ending in {LOCK_SUFFIX!r} are mlops-nb's promotion locks. Choose another name."
        )
    _check_alias(alias, "--alias")
    if must_beat is not None and metric is None:
        raise UsageError(
            "--must-beat ALIAS and --metric M go together: the gate compares the run's M with the M of the "
            "version @ALIAS, e.g. --must-beat champion --metric accuracy."
        )
    if must_beat is not None:
        _check_alias(must_beat, "--must-beat")


@dataclasses.dataclass(frozen=True)
class _Attempt:
    """One promotion being decided: the run, its model, and where it is to go."""

    settings: Settings
    run: RunRecord
    found: FoundModel
    name: str
    alias: str
    must_beat: str | None
    metric: str | None
    higher_is_better: bool
    evaluation: dict | None = None  # the run's evaluation result (mnb.evaluate), when it has one

    def must_beat_gate(self, version: str | None) -> tuple[Gate, dict[str, str]]:
        assert self.must_beat is not None and self.metric is not None
        paired = _paired_gate(self, version)
        if paired is not None:
            return paired
        return _must_beat_gate(
            self.settings, self.name, self.must_beat, version, self.metric, self.higher_is_better, self.run
        )


def _compare_and_set(
    attempt: _Attempt, gates: list[Gate], evidence: dict[str, str], before: Mapping[str, str]
) -> tuple[str | None, Mapping[str, str]]:
    """Under the model's lock: the must-beat gate again if the version to beat moved, a refusal if the alias
    moved otherwise; else register the version and move the alias. Returns the new version (None: refused,
    the failed gate appended to ``gates``) and the aliases as they now are."""
    s, name, alias, must_beat, found = attempt.settings, attempt.name, attempt.alias, attempt.must_beat, attempt.found
    version, current, concurrency = None, before, "no concurrent promotion"
    try:
        with registry.model_lock(name, settings=s):
            current = registry.aliases(name, s)
            moved = [a for a in dict.fromkeys((alias, must_beat)) if a and current.get(a) != before.get(a)]
            if must_beat is not None and must_beat in moved:
                # the version to beat changed while the gates were checked: compare with it, under the lock
                gates[-1], compared = attempt.must_beat_gate(current.get(must_beat))
                evidence.update(compared)
                moved.remove(must_beat)
                if alias == must_beat:  # the alias moving to the version just beaten is what the gate is about
                    evidence[TAG + "previous_version"] = current.get(alias) or ""
            if moved:
                gates.append(Gate(concurrency, False, f"{concurrency}: {_moved_message(moved, before, current)}"))
            elif all(g.ok for g in gates):
                evidence[TAG + "status"] = "promoted"
                evidence[TAG + "gates"] = json.dumps([dataclasses.asdict(g) for g in gates])
                version = registry.register_version(
                    name,
                    found.uri,
                    run_id=found.run_id,
                    model_id=found.model_id,
                    tags={k: v for k, v in evidence.items() if v},
                    description=f"Registered by mlops-nb promote from run {attempt.run['run_id']} ({found.label}); "
                    "the evidence is in the mlops_nb.* tags.",
                    settings=s,
                )
                registry.set_alias(name, alias, version, s)
                current = {**current, alias: version}
    except StoreError as e:  # the lock stayed taken: nothing was registered, the alias was not touched
        gates.append(Gate(concurrency, False, f"{concurrency}: {e}"))
    return version, current


def _record_refusal(
    settings: Settings, run_id: str, name: str, alias: str, gates: list[Gate], evidence: Mapping[str, str]
) -> None:
    """The evidence of a refused promotion, as tags on the run that was promoted (the registry is untouched):
    ``mlops_nb.promotion.refused`` says why, ``mlops_nb.promotion.refused_gates`` has every gate and what the
    run was compared with. A later refusal replaces them."""
    record = {
        "model": name,
        "alias": alias,
        "time": evidence.get(TAG + "time"),
        "user": evidence.get(TAG + "user"),
        "host": evidence.get(TAG + "host"),
        "gates": [dataclasses.asdict(g) for g in gates],
        **{k[len(TAG) :]: v for k, v in evidence.items() if k.startswith(TAG) and k[len(TAG) :] in _COMPARED},
    }
    reason = f"{name}@{alias}: " + "; ".join(g.message for g in gates if not g.ok)
    query.set_tags(run_id, {TAG + "refused": _fit(reason), TAG + "refused_gates": _fit(json.dumps(record))}, settings)


def _fit(value: str) -> str:
    """``value`` within MLflow's limit of a run tag (longer values are refused, not cut)."""
    return value if len(value) <= _MAX_TAG else value[: _MAX_TAG - 3] + "..."


def find_model(run: RunRecord, model: str | None = None, settings: Settings | None = None) -> FoundModel:
    """The model logged by ``run`` or one of its finished stages (through the cache source of a cache hit):
    with ``mnb.log_model``, or with MLflow's own ``log_model``. A stage that ran more than once (a cell run
    again) counts once: its latest run, as metrics roll up their latest values.

    Raises:
        UsageError: no model, several without ``model`` naming one, or a model whose artifact is missing.
    """
    run_id = run["run_id"]
    stages = [run, *(r for r in reading.child_runs(run_id, settings) if r["status"] == "FINISHED")]
    producers = [(stage, _producer(stage, settings)) for stage in stages]
    logged = query.logged_models([producer["run_id"] for _, producer in producers], settings)
    latest: dict[str, FoundModel] = {}  # label -> the latest stage's model (stages come oldest first)
    for stage, producer in producers:
        for path in producer["tags"].get(tags.MODELS, "").split(","):
            if path:
                found = FoundModel(stage, producer["run_id"], path)
                latest[found.label] = found
        for logged_model in logged.get(producer["run_id"], []):
            found = FoundModel(stage, producer["run_id"], logged_model["name"], logged_model["model_id"])
            latest[found.label] = found
    candidates = list(latest.values())
    labels = ", ".join(latest)
    if not candidates:
        raise UsageError(
            f"Run {run_id} and its {len(stages) - 1} finished stage(s) logged no model. Log one inside a stage "
            "(mnb.log_model(model, 'model', input_example=X)) and promote that job or notebook run; a sweep's "
            "models are in its job runs."
        )
    if model is not None:
        candidates = [f for f in candidates if model in (f.path, f.label)]
        if not candidates:
            raise UsageError(f"Run {run_id} has no model {model!r}; it has {labels}. Pass one of these to --model.")
    if len(candidates) > 1:
        raise UsageError(
            f"Run {run_id} has {len(candidates)} models: {labels}. Say which with --model NAME (or STAGE/NAME)."
        )
    chosen = candidates[0]
    in_mlflow = chosen.model_id is not None or f"{chosen.path}/MLmodel" in query.artifact_paths(
        chosen.run_id, chosen.path, settings
    )
    if not in_mlflow:
        raise UsageError(
            f"Model {chosen.label} of run {run_id} is not in MLflow ({chosen.uri} has no MLmodel). The process "
            "that recorded it may still be sending (wait for it to exit, or call mnb.flush() in it); if it "
            "died, the next mlops-nb process with this tracking URI sends what it left in .mlops_nb/journal/."
        )
    return chosen


def check_model_name(name: str) -> None:
    """UsageError unless ``name`` is a registered model name MLflow accepts and that prints on one line.

    MLflow's rules (``mlflow.utils.validation._validate_model_name``): not empty, no ``/`` or ``:``, and a path
    that normalises to itself (no ``.``/``..`` segments, no leading ``/``). mlops-nb adds: printable
    characters only. A newline or control character in a name would go into every file, log line and
    generated serving package that shows it.
    """
    problem = None
    if not name or not name.strip():
        problem = "it is empty"
    elif "/" in name or ":" in name:
        problem = "MLflow's rule: a name cannot contain '/' or ':'"
    elif not name.isprintable():
        problem = "it holds a line break or another control character; a name is printable text on one line"
    elif name != name.strip():
        problem = "it starts or ends with a space"
    elif posixpath.normpath(name) != name or name.startswith(".."):
        problem = "MLflow's rule: a name cannot be a relative path such as '.' or '..'"
    elif not quotable(name):
        problem = "MLflow's searches cannot find a name holding both ' and \" or ending in a backslash"
    if problem:
        raise UsageError(
            f"--name {name!r} is not a valid registered model name: {problem}. Choose another --name: letters, "
            "digits, spaces and punctuation other than '/' and ':', e.g. churn-classifier."
        )


def _check_alias(alias: str, option: str) -> None:
    if not _ALIAS.match(alias or "") or alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise UsageError(
            f"{option} {alias!r} is not a valid MLflow alias: use letters, digits, '_' and '-' (not 'latest' nor "
            "a version like 'v3'), e.g. champion."
        )


def _producer(stage: RunRecord, settings: Settings | None) -> RunRecord:
    """The run that produced ``stage``'s outputs: the stage, or for a cache hit the run it came from."""
    source = stage["tags"].get(tags.CACHE_SOURCE)
    if stage["tags"].get(tags.CACHE_HIT) != "true" or not source:
        return stage
    try:
        return reading.get_run(source, settings)
    except (UsageError, StoreError) as e:
        raise UsageError(
            f"Stage run {stage['run_id']} was served from the cache of run {source}, which is not in MLflow any "
            "more. Run the stage again without the cache (%%track STAGE --no-cache) and promote the new run."
        ) from e


def _missing_metric(metric: str, metrics: Mapping[str, float], run_id: str, option: str) -> UsageError:
    close = difflib.get_close_matches(metric, list(metrics), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UsageError(
        f"Run {run_id} has no metric {metric!r} for {option} (it has: {', '.join(sorted(metrics)) or 'none'}).{hint} "
        f"Fix the name, or log the metric in the notebook (mnb.log_metric({metric!r}, value))."
    )


def _requirement_gate(requirement: Requirement, metrics: Mapping[str, float], run_id: str) -> Gate:
    if lookup(metrics, requirement.metric) is None:
        raise _missing_metric(requirement.metric, metrics, run_id, "--require")
    result = requirement.check(metrics)
    return Gate(str(requirement), result.ok, result.message)


def _must_beat_gate(
    settings: Settings,
    name: str,
    alias: str,
    version: str | None,
    metric: str,
    higher_is_better: bool,
    run: RunRecord,
) -> tuple[Gate, dict[str, str]]:
    """The gate "the run's ``metric`` beats the champion's", and the evidence of what it was compared with."""
    gate = f"beats @{alias} on {metric}"
    metrics = run["metrics"]
    if metric not in metrics:
        raise _missing_metric(metric, metrics, run["run_id"], "--metric")
    value = metrics[metric]
    compared = {TAG + "metric": metric, TAG + "value": repr(value)}
    if version is None:
        return Gate(gate, True, f"{gate}: no version of {name!r} has alias {alias!r} yet, nothing to beat"), compared
    source, champion_metrics = _version_metrics(settings, name, version)
    if not source:
        raise UsageError(
            f"{name} version {version} (@{alias}) was registered without a run, so it has no {metric!r} to beat. "
            f"Promote without --must-beat, or point @{alias} at a version registered from a run."
        )
    if metric not in champion_metrics:
        raise UsageError(
            f"Run {source} of {name} version {version} (@{alias}) has no metric {metric!r} (it has: "
            f"{', '.join(sorted(champion_metrics)) or 'none'}). Compare on a metric both runs recorded (--metric)."
        )
    best = champion_metrics[metric]
    # A champion whose metric is NaN (a broken evaluation) is beaten by any number; a NaN beats nothing.
    ok = not math.isnan(value) and (math.isnan(best) or (value > best if higher_is_better else value < best))
    direction = "higher is better" if higher_is_better else "lower is better"
    against = f"{best:g} of version {version} (run {source}; {direction})"
    if ok:
        message = f"{metric} = {value:g} beats {against}"
    elif math.isnan(value):
        message = f"{metric} is NaN (not a number), so it cannot beat {against}"
    elif value == best:
        message = f"{metric} = {value:g} only ties {against}"
    else:
        message = f"{metric} = {value:g} is {abs(value - best):g} short of {against}"
    compared.update(
        {TAG + "champion_version": version, TAG + "champion_run": source, TAG + "champion_value": repr(best)}
    )
    return Gate(gate, ok, f"{gate}: {message}"), compared


def _paired_gate(attempt: _Attempt, version: str | None) -> tuple[Gate, dict[str, str]] | None:
    """The must-beat gate from the run's evaluation when its baseline was that very version: the paired
    bootstrap's interval of the difference must lie above zero (below, when lower is better). None when the
    evaluation has no such comparison (the gate then compares the two runs' numbers)."""
    baseline = (attempt.evaluation or {}).get("baseline") or {}
    metric = canonical(attempt.metric or "")
    delta = (baseline.get("deltas") or {}).get(attempt.metric) or (baseline.get("deltas") or {}).get(metric)
    if version is None or delta is None or baseline.get("model") != f"models:/{attempt.name}/{version}":
        return None
    gate = f"beats @{attempt.must_beat} on {attempt.metric}"
    ok = delta["low"] > 0 if attempt.higher_is_better else delta["high"] < 0
    shown = f"{delta['delta']:+.4g} [{delta['low']:+.4g}, {delta['high']:+.4g}]"
    rows = baseline.get("rows", "the")
    against = f"version {version} on the same {rows} rows (paired bootstrap, 95% interval)"
    if ok:
        message = f"{attempt.metric} {shown} over {against}: better"
    else:
        message = f"{attempt.metric} {shown} over {against}: not clearly better (the interval reaches 0)"
    compared = {
        TAG + "metric": attempt.metric or "",
        TAG + "value": repr(attempt.evaluation["metrics"].get(metric)) if attempt.evaluation else "",
        TAG + "champion_version": version,
        TAG + "champion_value": repr(baseline.get("metrics", {}).get(metric)),
        TAG + "paired_delta": json.dumps(delta),
    }
    return Gate(gate, ok, f"{gate}: {message}"), compared


def _version_metrics(settings: Settings, name: str, version: str) -> tuple[str | None, Mapping[str, float]]:
    """The run version ``version`` of ``name`` was promoted from (its job or notebook run) and its metrics."""
    record = reading.model_version(f"models:/{name}/{version}", settings)
    source = record["tags"].get(tags.SOURCE_RUN) or record["run_id"]
    return (source, reading.get_run(source, settings)["metrics"]) if source else (None, {})


def _compare(
    settings: Settings, name: str, version: str | None, metric: str, higher_is_better: bool, run: RunRecord
) -> Comparison | None:
    """The run against version ``version`` (where the alias points) on ``metric``; None when there is none."""
    if version is None:
        return None
    try:
        _, metrics = _version_metrics(settings, name, version)
    except UsageError:  # the version's run is gone: nothing to compare with
        metrics = {}
    return Comparison(metric, run["metrics"].get(metric), version, metrics.get(metric), higher_is_better)


def _evidence(run: RunRecord, found: FoundModel, alias: str, previous: str | None) -> dict[str, str]:
    """Tags of the new version: where the model came from, and who promoted it when."""
    from mlops_nb.tracking.provenance import process_tags

    run_tags, me = run["tags"], process_tags()
    evidence = {
        tags.SOURCE_RUN: run["run_id"],
        tags.MODEL_RUN: found.run_id,
        tags.STAGE: found.stage["tags"].get(tags.STAGE, ""),
        tags.NOTEBOOK: run_tags.get(tags.NOTEBOOK) or run_tags.get(tags.MLFLOW_SOURCE_NAME, ""),
        **{key: run_tags[key] for key in _RUN_TAGS if key in run_tags},
        **{key: value for key, value in found.stage["tags"].items() if key.startswith(tags.INPUT_PREFIX)},
        TAG + "alias": alias,
        TAG + "previous_version": previous or "",
        TAG + "user": me[tags.USER],
        TAG + "host": me[tags.HOST],
        TAG + "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return {key: value for key, value in evidence.items() if value}


def _moved_message(moved: list[str], before: Mapping[str, str], now: Mapping[str, str]) -> str:
    changes = ", ".join(f"@{a} from {before.get(a) or 'no version'} to {now.get(a) or 'no version'}" for a in moved)
    return (
        f"a concurrent promotion moved {changes} while the gates were checked; run mlops-nb promote again to "
        "compare against it"
    )
