"""Content fingerprints of Python values: equal values, equal fingerprints; any change, another one.

pandas objects hash their contents with pandas' vectorised ``hash_pandas_object`` plus dtypes, column
names and index (a 1M x 20 frame in ~0.1 s); numpy arrays hash their buffer with BLAKE2; everything else
goes through ``joblib.hash`` with one change: code that is *the user's* — defined in the notebook
(``__main__``) or in a local module (a ``.py`` file of the project, not an installed package) — is hashed by
what it does, not by its name:

- a function: its code, defaults, keyword-only defaults, closure cells and the globals it reads, recursively;
- a class: its bases and members (methods as functions); so an instance of a notebook class hashes its
  class too, wherever it sits (in a list, inside a scikit-learn pipeline);
- a local module: its members.

Installed code is its module, qualified name and the version of the distribution that installed it (a
lambda or nested function of an installed package, which has no name to find it by: its content, as the
user's, and that version). A
value that cannot be hashed gets ``None``: the stage that reads it cannot be served from the cache.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any

UNHASHABLE = None
MAX_REPEATS = 100_000  # parts written again because shared (a value built of many references is unhashable)
_EXCLUDED_MEMBERS = frozenset(
    {"__dict__", "__weakref__", "__module__", "__doc__", "__qualname__", "__dataclass_fields__"}
    | {"__dataclass_params__", "__match_args__", "__slotnames__", "__firstlineno__", "__static_attributes__"}
)


class Unhashable(Exception):
    """A part of a value cannot be fingerprinted."""


def _blake(*parts: bytes | str) -> str:
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\x00")
    return h.hexdigest()


# --- whose code is it ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            paths.add(path)
    import site

    paths.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    paths.add(site.getusersitepackages())
    # Folders on sys.path that pip installed into (``pip install --target``, a site folder added by a .pth):
    # they hold distributions' metadata, so their code is installed, not the project's.
    paths.update(p for p in sys.path if p and _holds_distributions(p))
    return tuple(sorted(os.path.realpath(p) + os.sep for p in paths if p))


def _holds_distributions(folder: str) -> bool:
    try:
        return any(p.name.endswith(".dist-info") and p.is_dir() for p in Path(folder).iterdir())
    except OSError:
        return False


@functools.lru_cache(maxsize=4096)
def is_local_file(filename: str) -> bool:
    """True for a file of the project's own code (not under the interpreter's or an environment's folders)."""
    real = os.path.realpath(filename)
    return not any(real.startswith(root) for root in _installed_roots())


def is_local_module(name: str | None) -> bool:
    """True for the notebook (``__main__``) and modules loaded from the project's own ``.py`` files."""
    if not name:
        return False
    if name == "__main__":
        return True
    top = name.partition(".")[0]
    if top == "mlops_nb" or top in sys.stdlib_module_names:
        return False
    module = sys.modules.get(name)
    filename = getattr(module, "__file__", None)
    return isinstance(filename, str) and is_local_file(filename)


@functools.lru_cache(maxsize=1)
def _installers() -> dict[str, tuple[str, ...]]:
    """Top-level module name -> the metadata folders of the distributions that install it, in sys.path order:
    what ``importlib.metadata.packages_distributions()`` maps (``top_level.txt``, else the first part of each
    path in ``RECORD``), read as plain text once per process: ~50 ms for 300 distributions, where it takes
    ~0.8 s."""
    found: dict[str, list[str]] = {}
    for entry in sys.path:
        try:
            folders = sorted(p for p in Path(entry or ".").iterdir() if p.suffix in (".dist-info", ".egg-info"))
        except OSError:
            continue
        for folder in folders:
            for name in _top_level_names(folder):
                found.setdefault(name, []).append(str(folder))
    return {name: tuple(folders) for name, folders in found.items()}


def _top_level_names(folder: Path) -> set[str]:
    try:
        return set((folder / "top_level.txt").read_text().split())
    except OSError:
        pass
    try:
        record = (folder / "RECORD").read_text(errors="replace")
    except OSError:
        return set()
    names = set()
    for line in record.splitlines():
        first = line.partition(",")[0].partition("/")[0]
        stem, dot, suffix = first.partition(".")
        if not dot or suffix == "py" or suffix.endswith(("so", "pyd")):  # a package, a module, an extension
            names.add(stem)
    names.discard("")
    names.discard("__pycache__")
    return names


@functools.lru_cache(maxsize=1024)
def package_version(module_name: str) -> str:
    """What installed the package that ``module_name`` belongs to: ``scikit-learn 1.5.2`` for
    ``sklearn.datasets`` (its distributions and their versions, from their metadata), ``python 3.11.9`` for
    the standard library, else the top-level module's file and its size and modification time. Read without
    importing anything, so a module's part of a key is the same before and after it is imported."""
    from importlib import metadata

    top = module_name.partition(".")[0]
    if not top:
        return ""
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return "python " + ".".join(map(str, sys.version_info[:3]))
    # Every distribution that claims the module, each version once: ``pip install --target --upgrade`` leaves
    # the old version's metadata beside the new one's, and a shadowed install may be the one imported.
    found = set()
    for folder in _installers().get(top, ()):
        if not Path(folder).is_dir():  # uninstalled since the map was read
            continue
        dist = metadata.Distribution.at(folder)
        found.add(f"{dist.metadata['Name'] or Path(folder).stem.partition('-')[0]} {dist.version}")
    return ", ".join(sorted(found)) if found else _file_identity(top)


def _file_identity(top: str) -> str:
    """A module that no distribution claims, by its file (the file changes when it is replaced)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    origin = getattr(spec, "origin", None) if spec is not None else None
    if not origin or not Path(origin).is_file():
        return ""
    stat = Path(origin).stat()
    return f"file {origin} {stat.st_size} {stat.st_mtime_ns}"


# --- values -----------------------------------------------------------------------------------------
def _pandas(value: Any) -> str:
    import pandas as pd

    if isinstance(value, pd.Index):
        rows = pd.util.hash_pandas_object(value).to_numpy()
        return _blake("Index", repr((value.names, str(value.dtype))), rows.tobytes())
    rows = pd.util.hash_pandas_object(value, index=True).to_numpy()
    if isinstance(value, pd.DataFrame):
        meta = repr([(str(c), str(t)) for c, t in value.dtypes.items()]) + repr(value.columns.names)
    else:
        meta = repr((value.name, str(value.dtype)))
    return _blake(type(value).__name__, meta, repr(value.index.names), str(value.index.dtype), rows.tobytes())


def _numpy(value: Any, seen: _Seen) -> str:
    import numpy as np

    if value.dtype.hasobject:
        return _joblib(value, seen)
    return _blake("ndarray", str(value.dtype), repr(value.shape), np.ascontiguousarray(value).data)


class _Seen:
    """Fingerprints of user code computed during one ``fingerprint`` call, and the code being hashed (cycles)."""

    def __init__(self) -> None:
        self.done: dict[int, str] = {}
        self.active: set[int] = set()
        self.keep: list[Any] = []  # keeps the objects alive, so their ids stay theirs during the call


def _user_code(value: Any, seen: _Seen) -> str:
    """The fingerprint of a function, class or module of the user's, by content (memoised, cycle-safe)."""
    key = id(value)
    if key in seen.done:
        return seen.done[key]
    if key in seen.active:  # recursion (a function calling itself, a class method naming its class)
        return _blake("cycle", getattr(value, "__qualname__", getattr(value, "__name__", "?")))
    seen.active.add(key)
    try:
        if isinstance(value, types.ModuleType):
            result = _module(value, seen)
        elif isinstance(value, type):
            result = _class(value, seen)
        else:
            result = _function(value, seen)
    finally:
        seen.active.discard(key)
    seen.done[key] = result
    seen.keep.append(value)
    return result


def code_names(code: types.CodeType) -> set[str]:
    """The global (and attribute) names a function's code and the code nested in it read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= code_names(const)
    return names


def _code(code: types.CodeType) -> str:
    parts: list[bytes | str] = [
        code.co_code,
        repr(code.co_names),
        repr(code.co_varnames),
        repr(code.co_freevars),
        repr(code.co_cellvars),
        repr((code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags)),
    ]
    for const in code.co_consts:
        parts.append(_code(const) if isinstance(const, types.CodeType) else f"{type(const).__name__}:{const!r}")
    return _blake(*parts)


def _function(func: types.FunctionType, seen: _Seen) -> str:
    parts = ["function", func.__qualname__, _code(func.__code__)]
    parts.append(_value(func.__defaults__, seen) if func.__defaults__ else "-")
    parts.append(_value(func.__kwdefaults__, seen) if func.__kwdefaults__ else "-")
    for cell in func.__closure__ or ():
        try:
            parts.append(_value(cell.cell_contents, seen))
        except ValueError:  # a cell not yet filled
            parts.append("empty cell")
    # The globals it reads (names of its code and nested code), as they are now: a constant, a helper...
    globals_ = func.__globals__
    for name in sorted(code_names(func.__code__)):
        if name in globals_:
            parts.extend((name, _value(globals_[name], seen)))
    return _blake(*parts)


def _member(value: Any, seen: _Seen) -> str:
    if isinstance(value, (staticmethod, classmethod)):
        return "method:" + _member(value.__func__, seen)
    if isinstance(value, property):
        return "property:" + ",".join(_member(f, seen) if f is not None else "-" for f in (value.fget, value.fset))
    if isinstance(value, functools.cached_property):
        return "cached_property:" + _member(value.func, seen)
    return _value(value, seen)


def _class(cls: type, seen: _Seen) -> str:
    parts = ["class", cls.__qualname__, repr(getattr(cls, "__annotations__", {}))]
    parts.extend(_value(base, seen) for base in cls.__bases__)
    for name, member in sorted(vars(cls).items()):
        if name not in _EXCLUDED_MEMBERS:
            parts.extend((name, _member(member, seen)))
    return _blake(*parts)


def _module(module: types.ModuleType, seen: _Seen) -> str:
    if not is_local_module(module.__name__):
        return _blake("module", module.__name__, package_version(module.__name__))
    parts = ["local module", module.__name__]
    for name, member in sorted(vars(module).items()):
        if not name.startswith("__"):
            parts.extend((name, _value(member, seen)))
    return _blake(*parts)


def by_name(obj: Any) -> bool:
    """True when pickle can save ``obj`` (a function or class) by its module and qualified name: they lead
    back to it. A lambda or a function defined inside another one cannot be found so."""
    target: Any = sys.modules.get(getattr(obj, "__module__", None) or "")
    for part in getattr(obj, "__qualname__", "<lambda>").split("."):
        target = getattr(target, part, None)
    return target is obj


def _is_artist(value: Any) -> bool:
    """True for a matplotlib figure, axes or other artist. Its state changes when it is drawn (the inline
    backend draws it after the cell) or pickled, so its fingerprint would never match again; and hashing one
    walks its whole transform graph, shared parts again and again (a figure with two contour sets: 30 s)."""
    artist = getattr(sys.modules.get("matplotlib.artist"), "Artist", None)
    return artist is not None and isinstance(value, artist)


def _is_user_code(value: Any) -> bool:
    if isinstance(value, types.ModuleType):
        return is_local_module(value.__name__)
    if isinstance(value, (types.FunctionType, type)):
        return is_local_module(getattr(value, "__module__", None))
    return False


@functools.lru_cache(maxsize=2)
def _hasher_class(numpy: bool) -> type:
    """joblib's hasher, except that user code is hashed by content and installed code carries its version."""
    from joblib.hashing import Hasher, NumpyHasher

    base = NumpyHasher if numpy else Hasher

    class UserCodeHasher(base):  # type: ignore[misc, valid-type]
        seen: _Seen
        written: dict[int, Any]  # the parts written so far (kept alive, so that their ids stay theirs)
        repeats = 0

        def save_global(self, obj: Any, name: str | None = None) -> None:
            if _is_user_code(obj):
                self.save(f"mlops-nb user code {_user_code(obj, self.seen)}")
                return
            version = f"version {package_version(getattr(obj, '__module__', None) or '')}"
            if isinstance(obj, types.FunctionType) and not by_name(obj):
                # an installed package's lambda or nested function (statsmodels' KDEUnivariate holds some):
                # by its code, defaults, closure and the globals it reads, as the user's
                self.save(f"mlops-nb function {_user_code(obj, self.seen)} {version}")
                return
            super().save_global(obj, name)
            self.save(version)

        def save(self, obj: Any) -> None:
            if _is_artist(obj):
                raise Unhashable(f"a matplotlib {type(obj).__name__}: its state changes as it is drawn")
            if isinstance(obj, types.ModuleType):  # modules do not pickle: name and version, or content
                self.save(f"mlops-nb module {_module(obj, self.seen)}")
                return
            if numpy and type(obj) is sys.modules["numpy"].ndarray and not obj.dtype.hasobject:
                # by dtype, shape and contents, as at the top: joblib hashes the strides, and equal arrays have
                # others after a pickle round trip (a (1, n) array's first one, an empty array's 0), in
                # Fortran order or as a slice, so an input restored from the cache would look changed
                self.save(f"mlops-nb array {_value(obj, self.seen)}")
                return
            content = _nested_pandas(obj, self.seen)
            if content is not None:  # by content, as at the top: pickling shows the frame's internal blocks
                self.save(f"mlops-nb pandas {content}")
                return
            key = id(obj)
            fresh = key not in self.memo
            super().save(obj)
            if fresh and key in self.memo:
                # Forgotten once written: a part reached twice is written again, so that which parts are the
                # same object does not count (each stage's entry restores its own copies), while a part that
                # reaches itself (a cycle) is still written as a reference.
                del self.memo[key]
                if key in self.written:
                    self.repeats += 1
                    if self.repeats > MAX_REPEATS:
                        raise Unhashable(f"more than {MAX_REPEATS} references to parts already written")
                else:
                    self.written[key] = obj

        dispatch = base.dispatch.copy()
        for _t in (type(len), type, types.FunctionType):
            dispatch[_t] = save_global

    return UserCodeHasher


def _nested_pandas(value: Any, seen: _Seen) -> str | None:
    """The content fingerprint of a pandas frame, series or index inside another value, or None for anything
    else and for one whose cells cannot be hashed (pickled then, as any value). A frame restored from parquet
    or copied has other internal blocks than the one a run made, and pickling shows them."""
    if type(value).__module__.split(".")[0] != "pandas":
        return None
    import pandas as pd

    if not isinstance(value, (pd.DataFrame, pd.Series, pd.Index)):
        return None
    if id(value) in seen.done:
        return seen.done[id(value)]
    try:
        return _remember(value, _pandas(value), seen)
    except TypeError:
        return None


def _joblib(value: Any, seen: _Seen) -> str:
    try:
        hasher = _hasher_class("numpy" in sys.modules)(hash_name="md5")
        hasher.seen = seen
        hasher.written = {}
        return "j" + hasher.hash(value)
    except Exception as e:  # unpicklable (a lock, a generator, a connection): not cacheable
        raise Unhashable(f"{type(value).__name__}: {e}"[:300]) from e


def _value(value: Any, seen: _Seen) -> str:
    module = type(value).__module__.split(".")[0]
    if module in ("pandas", "numpy") and id(value) in seen.done:  # a frame read by a cell and by its function
        return seen.done[id(value)]
    if module == "pandas":
        import pandas as pd

        if isinstance(value, (pd.DataFrame, pd.Series, pd.Index)):
            try:
                result = _pandas(value)
            except TypeError:  # unhashable cells (lists in an object column): fall back to pickling
                result = _joblib(value, seen)
            return _remember(value, result, seen)
    if module == "numpy" and type(value).__name__ == "ndarray":
        return _remember(value, _numpy(value, seen), seen)
    if isinstance(value, types.ModuleType):
        return _module(value, seen)
    if _is_user_code(value):
        return _user_code(value, seen)
    return _joblib(value, seen)


def _remember(value: Any, result: str, seen: _Seen) -> str:
    seen.done[id(value)] = result
    seen.keep.append(value)
    return result


def fingerprint(value: Any) -> str | None:
    """A hex fingerprint of ``value``'s content, or None when it cannot be fingerprinted."""
    return fingerprints({"value": value})["value"]


def fingerprints(values: dict[str, Any]) -> dict[str, str | None]:
    """The fingerprints of several values, each big frame or array hashed once even when several of them
    reach it (an input, and a function that reads the same global)."""
    seen = _Seen()
    found: dict[str, str | None] = {}
    for name, value in values.items():
        try:
            found[name] = _value(value, seen)
        except (Unhashable, RecursionError):
            found[name] = UNHASHABLE
    return found
