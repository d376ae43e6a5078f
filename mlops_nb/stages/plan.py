"""What a stage depends on, worked out before it runs: its inputs (names, files, local modules), their
fingerprints, its parameters and its cache key; and which names it assigns (its outputs)."""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import os
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_nb.stages import files, mutation
from mlops_nb.stages import params as params_mod
from mlops_nb.stages.analysis import CellAnalysis, evaluate_path
from mlops_nb.stages.fingerprint import (
    fingerprint,
    fingerprints,
    is_local_file,
    is_local_module,
    package_version,
)
from mlops_nb.tracking.recorder import get_recorder

CACHE_VERSION = "mlops-nb-stage-cache-3"  # bump when the key or the entry format changes meaning
# IPython's own names in the user namespace: never inputs or outputs of a stage.
IPYTHON_NAMES = re.compile(r"^(_+|_i+|_i?\d+|_oh|_dh|_ih|In|Out|get_ipython|exit|quit|__builtins?__|__name__)$")


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
class Plan:
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
    hidden: dict[str, str | None] = field(default_factory=dict)  # globals its functions read: fingerprints
    shows_name: str = ""  # the name its last expression is, when it is a bare name (shown again as it is)

    def refs(self, namespace: dict[str, Any]) -> dict[str, Any]:
        """The objects the stage reads that it may change or hold on to, by name, as the namespace has them."""
        names = [*self.inputs, *self.hidden]
        return {n: namespace[n] for n in names if n in namespace and mutation.checkable(namespace[n])}


def _shown_name(python: str) -> str:
    """The name a cell's last statement is, when it is a bare name (``model``): a hit shows that value."""
    import ast

    body = ast.parse(python).body
    last = body[-1] if body else None
    return last.value.id if isinstance(last, ast.Expr) and isinstance(last.value, ast.Name) else ""


def _holds(folder: Path, home: Path) -> bool:
    """True when ``folder`` is mlops-nb's home or contains it (its cache and journals change at every stage)."""
    if not folder.is_dir():
        return False
    resolved = folder.resolve()
    return resolved == home or resolved in home.parents


def _split(declared: list[str] | None) -> tuple[list[str] | None, list[str]]:
    """Names and file paths of a ``--in``/``--out`` list."""
    if declared is None:
        return None, []
    return [n for n in declared if n.isidentifier()], [p for p in declared if not p.isidentifier()]


class Planner:
    """Plans the stages of one namespace."""

    def __init__(self, namespace: dict[str, Any], notebook: Callable[[], str | None]) -> None:
        self.ns = namespace
        self._notebook = notebook
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

        # name -> (the object a hit restored, its fingerprint then, the fingerprint it had after its run)
        self._restored: dict[str, tuple[Any, str, str]] = {}

    def fingerprints(self, values: dict[str, Any]) -> dict[str, str | None]:
        """The values' fingerprints, where an object restored from the cache that a pickle round trip gave back
        changed and that is unchanged since counts as the object the run made: scikit-learn's ``Bunch`` loses
        its (empty) map of deprecated keys, a statsmodels ``Dataset`` (whose ``__dict__`` is itself) gets a
        ``__dict__`` of its own. Without this, every stage reading one would run again on a warm Run All."""
        found = fingerprints(values)
        for name, fp in found.items():
            held = self._restored.get(name)
            if held is not None and held[0] is values[name] and held[1] == fp:
                found[name] = held[2]
        return found

    def restored(self, values: dict[str, Any], recorded: dict[str, str | None]) -> None:
        """Remember the objects a hit restored whose fingerprint is not the ``recorded`` one of the run."""
        now = fingerprints(values)
        for name, value in values.items():
            self._restored.pop(name, None)
            fp, was = now[name], recorded.get(name)
            if fp is not None and was is not None and fp != was:
                self._restored[name] = (value, fp, was)

    def plan(self, name: str, analysis: CellAnalysis, options: StageOptions) -> Plan:
        """The stage's inputs (names, files, local modules), their fingerprints and its key."""
        declared_names, declared_paths = _split(options.inputs)
        missing = sorted(n for n in {*(declared_names or ()), *options.params} if n not in self.ns)
        if missing:
            raise NameError(f"%%track {name}: declared input(s) {', '.join(missing)} are not defined")
        inputs = (
            declared_names
            if declared_names is not None
            else [n for n in analysis.inputs if n in self.ns and not self.not_an_input(n)]
        )
        fps = self.fingerprints({n: self.ns[n] for n in [*inputs, *(p for p in options.params if p not in inputs)]})
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
        hidden = self.fingerprints({n: self.ns[n] for n in mutation.hidden_globals(self.ns, inputs)})
        return Plan(
            inputs,
            fps,
            params,
            file_fps,
            watch,
            modules,
            key,
            "; ".join(reasons),
            analysis.seeds,
            hidden,
            _shown_name(analysis.python),
        )

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

    def not_an_input(self, name: str) -> bool:
        return bool(IPYTHON_NAMES.match(name)) or (
            name in self._shell_builtins and self.ns[name] is self._shell_builtins[name]
        )

    def _modules(self, names: tuple[str, ...], reasons: list[str]) -> dict[str, str]:
        """Fingerprints of the modules the cell imports: a local module by its content (imported first, as the
        cell would), an installed one by its distribution's version, the same before and after its import."""
        import importlib
        import importlib.util

        found: dict[str, str] = {}
        for module in names:
            if module in sys.modules:
                local = is_local_module(module)
            else:
                top = module.partition(".")[0]
                try:
                    spec = importlib.util.find_spec(top)
                except (ImportError, ValueError):
                    spec = None
                origin = getattr(spec, "origin", None) if spec is not None else None
                local = bool(origin) and is_local_file(origin) and top != "mlops_nb"
            if not local:
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

    def outputs(self, analysis: CellAnalysis, options: StageOptions) -> list[str]:
        declared = _split(options.outputs)[0]
        if declared is not None:
            return declared
        return [
            n
            for n in analysis.outputs
            if n in self.ns
            and not IPYTHON_NAMES.match(n)
            and not isinstance(self.ns[n], (types.ModuleType, io.IOBase))  # modules, and files (``with open``)
        ]
