"""Running a notebook cell as a tracked, cached pipeline stage.

``StageRunner.run`` is what ``%%track`` calls: it works out the cell's inputs and outputs, fingerprints the
inputs, computes the stage key, and then either restores the outputs from the cache (re-running the
cell's imports and definitions, never unpickling modules) or executes the cell in the user's namespace,
stores its outputs and records it. Either way the stage is an MLflow run nested under the notebook's run.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlops_nb.stages import params as params_mod
from mlops_nb.stages.analysis import analyse
from mlops_nb.stages.cache import Cache
from mlops_nb.stages.fingerprint import fingerprint
from mlops_nb.tracking.provenance import ipython_shell
from mlops_nb.tracking.recorder import get_recorder
from mlops_nb.tracking.runs import CACHE_HIT_TAG, Run, stage

CACHE_VERSION = "mlops-nb-stage-cache-1"  # bump when the key or the entry format changes meaning
CACHE_KEY_TAG = "mlops_nb.cache_key"
CACHE_SOURCE_TAG = "mlops_nb.cache_source_run"
DURATION_TAG = "mlops_nb.duration_s"  # the cell's own time, without the recording around it
STDOUT_TAIL = 10_000
# IPython's own names in the user namespace: never inputs or outputs of a stage.
_IPYTHON_NAMES = re.compile(r"^(_+|_i+|_i?\d+|_oh|_dh|_ih|In|Out|get_ipython|exit|quit)$")


@dataclass
class StageOptions:
    """What ``%%track`` was told: declared inputs/outputs/params override the inference."""

    inputs: list[str] | None = None
    outputs: list[str] | None = None
    params: list[str] = field(default_factory=list)
    cache: bool = True
    tags: dict[str, str] = field(default_factory=dict)


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


def stage_key(
    normalised_code: str, inputs: dict[str, str | None], params: dict[str, str | None], outputs: list[str] | None
) -> str:
    """The cache key: normalised code + input fingerprints + parameter values + declared outputs + version."""
    h = hashlib.sha256(CACHE_VERSION.encode())
    payload = {
        "code": normalised_code,
        "in": sorted(inputs.items()),
        "params": sorted(params.items()),
        "out": sorted(outputs) if outputs is not None else None,
    }
    h.update(json.dumps(payload).encode())
    return h.hexdigest()


class _Tee:
    """Stands in for sys.stdout during a stage: writes through, keeps the tail for the record."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.tail = ""

    def write(self, text: str) -> int:
        self.tail = (self.tail + text)[-STDOUT_TAIL:]
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class StageRunner:
    """The stages of one IPython session, run against its user namespace."""

    def __init__(self, namespace: dict[str, Any], notebook: Callable[[], str | None] = lambda: None) -> None:
        self.ns = namespace
        self.records: list[StageRecord] = []
        self.listeners: list[Callable[[StageRecord], None]] = []
        self._notebook = notebook
        self._cache: Cache | None = None

    @property
    def cache(self) -> Cache:
        settings = get_recorder().settings
        if self._cache is None or self._cache.root.parent != settings.cache_dir:
            self._cache = Cache(settings.cache_dir, int(settings.cache_max_mb * 1024 * 1024))
        return self._cache

    def _changed(self, record: StageRecord) -> None:
        for listener in list(self.listeners):
            listener(record)

    def run(self, name: str, cell: str, options: StageOptions) -> Any:
        """Run ``cell`` as stage ``name``; returns the value of its last expression, like a cell."""
        __tracebackhide__ = True
        analysis = analyse(cell)  # a SyntaxError surfaces as in a plain cell, before anything is recorded
        declared = set(options.inputs or ()) | set(options.params)
        missing = sorted(n for n in declared if n not in self.ns)
        if missing:
            raise NameError(f"%%track {name}: declared input(s) {', '.join(missing)} are not defined")
        inputs = (
            options.inputs
            if options.inputs is not None
            else [n for n in analysis.inputs if n in self.ns and not _IPYTHON_NAMES.match(n)]
        )
        fps = {n: fingerprint(self.ns[n]) for n in inputs}
        parameter_names = params_mod.parameter_names(self.ns, self._notebook())
        params = {n: self.ns[n] for n in inputs if n in parameter_names}
        params.update({n: self.ns[n] for n in options.params})
        # Parameters read by the cell are inputs too: their fingerprints are already known.
        param_fps = {n: fps[n] if n in fps else fingerprint(v) for n, v in params.items()}
        key = stage_key(analysis.normalised, fps, param_fps, options.outputs)
        cache_on = options.cache and get_recorder().settings.cache
        cacheable = cache_on and all(fp is not None for fp in fps.values())

        record = StageRecord(name)
        self.records.append(record)
        started = time.perf_counter()
        run = stage(name, tags={CACHE_KEY_TAG: key, **options.tags})
        record.run = run
        self._changed(record)
        with run:
            run.log_params(params)
            run.set_tags({f"mlops_nb.input.{n}": fp or "unhashable" for n, fp in fps.items()})
            run.log_text(cell, "stage/code.py")
            if not cacheable:
                why = (
                    "--no-cache" if not options.cache else "cache off" if not cache_on else "an input cannot be hashed"
                )
                run.set_tag("mlops_nb.cache_skipped", why)
            elif self._restore(key, analysis.restore_code, run, record):
                record.duration = time.perf_counter() - started
                return None
            try:
                value, stdout = self._execute(analysis.python, run)
            except BaseException:
                record.status = "FAILED"
                record.duration = time.perf_counter() - started
                self._changed(record)
                raise
            outputs = (
                options.outputs
                if options.outputs is not None
                else [
                    n
                    for n in analysis.outputs
                    if n in self.ns and not _IPYTHON_NAMES.match(n) and not isinstance(self.ns[n], types.ModuleType)
                ]
            )
            out_fps = {n: fingerprint(self.ns[n]) for n in outputs if n in self.ns}
            run.set_tags({f"mlops_nb.output.{n}": fp or "unhashable" for n, fp in out_fps.items()})
            record.duration = time.perf_counter() - started
            run.set_tag(DURATION_TAG, f"{record.duration:.3f}")
            if cacheable:
                self._store(key, out_fps, analysis.restore_code, run, record, stdout)
        record.status = "FINISHED"
        self._changed(record)
        return value

    def _execute(self, python: str, run: Run) -> tuple[Any, str]:
        """Run the cell's code in the user namespace; returns its last expression's value and stdout tail."""
        __tracebackhide__ = True
        import ast

        tree = ast.parse(python)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        shell = ipython_shell()
        filename = shell.compile.cache(python) if shell is not None else "<stage>"
        tee = _Tee(sys.stdout)
        sys.stdout = tee
        try:
            exec(compile(tree, filename, "exec"), self.ns)
            value = eval(compile(ast.Expression(last.value), filename, "eval"), self.ns) if last else None
        finally:
            sys.stdout = tee._stream
            if tee.tail:
                run.log_text(tee.tail, "stage/stdout.txt")
        return value, tee.tail

    def _restore(self, key: str, restore_code: str, run: Run, record: StageRecord) -> bool:
        entry = self.cache.lookup(key)
        if entry is None:
            return False
        try:
            if restore_code:  # imports and definitions first: unpickling may need them
                exec(compile(restore_code, "<mlops-nb restore>", "exec"), self.ns)
            values = self.cache.restore(entry)
        except Exception as e:  # noqa: BLE001 - CacheMiss, or an import that fails now: run the cell instead
            run.set_tag("mlops_nb.cache_miss_reason", str(e)[:500])
            return False
        self.ns.update(values)
        manifest = entry.manifest
        run.set_tag(CACHE_HIT_TAG, "true")
        if manifest.get("run_key"):
            run.link_tag(CACHE_SOURCE_TAG, manifest["run_key"])
        run.set_tags({f"mlops_nb.output.{n}": o["fingerprint"] or "unhashable" for n, o in manifest["outputs"].items()})
        run.log_metrics(manifest.get("metrics", {}))
        if manifest.get("stdout"):
            run.log_text(manifest["stdout"], "stage/stdout.txt")
        record.cache_hit = True
        record.status = "FINISHED"
        record.note = f"restored from the cache, {manifest.get('duration', 0):.2f} s saved"
        run.end("FINISHED")
        self._changed(record)
        return True

    def _store(
        self, key: str, fps: dict[str, str | None], restore_code: str, run: Run, record: StageRecord, stdout: str
    ) -> None:
        values = {n: self.ns[n] for n in fps}
        meta = {
            "stage": record.name,
            "run_key": run.key,
            "metrics": dict(run.metrics),
            "duration": record.duration,
            "stdout": stdout,
            "restore_code": restore_code,
        }
        try:
            self.cache.store(key, values, fps, meta)
        except Exception as e:  # noqa: BLE001 - an output that cannot be saved: the stage just is not cached
            run.set_tag("mlops_nb.cache_skipped", f"cannot save the outputs: {e!r}"[:500])
