"""Running a notebook cell as a tracked, cached pipeline stage.

``StageRunner.run`` is what ``%%track`` calls: it plans the stage (plan.py: inputs, fingerprints, key), and
then either restores it from the cache (re-running the cell's imports and definitions, never unpickling
modules; putting back the inputs it changed, mutation.py; showing again what it showed, outputs.py) or
executes the cell in the user's namespace, records what it shows and which inputs it changed, and stores it
when its cell ends. Either way the stage is an MLflow run nested under the notebook's run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops_nb.exceptions import UpstreamNotCached
from mlops_nb.redaction import redact_uri
from mlops_nb.stages import figures, files, mutation, rng
from mlops_nb.stages.analysis import CellAnalysis, analyse
from mlops_nb.stages.cache import Cache, CacheMiss, NotShared
from mlops_nb.stages.outputs import AFTER, CELL, Capture, Captured, Replayed, replay, show_as
from mlops_nb.stages.plan import Plan, Planner, StageOptions
from mlops_nb.tracking import tags
from mlops_nb.tracking.provenance import ipython_shell
from mlops_nb.tracking.recorder import CACHE_ONLY_ENV, RECORD_ONLY_ENV, get_recorder
from mlops_nb.tracking.runs import Run, stage

# The names other modules import from here; each tag is declared once, in tracking/tags.py.
CACHE_KEY_TAG = tags.CACHE_KEY
CACHE_SOURCE_TAG = tags.CACHE_SOURCE
CACHE_SKIPPED_TAG = tags.CACHE_SKIPPED
CACHE_MISS_TAG = tags.CACHE_MISS
DURATION_TAG = tags.DURATION  # the cell's own time, without the recording around it
STDOUT_TAIL = 10_000
MAX_METRIC_HISTORY = 100_000  # metric values (every step) a cache entry keeps for a hit to log again


@dataclass
class StageRecord:
    """One stage execution in this session (the rows of ``%mlops stages``)."""

    name: str
    status: str = "RUNNING"
    cache_hit: bool = False
    duration: float = 0.0
    run: Run | None = None
    note: str = ""

    @property
    def run_id(self) -> str:
        """The MLflow run id, or '' while the run is not yet in MLflow (never waits)."""
        return self.run.known_run_id if self.run is not None else ""


@dataclass
class _Running:
    """A stage whose code returned, waiting for its cell to end (the inline backend flushes figures then)."""

    plan: Plan
    analysis: CellAnalysis
    run: Run
    record: StageRecord
    capture: Capture | None
    refs: dict[str, Any]
    states: dict[str, tuple[str, Any]]
    outputs: dict[str, Any]
    fps: dict[str, str | None]
    written: list[str]
    rng_before: dict[str, Any]
    figures_before: set[int]
    skipped: str
    result: Any  # the value of its last expression (None when that is a bare name: a hit shows what it holds)


def _tag_key(prefix: str, name: str) -> str:
    """A tag key MLflow accepts for a path or module name (letters, digits, ``_-./`` and spaces)."""
    return prefix + re.sub(r"[^\w./\- ]", "_", name)


class StageRunner:
    """The stages of one IPython session, run against its user namespace."""

    def __init__(self, namespace: dict[str, Any], notebook: Callable[[], str | None] = lambda: None) -> None:
        self.ns = namespace
        self.records: list[StageRecord] = []
        self.listeners: list[Callable[[StageRecord], None]] = []
        self.planner = Planner(namespace, notebook)
        self._cache: Cache | None = None
        self._cache_at: tuple[Any, ...] = ()  # the (folder, shared URL) it was opened for
        self._running: _Running | None = None  # a stage whose cell has not ended yet
        self._replay_after: Captured | None = None  # what a restored stage shows once its cell's code returned
        self.cache_only = frozenset(_names(CACHE_ONLY_ENV) or ())
        recorded = _names(RECORD_ONLY_ENV)
        self.record_only = None if recorded is None else frozenset(recorded)
        self._undo_show: Callable[[], None] = lambda: None  # a restored value's display not shown by its cell

    @property
    def cache(self) -> Cache:
        settings = get_recorder().settings
        where = (settings.cache_dir, settings.cache_uri)
        if self._cache is None or self._cache_at != where:
            self._cache = Cache(settings.cache_dir, int(settings.cache_max_mb * 1024 * 1024), settings.cache_uri)
            self._cache_at = where
        return self._cache

    def _changed(self, record: StageRecord) -> None:
        for listener in list(self.listeners):
            listener(record)

    def run(self, name: str, cell: str, options: StageOptions) -> Any:
        """Run ``cell`` as stage ``name``; returns the value of its last expression, like a cell. The stage
        ends when its cell does (``finish``): what the cell shows after its code returned (figures) is its
        own."""
        __tracebackhide__ = True
        self.finish()  # a stage of this cell still open (two stages run from one cell)
        analysis = analyse(cell)  # a SyntaxError surfaces as in a plain cell, before anything is recorded
        plan = self.planner.plan(name, analysis, options)
        settings = get_recorder().settings
        cache_on = options.cache and settings.cache
        skipped = "--no-cache" if not options.cache else "cache off" if not cache_on else plan.uncacheable

        record = StageRecord(name)
        self.records.append(record)
        started = time.perf_counter()
        quiet = self.record_only is not None and name not in self.record_only
        run = stage(name, tags={CACHE_KEY_TAG: plan.key, **options.tags}, quiet=quiet)
        record.run = run
        self._changed(record)
        capture: Capture | None = None
        try:
            run.log_params(plan.params)
            notebook = run.root
            if notebook is not run and notebook.kind in ("notebook", "script") and notebook.status == "RUNNING":
                # a job's run has its injected parameters; a notebook run gets those its stages read, so that
                # comparisons and diffs of notebook runs with job runs see them
                notebook.log_first_params(plan.params)
            run.set_tags({f"{tags.INPUT_PREFIX}{n}": fp or "unhashable" for n, fp in plan.fps.items()})
            run.set_tags({_tag_key(tags.FILE_PREFIX, p): fp for p, fp in plan.files.items() if len(p) < 200})
            run.set_tags({_tag_key(tags.MODULE_PREFIX, m): fp for m, fp in plan.modules.items() if len(m) < 200})
            run.set_tag(tags.CODE_HASH, hashlib.sha256(analysis.normalised.encode()).hexdigest()[:32])
            run.log_text(cell, "stage/code.py")
            if plan.files:
                run.log_text(json.dumps(plan.files, indent=1), "stage/input_files.json")
            if skipped:
                run.set_tags({CACHE_SKIPPED_TAG: skipped[:500], CACHE_MISS_TAG: skipped[:500]})
                self._refuse_miss(name, skipped)
            else:
                served = self._restore(plan, analysis.restore_code, run, record)
                if not isinstance(served, str):
                    record.duration = time.perf_counter() - started
                    return served.value
                run.set_tag(CACHE_MISS_TAG, served[:500])
                self._refuse_miss(name, served)
            uses_random = "random" in analysis.inputs or "random" in analysis.modules
            rng_before = rng.states(python=uses_random) if not skipped else {}
            files_before = files.snapshot(plan.watch) if not skipped else {}
            refs = plan.refs(self.ns)
            figures_before = figures.open_figures()
            shell = ipython_shell()
            capture = Capture(shell).start() if shell is not None else None
            try:
                value = self._execute(analysis.python)
            finally:
                if capture is not None:
                    capture.end_cell()
            outputs = self.planner.outputs(analysis, options)
            mutated = self._mutated(plan, refs, outputs)
            out_fps = self.planner.fingerprints({n: self.ns[n] for n in outputs if n in self.ns})
            out_fps.update(mutated)
            run.set_tags({f"{tags.OUTPUT_PREFIX}{n}": fp or "unhashable" for n, fp in out_fps.items()})
            if mutated:
                run.set_tag(tags.MUTATED, ",".join(sorted(mutated))[:5000])
            record.duration = time.perf_counter() - started
            run.set_tag(DURATION_TAG, f"{record.duration:.3f}")
            written = files.changed(files_before, files.snapshot(plan.watch)) if not skipped else []
            states = {} if skipped else {n: mutation.state_of(refs[n]) for n in mutated}
        except BaseException as e:
            record.status = "FAILED"
            record.duration = time.perf_counter() - started
            if capture is not None:
                self._log_shown(run, capture.stop())
            run.end("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED", e)
            self._changed(record)
            raise
        values = {n: self.ns[n] for n in outputs if n in self.ns}
        self._running = _Running(
            plan,
            analysis,
            run,
            record,
            capture,
            refs,
            states,
            values,
            out_fps,
            written,
            rng_before,
            figures_before,
            skipped,
            None if plan.shows_name else value,
        )
        self._at_cell_end()
        return value

    def _refuse_miss(self, name: str, why: str) -> None:
        """UpstreamNotCached when this job must serve stage ``name`` from the cache (``--no-upstream``)."""
        if name in self.cache_only:
            raise UpstreamNotCached(
                f"upstream stage {name!r} is not in the cache for its key ({why}). Run it first (drop "
                "--no-upstream, or run the stages up to it: --until), then run this stage again."
            )

    def _at_cell_end(self) -> None:
        """Finish the open stage when its cell ends (at once outside IPython)."""
        shell = ipython_shell()
        events = getattr(shell, "events", None)
        if events is None:
            self.finish()
            return
        if self._finish_at_end not in events.callbacks["post_run_cell"]:
            events.register("post_run_cell", self._finish_at_end)

    def _finish_at_end(self, *_: Any) -> None:
        shell = ipython_shell()
        if shell is not None and self._finish_at_end in shell.events.callbacks["post_run_cell"]:
            shell.events.unregister("post_run_cell", self._finish_at_end)
        self.finish()

    def finish(self) -> None:
        """End the stage whose code has returned: keep what its cell showed and its outputs in the cache,
        end its run. Replays what a restored stage showed after its code (figures). Safe to call twice."""
        self._undo_show()
        self._undo_show = lambda: None
        replaying, self._replay_after = self._replay_after, None
        if replaying is not None:
            replay(replaying, AFTER)
        running, self._running = self._running, None
        if running is None:
            return
        run, record = running.run, running.record
        try:
            shown = running.capture.stop() if running.capture is not None else Captured()
            self._log_shown(run, shown)
            if not running.skipped:
                self._store(running, shown)
            run.end("FINISHED")
        except BaseException as e:  # noqa: BLE001 - recorded on the stage; the cell itself succeeded
            run.end("FAILED", e)
            record.status = "FAILED"
            self._changed(record)
            return
        record.status = "FINISHED"
        self._changed(record)

    @staticmethod
    def _log_shown(run: Run, shown: Captured) -> None:
        stdout = shown.stdout
        if stdout:
            run.log_text(stdout[-STDOUT_TAIL:], "stage/stdout.txt")
        if shown.outputs or shown.result is not None:
            run.log_text(json.dumps(shown.nbformat()), "stage/outputs.json")

    def _mutated(self, plan: Plan, refs: dict[str, Any], outputs: list[str]) -> dict[str, str | None]:
        """The inputs (and globals its functions read) the stage changed in place: their new fingerprints."""
        before = {**plan.fps, **plan.hidden}
        after = self.planner.fingerprints({n: obj for n, obj in refs.items() if n in before})
        return {n: fp for n, fp in after.items() if fp != before[n] or fp is None}

    def _execute(self, python: str) -> Any:
        """Run the cell's code in the user namespace; returns its last expression's value."""
        __tracebackhide__ = True
        import ast

        tree = ast.parse(python)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        shell = ipython_shell()
        filename = shell.compile.cache(python) if shell is not None else "<stage>"
        exec(compile(tree, filename, "exec"), self.ns)
        return eval(compile(ast.Expression(last.value), filename, "eval"), self.ns) if last else None

    def _restore(self, plan: Plan, restore_code: str, run: Run, record: StageRecord) -> _Served | str:
        """Serve the stage from the cache; returns what the cell shows as its value when it was, else why not
        (the miss reason)."""
        try:
            entry = self.cache.lookup(plan.key)
        except (CacheMiss, OSError) as e:  # the shared cache cannot be read, no room for its copy: run it
            return redact_uri(str(e))
        if entry is None:
            why = self.cache.why_unstored(plan.key)
            return "no cached result for this code and these inputs" + (f" ({why})" if why else "")
        manifest = entry.manifest
        needed = manifest.get("rng_before", {})
        current = rng.fingerprints(rng.states(python="random" in needed)) if needed else {}
        differs = sorted(g for g, fp in needed.items() if current.get(g) != fp)
        if differs:
            return f"the global random state ({', '.join(differs)}) is not the one the cached run started from"
        refs = plan.refs(self.ns)
        try:
            if restore_code:  # imports and definitions first: unpickling may need them
                exec(compile(restore_code, "<mlops-nb restore>", "exec"), self.ns)
            with figures.restoring() as held:
                restored = self.cache.restore(entry, refs)
                held.extend(restored.values[n] for n in manifest.get("figures_open", []) if n in restored.values)
                in_place = {n: s for n, s in restored.states.items() if s[0] != "value"}
                refused = [n for n, (kind, state) in in_place.items() if not mutation.can_put(refs.get(n), kind, state)]
                if refused:
                    raise CacheMiss(f"the state of {', '.join(refused)} cannot be put back in place")
        except Exception as e:  # noqa: BLE001 - CacheMiss, or an import that fails now: run the cell instead
            return redact_uri(str(e))
        for name, (kind, state) in restored.states.items():
            if kind == "value":
                self.ns[name] = state
            else:
                mutation.put_state(refs[name], kind, state)
        self.ns.update(restored.values)
        # what a pickle round trip gave back: the pickled outputs, and the inputs given back their new state
        recorded = {n: o["fingerprint"] for n, o in manifest["outputs"].items() if o.get("format") == "object"}
        recorded.update(manifest.get("mutated_fingerprints", {}))
        self.planner.restored({n: self.ns[n] for n in recorded if n in self.ns}, recorded)
        rng.set_states(manifest.get("rng_after", {}))
        run.set_tag(tags.CACHE_HIT, "true")
        if manifest.get("run_key"):
            run.link_tag(CACHE_SOURCE_TAG, manifest["run_key"])
        run.set_tags(
            {f"{tags.OUTPUT_PREFIX}{n}": o["fingerprint"] or "unhashable" for n, o in manifest["outputs"].items()}
        )
        if manifest.get("mutated"):
            run.set_tag(tags.MUTATED, ",".join(sorted(manifest["mutated"]))[:5000])
        for key, value, step in manifest.get("metrics", []):
            run.log_metric(key, value, step)
        shown = Captured.from_json(restored.shown) if restored.shown else Captured()
        self._log_shown(run, shown)
        replay(shown, CELL)
        self._replay_after = shown
        self._at_cell_end()
        record.cache_hit = True
        record.status = "FINISHED"
        record.note = f"restored from the cache, {manifest.get('duration', 0):.2f} s saved"
        run.end("FINISHED")
        self._changed(record)
        if plan.shows_name in self.ns:
            return _Served(self.ns[plan.shows_name])
        if restored.has_result:  # the value itself: ``_`` and Out[n] hold it, as after a run
            if shown.result is not None and ipython_shell() is not None:
                self._undo_show = show_as(ipython_shell(), restored.result, shown.result)
            return _Served(restored.result)
        return _Served(Replayed(shown.result) if shown.result is not None else None)

    def _store(self, running: _Running, shown: Captured) -> None:
        plan, run, record = running.plan, running.run, running.record
        rng_after = rng.states(python="random" in running.rng_before)
        drawn = rng.drawn(running.rng_before, rng_after)
        left_open = figures.left_open(running.figures_before, running.outputs)
        meta = {
            "stage": record.name,
            "run_key": run.key,
            "metrics": run.metric_history,
            "duration": record.duration,
            "restore_code": running.analysis.restore_code,
            # a generator the cell seeds first thing does not depend on the state it started from
            "rng_before": rng.fingerprints(
                {g: running.rng_before[g] for g in drawn if g in running.rng_before and g not in plan.seeds}
            ),
            "rng_after": rng.saved({g: rng_after[g] for g in drawn}),
            "figures_open": left_open.held,
            "mutated_fingerprints": {n: running.fps.get(n) for n in running.states},
        }
        if running.written:
            run.set_tag(tags.OUTPUT_FILES, ",".join(running.written)[:5000])
        if len(run.metric_history) >= MAX_METRIC_HISTORY:
            run.set_tag(CACHE_SKIPPED_TAG, f"it logged more than {MAX_METRIC_HISTORY} metric values")
            return
        if left_open.unheld:
            run.set_tag(CACHE_SKIPPED_TAG, f"it leaves {left_open.unheld} pyplot figure(s) open that no output holds")
            return
        try:
            self.cache.store(
                plan.key,
                running.outputs,
                running.fps,
                meta,
                files={p: plan.watch[p] for p in running.written},
                refs=running.refs,
                states=running.states,
                shown=shown.to_json(),
                result=running.result,
            )
        except NotShared as e:  # cached here; the team's shared cache did not take it
            run.set_tag(CACHE_SKIPPED_TAG, redact_uri(str(e))[:500])
        except Exception as e:  # noqa: BLE001 - an output that cannot be saved: the stage just is not cached
            why = redact_uri(f"cannot save the outputs: {e!r}")[:500]
            run.set_tag(CACHE_SKIPPED_TAG, why)
            self.cache.unstored(plan.key, f"its last run was not kept: {why}")


def _names(variable: str) -> list[str] | None:
    """The stage names of environment variable ``variable`` (a JSON list; None when it is unset or not one)."""
    try:
        names = json.loads(os.environ[variable])
    except (KeyError, ValueError):
        return None
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else None


@dataclass
class _Served:
    """A stage served from the cache: the value its cell shows (what the run's last expression showed)."""

    value: Any
