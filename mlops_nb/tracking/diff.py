"""Why two runs differ: their parameters and metrics, and per stage whether its code, the parameters it read
or its input data changed — the stage a change entered the pipeline at, not only the numbers it moved.

``diff_runs`` is pure: it compares two ``RunDetail`` records and asks ``code`` for a stage's code only where
the code changed (its hash differs, or a run is too old to have one).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable

from mlops_nb.tracking.records import RunDetail, RunDiff, StageDiff, StageSummary


def _delta(a: float | None, b: float | None) -> list[float | None]:
    d = b - a if a is not None and b is not None and math.isfinite(a) and math.isfinite(b) else None
    return [a, b, d]


def metric_deltas(a: dict[str, float], b: dict[str, float]) -> dict[str, list[float | None]]:
    """``{name: [a, b, b - a]}`` for every metric of either side (None where one has none)."""
    return {k: _delta(a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys())}


def _changed(a: dict[str, str], b: dict[str, str], prefix: str = "") -> list[str]:
    return [f"{prefix}{k}" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def _latest(stages: list[StageSummary]) -> dict[str, StageSummary]:
    """By name; a stage run twice in one run counts once, its latest execution (stages come oldest first)."""
    found: dict[str, StageSummary] = {}
    for stage in stages:
        found.pop(stage["stage"], None)  # keep the order of latest executions
        found[stage["stage"]] = stage
    return found


def _code_diff(name: str, old: str, new: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=f"a/{name}", tofile=f"b/{name}"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _stage_diff(name: str, a: StageSummary | None, b: StageSummary | None, code: Callable[[str], str]) -> StageDiff:
    if a is None or b is None:
        only = a or b
        assert only is not None
        return StageDiff(
            stage=name,
            **{"in": "a" if b is None else "b"},
            code_changed=False,
            code_diff="",
            params_changed=[],
            inputs_changed=[],
            cache_hit=[a["cache_hit"] if a else None, b["cache_hit"] if b else None],
            metrics=metric_deltas(a["metrics"] if a else {}, b["metrics"] if b else {}),
            run_ids=[a["run_id"] if a else None, b["run_id"] if b else None],
        )
    same_hash = a["code_hash"] is not None and a["code_hash"] == b["code_hash"]
    code_diff = ""
    if not same_hash:
        code_diff = _code_diff(name, code(a["run_id"]), code(b["run_id"]))
    return StageDiff(
        stage=name,
        **{"in": "both"},
        code_changed=bool(code_diff),
        code_diff=code_diff,
        params_changed=_changed(a["params"], b["params"]),
        inputs_changed=_changed(a["inputs"], b["inputs"])
        + _changed(a["files"], b["files"], "file:")
        + _changed(a["modules"], b["modules"], "module:"),
        cache_hit=[a["cache_hit"], b["cache_hit"]],
        metrics=metric_deltas(a["metrics"], b["metrics"]),
        run_ids=[a["run_id"], b["run_id"]],
    )


def changes(stage: StageDiff) -> str:
    """What changed in a stage, in words: ``code changed; params: C; inputs: X_train``, ``unchanged``, or
    ``only in a``."""
    if stage["in"] != "both":
        return f"only in {stage['in']}"
    reasons = []
    if stage["code_changed"]:
        reasons.append("code changed")
    if stage["params_changed"]:
        reasons.append("params: " + ", ".join(stage["params_changed"]))
    if stage["inputs_changed"]:
        reasons.append("inputs: " + ", ".join(stage["inputs_changed"]))
    return "; ".join(reasons) or "unchanged"


def diff_runs(a: RunDetail, b: RunDetail, code: Callable[[str], str]) -> RunDiff:
    """Compare run ``a`` with run ``b``; ``code(stage_run_id)`` gives a stage's code."""
    stages_a, stages_b = _latest(a["stages"]), _latest(b["stages"])
    names = list(stages_a) + [n for n in stages_b if n not in stages_a]
    return RunDiff(
        a=a["run_id"],
        b=b["run_id"],
        params={k: [a["params"].get(k), b["params"].get(k)] for k in _changed(a["params"], b["params"])},
        metrics=metric_deltas(a["metrics"], b["metrics"]),
        stages=[_stage_diff(n, stages_a.get(n), stages_b.get(n), code) for n in names],
        deleted=[a["deleted"], b["deleted"]],
    )
