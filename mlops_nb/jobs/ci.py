"""CI gates: run the notebook jobs the project lists, with their requirements, and report as JUnit XML.

The jobs are listed under ``[tool.mlops_nb.ci]`` in pyproject.toml, or in a YAML file with the same shape::

    [tool.mlops_nb.ci]
    timeout = 600                     # seconds per cell, for every job (optional)

    [[tool.mlops_nb.ci.jobs]]
    name = "train"                    # optional: the notebook's stem
    notebook = "notebooks/train.ipynb"
    parameters = { n_estimators = 50 }
    require = ["accuracy >= 0.9"]
    # also: timeout, kernel, cwd, experiment, allow_new, cache (false: no stage from the cache)
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_nb.exceptions import UsageError
from mlops_nb.gates import Requirement, parse_requirement
from mlops_nb.jobs.job import REQUIREMENT_FAILED, JobOptions, JobResult
from mlops_nb.tracking import tags

_JOB_KEYS = {
    "name",
    "notebook",
    "parameters",
    "require",
    "timeout",
    "kernel",
    "cwd",
    "experiment",
    "allow_new",
    "cache",
}
_SHARED_KEYS = ("timeout", "kernel", "experiment", "cache")  # may be set for every job under [tool.mlops_nb.ci]
WORKFLOW = """\
# Runs the project's notebooks as CI checks (mlops-nb ci); written by `mlops-nb ci --init github`.
name: notebooks
on:
  push:
  pull_request:
jobs:
  notebooks:
    runs-on: ubuntu-latest
    timeout-minutes: 60
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
          cache: pip
      - run: pip install -e .
      - run: mlops-nb ci --junit reports/notebooks.xml
      - uses: actions/upload-artifact@v4
        if: always()
        with:
          name: notebook-reports
          path: |
            reports/
            .mlops_nb/sweeps/
"""
# The scheduled monitor: `mlops-nb monitor` with no options reads [tool.mlops_nb.monitor] (and runs its loop).
MONITOR_WORKFLOW = """\
# Monitors the model on a schedule: `mlops-nb monitor` reads [tool.mlops_nb.monitor] in pyproject.toml
# (the model, the data, thresholds, the retraining loop). Written by `mlops-nb ci --init github`.
# Point MLFLOW_TRACKING_URI (a repository secret) at the team's MLflow server: the monitor runs, the
# retraining job and the promotion are recorded there.
name: monitor
on:
  schedule:
    - cron: {cron}
  workflow_dispatch:
jobs:
  monitor:
    runs-on: ubuntu-latest
    timeout-minutes: 120
    env:
      MLFLOW_TRACKING_URI: ${{{{ secrets.MLFLOW_TRACKING_URI }}}}
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
          cache: pip
      - run: pip install -e .
      - run: mlops-nb monitor --json reports/monitor.json --report reports/monitor.html
      - uses: actions/upload-artifact@v4
        if: always()
        with:
          name: monitor-report
          path: reports/
"""


@dataclass
class CiJob:
    name: str
    notebook: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    requirements: list[Requirement] = field(default_factory=list)
    timeout: float | None = None
    kernel: str | None = None
    cwd: Path | None = None
    experiment: str | None = None
    allow_new: bool = False
    cache: bool = True  # False: every %%track stage runs, none is served from the cache


@dataclass
class CiOutcome:
    job: CiJob
    result: JobResult | None
    error: str = ""  # a job that could not start (bad notebook, unknown parameter)
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.ok


def load_config(path: Path | None, project_root: Path) -> tuple[list[CiJob], Path]:
    """The CI jobs from ``path`` (a YAML file or a pyproject.toml; default: the project's pyproject.toml)."""
    path = path or project_root / "pyproject.toml"
    if not path.is_file():
        raise UsageError(
            f"No CI config at {path}. List jobs under [tool.mlops_nb.ci] in pyproject.toml, or pass a YAML file."
        )
    if path.suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("mlops_nb", {}).get("ci")
        except tomllib.TOMLDecodeError as e:
            raise UsageError(f"{path} is not valid TOML: {e}.") from e
        where = f"[tool.mlops_nb.ci] in {path}"
    else:
        from mlops_nb.jobs.parameters import read_file

        table, where = read_file(path), str(path)
    if not isinstance(table, dict) or not table.get("jobs"):
        raise UsageError(f"No jobs in {where}: add [[tool.mlops_nb.ci.jobs]] entries with a notebook each.")
    base = path.parent
    defaults = {k: v for k, v in table.items() if k != "jobs"}
    jobs = [_job(entry, defaults, base, f"{where}, job {i + 1}") for i, entry in enumerate(table["jobs"])]
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise UsageError(f"Two CI jobs in {where} have the same name; give them distinct 'name's.")
    return jobs, base


def _job(entry: Any, defaults: dict[str, Any], base: Path, where: str) -> CiJob:
    if not isinstance(entry, dict) or "notebook" not in entry:
        raise UsageError(f"{where}: each job needs a 'notebook' (path relative to {base}).")
    entry = {**{k: v for k, v in defaults.items() if k in _SHARED_KEYS}, **entry}
    unknown = set(entry) - _JOB_KEYS
    if unknown:
        raise UsageError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_JOB_KEYS))}."
        )
    requires = entry.get("require", [])
    if isinstance(requires, str):
        requires = [requires]
    notebook = base / entry["notebook"]
    parameters = entry.get("parameters", {})
    if not isinstance(parameters, dict):
        raise UsageError(f"{where}: 'parameters' must be a table of names to values.")
    return CiJob(
        name=str(entry.get("name") or notebook.stem),
        notebook=notebook,
        parameters=parameters,
        requirements=[parse_requirement(r) for r in requires],
        timeout=float(entry["timeout"]) if entry.get("timeout") else None,
        kernel=entry.get("kernel"),
        cwd=base / entry["cwd"] if entry.get("cwd") else None,
        experiment=entry.get("experiment"),
        allow_new=bool(entry.get("allow_new", False)),
        cache=bool(entry.get("cache", True)),
    )


def run_ci(jobs: list[CiJob], output_dir: Path, echo: Any = None, cache: bool = True) -> list[CiOutcome]:
    """Run every job (a failure does not stop the others); ``echo(text)`` hears each job's summary;
    ``cache=False`` runs every stage of every job."""
    from mlops_nb.jobs.runner import run_job

    outcomes = []
    for job in jobs:
        started = time.monotonic()
        options = JobOptions(
            experiment=job.experiment,
            run_name=job.name,
            tags={tags.CI: "true"},
            requirements=job.requirements,
            cache=cache and job.cache,
        )
        try:
            result = run_job(
                job.notebook,
                output=output_dir / f"{job.name}.ipynb",
                parameters=job.parameters,
                options=options,
                kernel=job.kernel,
                cwd=job.cwd,
                timeout=job.timeout,
                allow_new=job.allow_new,
            )
            outcome = CiOutcome(job, result, duration=time.monotonic() - started)
        except UsageError as e:
            outcome = CiOutcome(job, None, str(e), time.monotonic() - started)
        outcomes.append(outcome)
        if echo is not None:
            echo(f"[{job.name}] " + (outcome.result.summary() if outcome.result else f"ERROR {outcome.error}"))
    return outcomes


def junit_xml(outcomes: list[CiOutcome], suite: str = "mlops-nb") -> str:
    """JUnit XML: one testcase per job; a failed requirement is a failure, anything else an error."""
    failures = sum(1 for o in outcomes if o.result is not None and o.result.outcome == REQUIREMENT_FAILED)
    errors = sum(1 for o in outcomes if not o.ok) - failures
    root = ET.Element("testsuites", tests=str(len(outcomes)), failures=str(failures), errors=str(errors))
    total = f"{sum(o.duration for o in outcomes):.3f}"
    suite_el = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(outcomes)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=total,
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    root.set("time", total)
    for o in outcomes:
        case = ET.SubElement(
            suite_el,
            "testcase",
            name=o.job.name,
            classname=f"notebooks.{o.job.notebook.stem}",
            time=f"{o.duration:.3f}",
        )
        if o.result is not None:
            props = ET.SubElement(case, "properties")
            ET.SubElement(props, "property", name="mlflow_run_id", value=o.result.run_id)
            ET.SubElement(props, "property", name="outcome", value=o.result.outcome)
        if o.result is None:
            ET.SubElement(case, "error", message=o.error[:500], type="UsageError").text = o.error
        elif o.result.outcome == REQUIREMENT_FAILED:
            detail = "\n".join(g.message for g in o.result.gates)
            ET.SubElement(case, "failure", message=o.result.message[:500], type="RequirementFailed").text = detail
        elif not o.result.ok:
            ET.SubElement(case, "error", message=o.result.message[:500], type=o.result.outcome).text = o.result.message
        if o.result is not None:
            ET.SubElement(case, "system-out").text = o.result.summary()
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_monitor_workflow(project_root: Path, schedule: str, force: bool = False) -> Path:
    """Write ``.github/workflows/monitor.yml`` running ``mlops-nb monitor`` on the cron ``schedule``."""
    import json

    path = project_root / ".github" / "workflows" / "monitor.yml"
    if path.exists() and not force:
        raise UsageError(f"{path} exists already; pass --force to overwrite it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MONITOR_WORKFLOW.format(cron=json.dumps(schedule)), encoding="utf-8")  # JSON: a YAML string
    return path


def write_workflow(project_root: Path, force: bool = False) -> Path:
    """Write ``.github/workflows/notebooks.yml`` running ``mlops-nb ci``; UsageError if it exists (unless force)."""
    path = project_root / ".github" / "workflows" / "notebooks.yml"
    if path.exists() and not force:
        raise UsageError(f"{path} exists already; pass --force to overwrite it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(WORKFLOW, encoding="utf-8")
