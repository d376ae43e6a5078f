"""The stage cache: content-addressed entries of a stage's outputs, checked on every restore.

An entry is a folder ``<cache_dir>/v2/<key[:2]>/<key>/`` with parquet files for data frames, ``.npy``
files for numeric arrays, and one pickle, ``objects.pkl``, of every other output and of the new state of the
inputs the stage changed in place, pickled together so that shared references survive (a pipeline's step *is*
the fitted scaler). Inside it, the stage's inputs are references by name, bound on a restore to the objects the
namespace holds then (their fingerprints are in the key, so they are equal): an output that holds an input
holds *that* object again. A copy of each file (or folder) the stage wrote is under ``files/``, and
``manifest.json`` has each file's SHA-256, the outputs' fingerprints, the metrics the stage logged, what it
showed (``outputs.json``, see outputs.py) and the run that produced it. Entries are
written to a temporary folder and renamed into place, so a reader never sees half an entry. Restoring
checks every file's digest first: a corrupt, missing or unreadable entry is a miss (and is deleted),
never a wrong value. The least recently used entries are evicted beyond the size bound.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_nb.tracking.recorder import unique_id

FORMAT = "v2"
OBJECTS = "objects.pkl"
SHOWN = "outputs.json"
_TMP_PREFIX = ".tmp-"
_TMP_GRACE = 60.0  # seconds


class CacheMiss(Exception):
    """An entry is missing, corrupt or unreadable: run the stage."""


@dataclass
class Restored:
    """What a restore gives back: output values, the states of mutated inputs (name -> (kind, state)), what
    the stage showed (None for an entry that kept nothing), and the value of its last expression (``result``,
    when the entry kept one: ``has_result``)."""

    values: dict[str, Any]
    states: dict[str, tuple[str, Any]]
    shown: dict[str, Any] | None
    result: Any = None
    has_result: bool = False


@dataclass
class Entry:
    key: str
    folder: Path
    manifest: dict[str, Any]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write(value: Any, folder: Path, name: str) -> tuple[str, str] | None:
    """Write a data frame or numeric array output to a file of its own; None for other values (pickled)."""
    kind = type(value).__module__.split(".")[0], type(value).__name__
    if kind == ("pandas", "DataFrame") and all(isinstance(c, str) for c in value.columns) and value.columns.is_unique:
        try:
            value.to_parquet(folder / f"{name}.parquet", engine="pyarrow")
            return f"{name}.parquet", "parquet"
        except Exception:  # noqa: BLE001 - mixed-type object columns and the like: pickle it instead
            (folder / f"{name}.parquet").unlink(missing_ok=True)
    if kind == ("numpy", "ndarray") and not value.dtype.hasobject:
        import numpy as np

        np.save(folder / f"{name}.npy", value, allow_pickle=False)
        return f"{name}.npy", "npy"
    return None


def _read(path: Path, fmt: str) -> Any:
    if fmt == "parquet":
        import pandas as pd

        return pd.read_parquet(path, engine="pyarrow")
    import numpy as np

    return np.load(path, allow_pickle=False)


def _pickle(path: Path, graph: Any, refs: dict[int, str]) -> None:
    """Pickle ``graph`` with the objects in ``refs`` (id -> input name) written as references by name."""
    import pickle

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> str | None:
            return refs.get(id(obj))

    with path.open("wb") as f:
        Pickler(f, protocol=5).dump(graph)  # numpy buffers inside objects are written out-of-band-fast


def _unpickle(path: Path, refs: dict[str, Any]) -> Any:
    import pickle

    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            if pid not in refs:
                raise CacheMiss(f"the cached outputs refer to an input {pid!r} that is not defined now")
            return refs[pid]

    with path.open("rb") as f:
        return Unpickler(f).load()


def _copy_in(entry: Path, name: str, path: str, folder: bool) -> dict[str, Any]:
    """Copy a file or folder the stage wrote into the entry; its manifest part."""
    source = Path(path)
    target = entry / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if folder and source.is_dir():
        shutil.copytree(source, target)
        members = {str(p.relative_to(entry)): _sha256(p) for p in sorted(target.rglob("*")) if p.is_file()}
        return {"kind": "folder", "copy": name, "members": members}
    if source.is_file():
        shutil.copyfile(source, target)
        return {"kind": "file", "copy": name, "members": {name: _sha256(target)}}
    return {"kind": "deleted"}


def _write_back(entry: Path, path: str, meta: dict[str, Any]) -> None:
    """Put a file or folder the stage wrote back where it wrote it (atomically: a copy renamed into place)."""
    dest = Path(path)
    if meta["kind"] == "deleted":
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest, ignore_errors=True)
        else:
            dest.unlink(missing_ok=True)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.mlops-nb-{unique_id()}")
    if meta["kind"] == "folder":
        shutil.copytree(entry / meta["copy"], tmp)
        if dest.is_dir():
            shutil.rmtree(dest)
        tmp.rename(dest)
    else:
        shutil.copyfile(entry / meta["copy"], tmp)
        tmp.replace(dest)


class Cache:
    """The cache under ``folder``, kept under ``max_bytes`` by evicting least recently used entries."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.root = folder / FORMAT
        self.max_bytes = max_bytes
        self._total: int | None = None  # bytes in the cache, scanned once per process, then counted

    def _folder(self, key: str) -> Path:
        return self.root / key[:2] / key

    def lookup(self, key: str) -> Entry | None:
        """The entry for ``key`` if one is complete on disk (its files are checked by ``restore``)."""
        folder = self._folder(key)
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError):
            return None
        return Entry(key, folder, manifest)

    def restore(self, entry: Entry, refs: dict[str, Any] | None = None) -> Restored:
        """The entry's outputs and the kept states of the inputs the stage changed, every file verified first,
        and the files the stage wrote written back. ``refs``: the stage's inputs as the namespace holds them
        now. Raises CacheMiss (and drops the entry)."""
        refs = refs or {}
        values: dict[str, Any] = {}
        try:
            manifest = entry.manifest
            for meta in manifest["outputs"].values():
                if "file" in meta and _sha256(entry.folder / meta["file"]) != meta["sha256"]:
                    raise CacheMiss(f"{meta['file']} does not match its recorded SHA-256")
            graph: dict[str, Any] = {"values": {}, "states": {}}
            if OBJECTS in manifest:
                if _sha256(entry.folder / OBJECTS) != manifest[OBJECTS]:
                    raise CacheMiss(f"{OBJECTS} does not match its recorded SHA-256")
                graph = _unpickle(entry.folder / OBJECTS, refs)
            for name, meta in manifest["outputs"].items():
                if meta["format"] == "ref":
                    if meta["ref"] not in refs:
                        raise CacheMiss(f"output {name} is the input {meta['ref']}, which is not defined now")
                    values[name] = refs[meta["ref"]]
                elif meta["format"] == "object":
                    values[name] = graph["values"][name]
                else:
                    values[name] = _read(entry.folder / meta["file"], meta["format"])
            shown = None
            if SHOWN in manifest:
                if _sha256(entry.folder / SHOWN) != manifest[SHOWN]:
                    raise CacheMiss(f"{SHOWN} does not match its recorded SHA-256")
                shown = json.loads((entry.folder / SHOWN).read_text())
            written = manifest.get("files", {})
            for meta in written.values():
                for file, digest in meta.get("members", {}).items():
                    if _sha256(entry.folder / file) != digest:
                        raise CacheMiss(f"{file} does not match its recorded SHA-256")
        except CacheMiss:
            self.drop(entry.key)
            raise
        except Exception as e:
            self.drop(entry.key)
            raise CacheMiss(f"cannot read the cached outputs: {e!r}") from e
        for path, meta in written.items():
            _write_back(entry.folder, path, meta)
        try:
            os.utime(entry.folder / "manifest.json")  # recently used, for eviction
        except OSError:
            pass  # a read-only cache is still a cache; eviction then goes by creation time
        return Restored(values, graph["states"], shown, graph.get("result"), "result" in graph)

    def store(
        self,
        key: str,
        outputs: dict[str, Any],
        fingerprints: dict[str, str | None],
        meta: dict[str, Any],
        files: dict[str, bool] | None = None,
        *,
        refs: dict[str, Any] | None = None,
        states: dict[str, tuple[str, Any]] | None = None,
        shown: dict[str, Any] | None = None,
        result: Any = None,
    ) -> Entry:
        """Write an entry atomically. ``files``: paths the stage wrote (True: may be a folder), copied in as
        they are now (a path that is gone is deleted again on a restore). ``refs``: the stage's inputs (name
        -> object), stored as references; ``states``: the new states of the inputs it changed in place (name
        -> (kind, state), see mutation.py); ``shown``: what it showed (outputs.py); ``result``: the value of its
        last expression (None: none), pickled with the outputs so that it is the object they hold (``fit()``
        returns the model), left out when it alone cannot be pickled. Raises whatever serialising an output
        raises (nothing is left behind)."""
        if self._total is None:
            self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f"{_TMP_PREFIX}{unique_id()}"
        tmp.mkdir()
        # Locked while this process writes it: a temporary nobody holds is what a killed writer left.
        hold = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        fcntl.flock(hold, fcntl.LOCK_EX)
        states = states or {}
        by_value = {id(state) for kind, state in states.values() if kind == "value"}  # kept as copies
        ref_ids = {id(v): n for n, v in (refs or {}).items() if id(v) not in by_value}
        try:
            outputs_meta: dict[str, Any] = {}
            objects: dict[str, Any] = {}
            for name, value in outputs.items():
                meta_of: dict[str, Any] = {"fingerprint": fingerprints.get(name)}
                written_as = None if id(value) in ref_ids else _write(value, tmp, name)
                if id(value) in ref_ids:
                    meta_of.update(format="ref", ref=ref_ids[id(value)])
                elif written_as is not None:
                    meta_of.update(file=written_as[0], format=written_as[1], sha256=_sha256(tmp / written_as[0]))
                else:
                    meta_of["format"] = "object"
                    objects[name] = value
                outputs_meta[name] = meta_of
            extra: dict[str, Any] = {}
            if objects or states or result is not None:
                graph = {"values": objects, "states": states}
                try:
                    _pickle(tmp / OBJECTS, {**graph, "result": result} if result is not None else graph, ref_ids)
                except Exception:  # the value shown (a generator...) alone: the hit shows its display
                    if result is None:
                        raise
                    _pickle(tmp / OBJECTS, graph, ref_ids)
                extra[OBJECTS] = _sha256(tmp / OBJECTS)
            if shown and (shown.get("outputs") or shown.get("result")):
                (tmp / SHOWN).write_text(json.dumps(shown))
                extra[SHOWN] = _sha256(tmp / SHOWN)
            written = {
                path: _copy_in(tmp, f"files/{i}", path, folder)
                for i, (path, folder) in enumerate((files or {}).items())
            }
            size = sum(p.stat().st_size for p in (tmp.rglob("*") if written else tmp.iterdir()) if p.is_file())
            manifest = {
                "format": FORMAT,
                "key": key,
                "created": time.time(),
                "size": size,
                "outputs": outputs_meta,
                "mutated": {n: kind for n, (kind, _) in states.items()},
                "files": written,
                **extra,
                **meta,
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, default=str))
            target = self._folder(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            os.close(hold)
        if self._total is None:
            self.evict()
        else:
            self._total += size
            if self._total > self.max_bytes:
                self.evict()
        return Entry(key, target, manifest)

    def drop(self, key: str) -> None:
        shutil.rmtree(self._folder(key), ignore_errors=True)

    def evict(self) -> None:
        """Delete what killed writers left, then least recently used entries until the cache fits ``max_bytes``."""
        for tmp in self.root.glob(f"{_TMP_PREFIX}*"):
            _remove_if_abandoned(tmp)
        entries = []
        for manifest in self.root.glob("*/*/manifest.json"):
            try:
                entries.append((manifest.stat().st_mtime, json.loads(manifest.read_text())["size"], manifest.parent))
            except (OSError, ValueError, KeyError):
                continue
        total = sum(size for _, size, _ in entries)
        for _, size, folder in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            shutil.rmtree(folder, ignore_errors=True)
            total -= size
        self._total = total


def _remove_if_abandoned(tmp: Path) -> None:
    """Delete the temporary entry folder ``tmp`` unless a live writer holds its lock (``store``). One younger
    than ``_TMP_GRACE`` is left alone: its writer may not have taken the lock yet."""
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return  # renamed into place or removed meanwhile
    try:
        if time.time() - os.fstat(fd).st_mtime < _TMP_GRACE:
            return
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # being written
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        os.close(fd)
