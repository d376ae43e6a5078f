"""Running a notebook cell as a tracked, cached pipeline stage.

``StageRunner.run`` is what ``%%track`` calls: it works out the cell's inputs and outputs, fingerprints the
inputs, computes the stage key, and then either restores the outputs from the cache (re-running the
cell's imports and definitions, never unpickling modules) or executes the cell in the user's namespace,
stores its outputs and records it. Either way the stage is an MLflow run nested under the notebook's run.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import os
import re
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_nb.stages import files, rng
from mlops_nb.stages import params as params_mod
from mlops_nb.stages.analysis import CellAnalysis, analyse, evaluate_path
from mlops_nb.stages.cache import Cache
from mlops_nb.stages.fingerprint import fingerprint, fingerprints, is_local_file, package_version
from mlops_nb.tracking import tags
from mlops_nb.tracking.provenance import ipython_shell
from mlops_nb.tracking.recorder import get_recorder
from mlops_nb.tracking.runs import Run, stage

CACHE_VERSION = "mlops-nb-stage-cache-2"  # bump when the key or the entry format changes meaning
# The names other modules import from here; each tag is declared once, in tracking/tags.py.
CACHE_KEY_TAG = tags.CACHE_KEY
CACHE_SOURCE_TAG = tags.CACHE_SOURCE
CACHE_SKIPPED_TAG = tags.CACHE_SKIPPED
CACHE_MISS_TAG = tags.CACHE_MISS
DURATION_TAG = tags.DURATION  # the cell's own time, without the recording around it
STDOUT_TAIL = 10_000
MAX_METRIC_HISTORY = 100_000  # metric values (every step) a cache entry keeps for a hit to log again
# IPython's own names in the user namespace: never inputs or outputs of a stage.
_IPYTHON_NAMES = re.compile(r"^(_+|_i+|_i?\d+|_oh|_dh|_ih|In|Out|get_ipython|exit|quit|__builtins?__|__name__)$")


@dataclass
class StageOptions:
    """What ``%%track`` was told: declared inputs/outputs/params override the inference.

    ``inputs`` and ``outputs`` hold names of the namespace and file paths (any entry that is not a Python name).
    """

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
    normalised_code: str,
    inputs: dict[str, str | None],
    outputs: list[str] | None = None,
    *,
    files: dict[str, str] | None = None,
    modules: dict[str, str] | None = None,
    context: dict[str, str] | None = None,
) -> str:
    """The cache key: normalised code, the fingerprints of the names, files and modules it depends on, the
    declared outputs, the context (Python version, store) and the cache version."""
    h = hashlib.sha256(CACHE_VERSION.encode())
    payload = {
        "code": normalised_code,
        "in": sorted(inputs.items()),
        "files": sorted((files or {}).items()),
        "modules": sorted((modules or {}).items()),
        "out": sorted(outputs) if outputs is not None else None,
        "context": sorted((context or {}).items()),
    }
    h.update(json.dumps(payload).encode())
    return h.hexdigest()


def _store_identity(uri: str) -> str:
    """The tracking store a stage records into, without credentials or query (they do not change the store)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass
class _Plan:
    """What a stage depends on, worked out before it runs."""

    inputs: list[str]
    fps: dict[str, str | None]
    params: dict[str, Any]
    files: dict[str, str]  # file inputs: path -> content fingerprint ("absent" for a declared missing file)
    watch: dict[str, bool]  # paths whose change while the stage runs makes them outputs (-> may be a folder)
    modules: dict[str, str]
    key: str
    uncacheable: str = ""  # why the stage cannot be served from or stored in the cache
    seeds: tuple[str, ...] = ()  # global generators the cell seeds before it draws


def _holds(folder: Path, home: Path) -> bool:
    """True when ``folder`` is mlops-nb's home or contains it (its cache and journals change at every stage)."""
    if not folder.is_dir():
        return False
    resolved = folder.resolve()
    return resolved == home or resolved in home.parents


def _tag_key(prefix: str, name: str) -> str:
    """A tag key MLflow accepts for a path or module name (letters, digits, ``_-./`` and spaces)."""
    return prefix + re.sub(r"[^\w./\- ]", "_", name)


def _split(declared: list[str] | None) -> tuple[list[str] | None, list[str]]:
    """Names and file paths of a ``--in``/``--out`` list."""
    if declared is None:
        return None, []
    return [n for n in declared if n.isidentifier()], [p for p in declared if not p.isidentifier()]


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
        # Names of builtins that IPython itself puts into the namespace (``open``, ``exit``): not the user's,
        # unless the user assigns them (``max = 99`` is an input like any other).
        self._shell_builtins = {
            n: v
            for n, v in namespace.items()
            if n in vars(builtins)
            and (
                vars(builtins)[n] in (v, getattr(v, "__wrapped__", None))  # IPython's open() wraps the builtin
                or str(getattr(v, "__module__", "")).startswith(("IPython", "ipykernel"))
            )
        }

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
        plan = self._plan(name, analysis, options)
        settings = get_recorder().settings
        cache_on = options.cache and settings.cache
        skipped = "--no-cache" if not options.cache else "cache off" if not cache_on else plan.uncacheable

        record = StageRecord(name)
        self.records.append(record)
        started = time.perf_counter()
        run = stage(name, tags={CACHE_KEY_TAG: plan.key, **options.tags})
        record.run = run
        self._changed(record)
        with run:
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
            else:
                miss = self._restore(plan, analysis.restore_code, run, record)
                if miss is None:
                    record.duration = time.perf_counter() - started
                    return None
                run.set_tag(CACHE_MISS_TAG, miss[:500])
            uses_random = "random" in analysis.inputs or "random" in analysis.modules
            rng_before = rng.states(python=uses_random) if not skipped else {}
            files_before = files.snapshot(plan.watch) if not skipped else {}
            try:
                value, stdout = self._execute(analysis.python, run)
            except BaseException:
                record.status = "FAILED"
                record.duration = time.perf_counter() - started
                self._changed(record)
                raise
            outputs = self._outputs(analysis, options)
            out_fps = fingerprints({n: self.ns[n] for n in outputs if n in self.ns})
            run.set_tags({f"{tags.OUTPUT_PREFIX}{n}": fp or "unhashable" for n, fp in out_fps.items()})
            record.duration = time.perf_counter() - started
            run.set_tag(DURATION_TAG, f"{record.duration:.3f}")
            if not skipped:
                written = files.changed(files_before, files.snapshot(plan.watch))
                self._store(plan, out_fps, written, rng_before, analysis.restore_code, run, record, stdout)
        record.status = "FINISHED"
        self._changed(record)
        return value

    def _plan(self, name: str, analysis: CellAnalysis, options: StageOptions) -> _Plan:
        """The stage's inputs (names, files, local modules), their fingerprints and its key."""
        declared_names, declared_paths = _split(options.inputs)
        missing = sorted(n for n in {*(declared_names or ()), *options.params} if n not in self.ns)
        if missing:
            raise NameError(f"%%track {name}: declared input(s) {', '.join(missing)} are not defined")
        inputs = (
            declared_names
            if declared_names is not None
            else [n for n in analysis.inputs if n in self.ns and not self._not_an_input(n)]
        )
        fps = fingerprints({n: self.ns[n] for n in [*inputs, *(p for p in options.params if p not in inputs)]})
        parameter_names = params_mod.parameter_names(self.ns, self._notebook())
        params = {n: self.ns[n] for n in fps if n in parameter_names or n in options.params}
        reasons = [f"input {n!r} cannot be fingerprinted" for n, fp in fps.items() if fp is None]

        file_fps, watch = self._files(analysis, options, declared_paths, reasons)
        modules = self._modules(analysis.modules, reasons)
        if analysis.opaque and options.inputs is None:
            reasons.append("the cell " + "; ".join(analysis.opaque) + ": declare its inputs with --in to cache it")
        context = {
            "python": "{}.{}".format(*sys.version_info[:2]),
            "store": _store_identity(get_recorder().settings.tracking_uri),
        }
        key = stage_key(analysis.normalised, fps, options.outputs, files=file_fps, modules=modules, context=context)
        return _Plan(inputs, fps, params, file_fps, watch, modules, key, "; ".join(reasons), analysis.seeds)

    def _files(
        self, analysis: CellAnalysis, options: StageOptions, declared: list[str], reasons: list[str]
    ) -> tuple[dict[str, str], dict[str, bool]]:
        """The stage's file inputs (path -> content fingerprint) and the paths to compare after it ran (-> may
        be a folder): paths in the code, inputs used as paths, paths built from inputs, declared paths. Folders
        count when a file call names them (or they are declared); a string that happens to name a folder
        ('.', 'data') does not."""
        candidates = dict.fromkeys(analysis.paths)
        folders = {*declared, *analysis.call_paths}
        for n in analysis.path_names:
            value = self.ns.get(n)
            if isinstance(value, (str, os.PathLike)):
                candidates.setdefault(os.fspath(value))
                folders.add(os.fspath(value))
            elif n not in self.ns and options.inputs is None:  # a loop or comprehension variable: not known now
                reasons.append(f"the cell reads or writes a file by a path computed at run time ({n})")
        for expression in (*analysis.path_exprs, *analysis.file_exprs):
            path = evaluate_path(expression, self.ns)
            if path is None:
                reasons.append(f"the path {expression} cannot be worked out before the cell runs")
                continue
            candidates.setdefault(path)
            if expression in analysis.path_exprs:
                folders.add(path)
        home = get_recorder().settings.home.resolve()
        fps: dict[str, str] = {}
        for path in candidates:
            if path in analysis.write_only:
                continue  # a file the stage only writes is an output (compared after it runs), not an input
            if path in folders and _holds(Path(path), home):
                reasons.append(
                    f"it reads the folder {path}, which holds mlops-nb's own records: name its files with --in"
                )
                continue
            try:
                fp = (
                    files.glob_fingerprint(path)
                    if files.is_pattern(path)
                    else files.fingerprint(path, folders=path in folders)
                )
            except files.TooManyFiles as e:
                reasons.append(str(e))
                continue
            if fp is not None:
                fps[path] = fp
        for path in declared:
            fps.setdefault(path, "absent")
        watch = {p: p in folders for p in candidates if not files.is_pattern(p)}
        watch.update(dict.fromkeys(_split(options.outputs)[1], True))
        return fps, watch

    def _not_an_input(self, name: str) -> bool:
        return bool(_IPYTHON_NAMES.match(name)) or (
            name in self._shell_builtins and self.ns[name] is self._shell_builtins[name]
        )

    def _modules(self, names: tuple[str, ...], reasons: list[str]) -> dict[str, str]:
        """Fingerprints of the modules the cell imports: a local module by its content (imported first, as the
        cell would), an installed one by its version."""
        import importlib
        import importlib.util

        found: dict[str, str] = {}
        for module in names:
            top = module.partition(".")[0]
            if module in sys.modules:
                loaded = sys.modules[module]
            else:
                try:
                    spec = importlib.util.find_spec(top)
                except (ImportError, ValueError):
                    spec = None
                origin = getattr(spec, "origin", None) if spec is not None else None
                if not origin or not is_local_file(origin):
                    found[module] = "version " + package_version(module)
                    continue
                try:
                    loaded = importlib.import_module(module)
                except Exception as e:  # noqa: BLE001 - the cell's own import will raise it again
                    reasons.append(f"local module {module} cannot be imported: {e!r}"[:300])
                    continue
            fp = fingerprint(loaded)
            if fp is None:
                reasons.append(f"module {module} cannot be fingerprinted")
            else:
                found[module] = fp
        return found

    def _outputs(self, analysis: CellAnalysis, options: StageOptions) -> list[str]:
        declared = _split(options.outputs)[0]
        if declared is not None:
            return declared
        return [
            n
            for n in analysis.outputs
            if n in self.ns
            and not _IPYTHON_NAMES.match(n)
            and not isinstance(self.ns[n], (types.ModuleType, io.IOBase))  # modules, and files (``with open``)
        ]

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

    def _restore(self, plan: _Plan, restore_code: str, run: Run, record: StageRecord) -> str | None:
        """Serve the stage from the cache; returns None when it was, else why not (the miss reason)."""
        entry = self.cache.lookup(plan.key)
        if entry is None:
            return "no cached result for this code and these inputs"
        manifest = entry.manifest
        needed = manifest.get("rng_before", {})
        current = rng.fingerprints(rng.states(python="random" in needed)) if needed else {}
        differs = sorted(g for g, fp in needed.items() if current.get(g) != fp)
        if differs:
            return f"the global random state ({', '.join(differs)}) is not the one the cached run started from"
        try:
            if restore_code:  # imports and definitions first: unpickling may need them
                exec(compile(restore_code, "<mlops-nb restore>", "exec"), self.ns)
            values = self.cache.restore(entry)
        except Exception as e:  # noqa: BLE001 - CacheMiss, or an import that fails now: run the cell instead
            return str(e)
        self.ns.update(values)
        rng.set_states(manifest.get("rng_after", {}))
        run.set_tag(tags.CACHE_HIT, "true")
        if manifest.get("run_key"):
            run.link_tag(CACHE_SOURCE_TAG, manifest["run_key"])
        run.set_tags(
            {f"{tags.OUTPUT_PREFIX}{n}": o["fingerprint"] or "unhashable" for n, o in manifest["outputs"].items()}
        )
        for key, value, step in manifest.get("metrics", []):
            run.log_metric(key, value, step)
        if manifest.get("stdout"):
            run.log_text(manifest["stdout"], "stage/stdout.txt")
        record.cache_hit = True
        record.status = "FINISHED"
        record.note = f"restored from the cache, {manifest.get('duration', 0):.2f} s saved"
        run.end("FINISHED")
        self._changed(record)
        return None

    def _store(
        self,
        plan: _Plan,
        fps: dict[str, str | None],
        written: list[str],
        rng_before: dict[str, Any],
        restore_code: str,
        run: Run,
        record: StageRecord,
        stdout: str,
    ) -> None:
        values = {n: self.ns[n] for n in fps}
        rng_after = rng.states(python="random" in rng_before)
        drawn = rng.drawn(rng_before, rng_after)
        meta = {
            "stage": record.name,
            "run_key": run.key,
            "metrics": run.metric_history,
            "duration": record.duration,
            "stdout": stdout,
            "restore_code": restore_code,
            # a generator the cell seeds first thing does not depend on the state it started from
            "rng_before": rng.fingerprints({g: rng_before[g] for g in drawn if g not in plan.seeds}),
            "rng_after": rng.saved({g: rng_after[g] for g in drawn}),
        }
        if written:
            run.set_tag(tags.OUTPUT_FILES, ",".join(written)[:5000])
        if len(run.metric_history) >= MAX_METRIC_HISTORY:
            run.set_tag(CACHE_SKIPPED_TAG, f"it logged more than {MAX_METRIC_HISTORY} metric values")
            return
        try:
            self.cache.store(plan.key, values, fps, meta, files={p: plan.watch[p] for p in written})
        except Exception as e:  # noqa: BLE001 - an output that cannot be saved: the stage just is not cached
            run.set_tag(CACHE_SKIPPED_TAG, f"cannot save the outputs: {e!r}"[:500])
