"""The tasks an exported DAG may end with, after its stages: ``mlops-nb promote`` of the DAG run's job run
behind the gates, then ``mlops-nb monitor`` of the model on fresh data (export-pipeline's ``--promote NAME
[--alias A] [--require ...] [--must-beat ALIAS --metric M]`` and ``--monitor-data PATH [--monitor MODEL_URI]``,
the flags of ``mlops-nb promote`` and ``mlops-nb monitor``).

``steps()`` gives each task's id and its ``mlops-nb`` arguments; the promote task's run id (the DAG run's job
run) is appended by the DAG. Values are checked here and reach the DAG file only as Python literals.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops_nb.exceptions import UsageError
from mlops_nb.gates import parse_requirement
from mlops_nb.pipelines.model import printable


@dataclass(frozen=True)
class Finale:
    promote: str | None = None
    alias: str | None = None
    require: tuple[str, ...] = ()
    must_beat: str | None = None
    metric: str | None = None
    monitor_data: str | None = None
    monitor_model: str | None = None

    def check(self) -> Finale:
        """This finale, or UsageError naming the fix."""
        given = {
            "--promote": self.promote,
            "--alias": self.alias,
            "--must-beat": self.must_beat,
            "--metric": self.metric,
            "--monitor-data": self.monitor_data,
            "--monitor": self.monitor_model,
        }
        for flag, value in given.items():
            if value is not None and (not value.strip() or not value.isprintable() or len(value) > 1000):
                raise UsageError(printable(f"{flag} {value!r}: give a non-empty name or path on one line."))
        if self.promote is None and (self.alias or self.require or self.must_beat or self.metric):
            raise UsageError("--alias, --require, --must-beat and --metric go with --promote NAME.")
        if self.must_beat and not (self.metric or self.require):
            raise UsageError("--must-beat ALIAS compares on a metric: give --metric M (or a --require).")
        for text in self.require:
            parse_requirement(text)  # UsageError: 'accuracy >= 0.9'
        if self.monitor_model and not self.monitor_data:
            raise UsageError("--monitor MODEL_URI checks the model on data: give --monitor-data PATH.")
        if self.monitor_data and not (self.monitor_model or self.promote):
            raise UsageError(
                "--monitor-data PATH: say which model to check: --promote NAME (its @alias) or --monitor MODEL_URI."
            )
        return self

    def steps(self, taken: set[str]) -> list[tuple[str, list[str], bool]]:
        """(task id, mlops-nb arguments, whether the DAG run's job run id goes last) of each task, in order."""
        from mlops_nb.pipelines.tasks import safe_id

        found: list[tuple[str, list[str], bool]] = []
        alias = self.alias or "champion"
        if self.promote:
            args = ["promote", "--name", self.promote, "--alias", alias]
            for text in self.require:
                args += ["--require", text]
            if self.must_beat:
                args += ["--must-beat", self.must_beat]
            if self.metric:
                args += ["--metric", self.metric]
            found.append((safe_id("promote", taken), args, True))
        if self.monitor_data:
            model = self.monitor_model or f"models:/{self.promote}@{alias}"
            found.append((safe_id("monitor", taken), ["monitor", model, "--data", self.monitor_data], False))
        return found
