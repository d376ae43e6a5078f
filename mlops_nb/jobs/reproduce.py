"""Reproducing a recorded job: the same notebook (as recorded, not today's file), parameters and working
directory, every stage executed (no cache), then every metric and every stage's input fingerprints compared.

The environment is checked first: installed package versions against the job's recorded
``environment/requirements.txt`` (a warning, or a refusal with ``strict``).
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_nb.exceptions import UsageError
from mlops_nb.exit_codes import DIFFERS
from mlops_nb.jobs.job import INPUT_ARTIFACT, PARAMETERS_ARTIFACT, JobOptions, JobResult
from mlops_nb.tracking import query, reading, tags
from mlops_nb.tracking.records import RunDetail, RunRecord


@dataclass
class Difference:
    what: str  # "metric accuracy", "stage load input raw"
    old: Any
    new: Any

    def __str__(self) -> str:
        if isinstance(self.old, float) and isinstance(self.new, float):
            rel = abs(self.new - self.old) / abs(self.old) if self.old else math.inf
            return f"{self.what}: {self.old:.10g} -> {self.new:.10g} (relative difference {rel:.3g})"
        return f"{self.what}: {self.old} -> {self.new}"


@dataclass
class Reproduction:
    original: str
    result: JobResult
    differences: list[Difference] = field(default_factory=list)
    environment: list[str] = field(default_factory=list)  # package differences

    @property
    def reproduced(self) -> bool:
        return self.result.ok and not self.differences

    @property
    def exit_code(self) -> int:
        if not self.result.ok:
            return self.result.exit_code
        return DIFFERS if self.differences else 0

    def summary(self) -> str:
        lines = [self.result.summary()]
        if self.environment:
            lines.append(f"environment differs from the original's ({len(self.environment)} packages):")
            lines.extend(f"  {line}" for line in self.environment[:20])
            if len(self.environment) > 20:
                lines.append(f"  ... and {len(self.environment) - 20} more")
        if self.result.ok:
            verdict = "REPRODUCED" if not self.differences else "DIFFERS"
            lines.append(f"{verdict}: run {self.result.run_id} against the original {self.original}")
            lines.extend(f"  {d}" for d in self.differences)
        return "\n".join(lines)


def environment_differences(recorded: str, current: str) -> list[str]:
    """Package-level differences between two ``name==version`` listings."""

    def parse(text: str) -> dict[str, str]:
        pins = {}
        for line in text.splitlines():
            name, sep, version = line.strip().partition("==")
            if sep:
                pins[name.lower()] = version
        return pins

    old, new = parse(recorded), parse(current)
    out = []
    for name in sorted(old.keys() | new.keys()):
        if name not in new:
            out.append(f"{name} {old[name]} is not installed now")
        elif name not in old:
            out.append(f"{name} {new[name]} is installed now, not recorded")
        elif old[name] != new[name]:
            out.append(f"{name} {old[name]} -> {new[name]}")
    return out


def compare_metrics(old: dict[str, float], new: dict[str, float], rtol: float, atol: float) -> list[Difference]:
    diffs = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if a is None or b is None:
            diffs.append(
                Difference(
                    f"metric {key}", a if a is not None else "(not logged)", b if b is not None else "(not logged)"
                )
            )
        elif not (math.isclose(a, b, rel_tol=rtol, abs_tol=atol) or (math.isnan(a) and math.isnan(b))):
            diffs.append(Difference(f"metric {key}", a, b))
    return diffs


def _stage_inputs(run: RunDetail) -> dict[str, dict[str, str]]:
    """``{stage: {input name: fingerprint}}`` of a job's stages (the last run of each stage name)."""
    return {stage["stage"]: stage["inputs"] for stage in run["stages"]}


def compare_inputs(old: dict[str, dict[str, str]], new: dict[str, dict[str, str]]) -> list[Difference]:
    diffs = []
    for stage in sorted(old.keys() & new.keys()):
        for name in sorted(old[stage].keys() & new[stage].keys()):
            if old[stage][name] != new[stage][name]:
                diffs.append(
                    Difference(f"stage {stage!r} input {name!r} fingerprint", old[stage][name], new[stage][name])
                )
    return diffs


def _environment(run: RunRecord, tmp: Path) -> str | None:
    """The recorded pip freeze of the job (a sweep's job: its sweep's)."""
    for run_id in (run["run_id"], run["tags"].get(tags.PARENT)):
        if not run_id:
            continue
        try:
            return query.download_artifacts(run_id, "environment/requirements.txt", tmp / run_id).read_text()
        except Exception:  # noqa: BLE001 - not recorded there; try the parent
            continue
    return None


def _check_environment(run: RunRecord, tmp: Path, strict: bool, warn: Any) -> list[str]:
    """The packages that differ from the run's recorded environment: refused with ``strict``, else told to
    ``warn``."""
    from mlops_nb.tracking.provenance import frozen_requirements

    recorded = _environment(run, tmp)
    env_diffs = environment_differences(recorded, frozen_requirements()) if recorded is not None else []
    if env_diffs and strict:
        raise UsageError(
            f"The environment differs from run {run['run_id']}'s in {len(env_diffs)} packages ("
            + "; ".join(env_diffs[:5])
            + "). Install the recorded versions (mlflow artifacts download -r RUN_ID -a environment) or "
            "drop --strict."
        )
    if env_diffs and warn is not None:
        warn(f"warning: the environment differs from run {run['run_id']}'s: " + "; ".join(env_diffs[:10]))
    return env_diffs


def reproduce(
    run_id: str,
    *,
    rtol: float = 1e-9,
    atol: float = 0.0,
    strict: bool = False,
    cwd: Path | None = None,
    output: Path | None = None,
    kernel: str | None = None,
    timeout: float | None = None,
    progress_bar: bool = False,
    warn: Any = None,
) -> Reproduction:
    """Re-run job ``run_id`` and compare. ``warn(text)`` is told about environment differences first.

    Raises:
        UsageError: not a job run, its notebook was not recorded, or (``strict``) the environment differs.
    """
    from mlops_nb.jobs.runner import run_job

    if rtol < 0 or atol < 0:
        raise UsageError("--rtol and --atol must be >= 0.")
    old = reading.run_detail(run_id)
    run_id = old["run_id"]  # the full id, when a prefix was given
    recorded_tags = old["tags"]
    if recorded_tags.get(tags.KIND) != "job":
        raise UsageError(
            f"Run {run_id} is a {recorded_tags.get(tags.KIND, 'plain MLflow')} run; reproduce takes a job run (the id "
            "`mlops-nb run` or a sweep printed)."
        )
    with tempfile.TemporaryDirectory(prefix="mlops-nb-reproduce-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            source = query.download_artifacts(run_id, INPUT_ARTIFACT, tmp / "in")
            parameters = json.loads(query.download_artifacts(run_id, PARAMETERS_ARTIFACT, tmp / "in").read_text())
        except Exception as e:
            raise UsageError(
                f"Run {run_id} has no recorded notebook ({INPUT_ARTIFACT}): it was not run by mlops-nb run, or "
                f"its artifacts are gone ({e})."
            ) from e
        env_diffs = _check_environment(old, tmp, strict, warn)
        notebook = tmp / Path(recorded_tags.get(tags.NOTEBOOK, "notebook.ipynb")).name
        notebook.write_bytes(source.read_bytes())
        options = JobOptions(
            experiment=old["experiment"],
            run_name=f"{old['name'] or notebook.stem} (reproduce)",
            tags={tags.REPRODUCES: run_id, tags.NOTEBOOK: recorded_tags.get(tags.NOTEBOOK, str(notebook))},
            cache=False,
        )
        recorded_cwd = Path(recorded_tags[tags.JOB_CWD]) if recorded_tags.get(tags.JOB_CWD) else None
        kernel_cwd = cwd or (recorded_cwd if recorded_cwd and recorded_cwd.is_dir() else None)
        result = run_job(
            notebook,
            output=output or Path(tmp) / "output.ipynb",
            parameters=parameters,
            options=options,
            kernel=kernel,
            cwd=kernel_cwd,
            timeout=timeout,
            allow_new=True,  # the parameters were accepted when the job first ran
            progress_bar=progress_bar,
        )
    if output is None:
        result.output = None  # it was in the temporary folder; the run has it as an artifact
    reproduction = Reproduction(run_id, result, environment=env_diffs)
    if result.ok:
        reproduction.differences = compare_metrics(old["metrics"], result.metrics, rtol, atol)
        reproduction.differences += compare_inputs(_stage_inputs(old), _stage_inputs(reading.run_detail(result.run_id)))
        verdict = (
            "reproduced" if reproduction.reproduced else "differs: " + "; ".join(map(str, reproduction.differences))
        )
        query.set_tags(result.run_id, {tags.REPRODUCE_RESULT: verdict[:8000]})
    return reproduction
