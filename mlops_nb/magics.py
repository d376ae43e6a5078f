"""The notebook magics: ``%load_ext mlops_nb``, ``%mlops ...`` and ``%%track STAGE``.

Glue only: parse the arguments (IPython's ``magic_arguments`` gives the usage messages), call ``stages/``
or ``tracking/``, format the answer.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from mlops_nb.exceptions import MlopsNbError
from mlops_nb.redaction import redact_uri
from mlops_nb.stages import track as track_line
from mlops_nb.stages.plan import StageOptions
from mlops_nb.stages.stage import StageRunner
from mlops_nb.tracking import provenance, recorder, runs


def _arguments(magic: Any, line: str) -> Any:
    """The arguments of a magic's ``line``, quoted as in a shell (IPython's own ``parse_argstring`` keeps the
    quotes)."""
    try:
        return magic.parser.parse_args(track_line.split(line))
    except MlopsNbError as e:
        raise UsageError(str(e)) from e


def _track_arguments(func: Any) -> Any:
    """``@magic_arguments()`` and an ``@argument`` per entry of ``stages/track.py``'s ``ARGUMENTS``."""
    for flags, kwargs in reversed(track_line.ARGUMENTS):
        func = argument(*flags, **kwargs)(func)
    return magic_arguments()(func)


def where() -> str:
    """The line ``%load_ext`` and ``%mlops init`` print: where records go, which experiment, the cache."""
    settings = recorder.get_recorder().settings
    shared = f", shared: {redact_uri(settings.cache_uri)}" if settings.cache_uri else ""
    return (
        f"mlops-nb: tracking to {redact_uri(settings.tracking_uri)}, experiment {runs.default_experiment()!r} "
        f"(stage cache: {settings.cache_dir}{shared})"
    )


@magics_class
class MlopsMagics(Magics):
    """``%mlops`` and ``%%track``."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.runner = StageRunner(shell.user_ns, provenance.notebook_path)
        self._namer: Any = None  # %mlops auto's stage names (stages/auto.py), once it is on

    @_track_arguments
    @cell_magic
    def track(self, line: str, cell: str) -> Any:
        """Run the cell as the pipeline stage STAGE: an MLflow run nested under the notebook's run, skipped
        (its outputs restored from the cache) when its code, inputs and parameters are unchanged."""
        __tracebackhide__ = True
        args = _arguments(self.track, line)
        try:
            declared = track_line.from_arguments(args)
            tags = runs.parse_tags(declared.tags)
        except MlopsNbError as e:
            raise UsageError(str(e)) from e
        options = StageOptions(
            inputs=declared.inputs,
            outputs=declared.outputs,
            params=declared.params,
            cache=declared.cache,
            tags=tags,
        )
        value = self.runner.run(args.stage, cell, options)
        record = self.runner.records[-1]
        if record.cache_hit:
            print(f"⟳ {record.name}: {record.note}")
        return value

    @magic_arguments()
    @argument("command", choices=["init", "stages", "panel", "auto"], help="init | stages | panel | auto")
    @argument("--experiment", help="init: the MLflow experiment of this notebook's runs")
    @argument("--tracking-uri", help="init: where records go (default: MLFLOW_TRACKING_URI or the embedded store)")
    @argument("--off", action="store_true", help="auto: stop tracking every cell")
    @line_magic
    def mlops(self, line: str) -> Any:
        """%mlops init [--experiment NAME] [--tracking-uri URI] | %mlops stages | %mlops panel |
        %mlops auto [--off] (every code cell that does work runs as a stage named after its first comment or
        the markdown heading above it)"""
        args = _arguments(self.mlops, line)
        if args.off and args.command != "auto":
            raise UsageError(f"--off goes with %mlops auto, not %mlops {args.command}")
        if args.command == "auto":
            self._auto(not args.off)
            return None
        if args.command == "init":
            try:
                recorder.configure(experiment=args.experiment, tracking_uri=args.tracking_uri)
            except MlopsNbError as e:
                raise UsageError(str(e)) from e
            runs.end_all_runs()  # the next stage starts the notebook's run with the new settings
            print(where())
            return None
        if args.experiment or args.tracking_uri:
            raise UsageError(f"--experiment and --tracking-uri go with %mlops init, not %mlops {args.command}")
        if args.command == "stages":
            from mlops_nb.widgets.stages import stage_table

            recorder.get_recorder().flush(timeout=15)  # so that the table shows the MLflow run ids
            return stage_table(self.runner.records)
        from mlops_nb.widgets.runs import panel

        return panel(self.runner, provenance.notebook_path)

    def _auto(self, on: bool) -> None:
        transformers = self.shell.input_transformers_cleanup
        if self._auto_cell in transformers:
            transformers.remove(self._auto_cell)
        if on:
            from mlops_nb.stages.auto import Namer

            self._namer = Namer(provenance.notebook_path())
            transformers.append(self._auto_cell)
            print("mlops-nb: every code cell that does work now runs as a stage (%mlops auto --off to stop)")

    def _auto_cell(self, lines: list[str]) -> list[str]:
        """IPython input transformer of ``%mlops auto``: a cell that does work gets its ``%%track`` line."""
        from mlops_nb.stages.auto import does_work

        cell = "".join(lines)
        if not does_work(cell):
            return lines
        return [f"%%track {self._namer.name(cell, self.shell.execution_count)}\n", *lines]


IDLE_SECONDS = 0.5  # no cell started for this long after one ended: the notebook is idle
CONNECT_AT_THE_LATEST = 30.0  # MLflow loads this long after %load_ext even while cells keep running


class _WhenIdle:
    """Calls ``then`` once, when no cell has started for ``IDLE_SECONDS`` after one ended (Run All keeps the
    kernel busy; a person reading the output does not)."""

    def __init__(self, shell: Any, then: Any) -> None:
        import threading

        self._then = then
        self._timer: threading.Timer | None = None
        self._done = False
        shell.events.register("pre_run_cell", self._busy)
        shell.events.register("post_run_cell", self._idle)

    def _busy(self, *_: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _idle(self, *_: Any) -> None:
        import threading

        if not self._done:
            self._timer = threading.Timer(IDLE_SECONDS, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        if not self._done:
            self._done = True
            self._then()


def load(shell: Any) -> None:
    """Register the magics and say where records go. MLflow loads in the background once the notebook is idle
    (records wait in the journal meanwhile), so its import does not slow the cells that follow."""
    if recorder.current_recorder() is None:
        recorder.defer_connection(CONNECT_AT_THE_LATEST)
    shell.register_magics(MlopsMagics(shell))
    print(where())
    _WhenIdle(shell, lambda: (current := recorder.current_recorder()) and current.connect_now())
