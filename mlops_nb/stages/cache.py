"""The stage cache: content-addressed entries of a stage's outputs, checked on every restore.

An entry is a folder ``<cache_dir>/v2/<key[:2]>/<key>/`` with parquet files for data frames, ``.npy``
files for numeric arrays, and one pickle, ``objects.pkl``, of every other output and of the new state of the
inputs the stage changed in place, pickled together so that shared references survive (a pipeline's step *is*
the fitted scaler). Inside it, the stage's inputs are references by name, bound on a restore to the objects the
namespace holds then (their fingerprints are in the key, so they are equal): an output that holds an input
holds *that* object again. A copy of each file (or folder) the stage wrote is under ``files/``, and
``manifest.json`` has each file's SHA-256, the outputs' fingerprints, the metrics the stage logged, what it
showed (``outputs.json``, see outputs.py) and the run that produced it. Where entries are kept is
store.py's concern: the local folder (written atomically, evicted beyond its size bound) and, when
``cache_uri`` names one, the cache a team shares, read through a local copy. Restoring checks every file's
digest first: a corrupt, missing or unreadable entry is a miss (and is deleted, in the shared cache too when
its files fail the check), never a wrong value.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from mlops_nb.stages import pickling
from mlops_nb.stages.store import FORMAT, Folder, NotShared, Remote, StoreMiss, entry_files
from mlops_nb.tracking.recorder import unique_id

__all__ = ["FORMAT", "Cache", "CacheMiss", "Entry", "NotShared", "Restored"]

OBJECTS = "objects.pkl"
SHOWN = "outputs.json"


UNSTORED = "unstored-v2"  # beside the entries' folder: <key> files saying why that key's run was not kept


class CacheMiss(StoreMiss):
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
    """An entry found for a key: its local folder (a read-through copy when ``shared``) and manifest."""

    key: str
    folder: Path
    manifest: dict[str, Any]
    shared: bool = False  # downloaded from the shared cache just now


def _digest(f: BinaryIO, copy: BinaryIO | None = None) -> str:
    """The SHA-256 of the rest of ``f`` (written to ``copy`` as it is read); ``f`` is rewound after."""
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
        if copy is not None:
            copy.write(block)
    f.seek(0)
    return h.hexdigest()


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return _digest(f)


def _close(opened: dict[str, BinaryIO]) -> None:
    for handle in opened.values():
        handle.close()


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


def _read(path: BinaryIO, fmt: str) -> Any:
    if fmt == "parquet":
        import pandas as pd

        return pd.read_parquet(path, engine="pyarrow")
    import numpy as np

    return np.load(path, allow_pickle=False)


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


def _stage_back(entry: Path, written: dict[str, Any]) -> list[tuple[Path | None, Path, str]]:
    """Copy the files (and folders) the stage wrote out of the entry, each beside where it goes, checking
    every file's SHA-256 on the way; (copy, destination, kind) for ``_put_back``. Raises CacheMiss with
    nothing left behind when one fails its check."""
    staged: list[tuple[Path | None, Path, str]] = []
    try:
        for path, meta in written.items():
            dest = Path(path)
            if meta["kind"] == "deleted":
                staged.append((None, dest, "deleted"))
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.mlops-nb-{unique_id()}")
            staged.append((tmp, dest, meta["kind"]))
            if meta["kind"] == "folder":
                tmp.mkdir()
            for member, digest in meta["members"].items():
                target = tmp / Path(member).relative_to(meta["copy"]) if meta["kind"] == "folder" else tmp
                target.parent.mkdir(parents=True, exist_ok=True)
                with (entry / member).open("rb") as source, target.open("wb") as copy:
                    if _digest(source, copy) != digest:
                        raise CacheMiss(f"{member} does not match its recorded SHA-256")
    except BaseException:
        _unstage(staged)
        raise
    return staged


def _unstage(staged: list[tuple[Path | None, Path, str]]) -> None:
    for tmp, _, _ in staged:
        if tmp is not None and tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp is not None:
            tmp.unlink(missing_ok=True)


def _put_back(staged: list[tuple[Path | None, Path, str]]) -> None:
    """Put each staged copy where the stage wrote it (a rename), and delete what the stage deleted."""
    for tmp, dest, kind in staged:
        if tmp is None:
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest, ignore_errors=True)
            else:
                dest.unlink(missing_ok=True)
        elif kind == "folder":
            if dest.is_dir():
                shutil.rmtree(dest)
            tmp.rename(dest)
        else:
            tmp.replace(dest)


class Cache:
    """The cache under ``folder``, kept under ``max_bytes`` by evicting least recently used entries, and the
    shared cache at ``remote`` (an fsspec URL) when one is given: entries found there are copied into
    ``folder``, entries stored here are written there too."""

    def __init__(self, folder: Path, max_bytes: int, remote: str | None = None) -> None:
        self.local = Folder(folder, max_bytes)
        self.remote = Remote(remote) if remote else None

    @property
    def root(self) -> Path:
        return self.local.root

    def _unstored_path(self, key: str) -> Path:
        return self.local.root.parent / UNSTORED / key

    def unstored(self, key: str, reason: str) -> None:
        """Remember why the run of ``key`` could not be kept (an output pickle cannot save): the next miss of
        that key says so, instead of only "no cached result"."""
        path = self._unstored_path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(reason[:500])
        except OSError:  # a read-only cache: the miss only says there is no entry
            pass

    def why_unstored(self, key: str) -> str:
        """Why the last run of ``key`` could not be kept, or ""."""
        try:
            return self._unstored_path(key).read_text()[:500]
        except OSError:
            return ""

    def lookup(self, key: str) -> Entry | None:
        """The entry for ``key`` if one is complete here, else one downloaded from the shared cache (its files
        are checked by ``restore``). Raises CacheMiss when the shared cache cannot be read (the reason)."""
        manifest = self.local.manifest(key)
        if manifest is not None:
            return Entry(key, self.local.path(key), manifest)
        if self.remote is None:
            return None
        try:
            manifest = self.remote.manifest(key)
            if manifest is None:
                return None
            with self.local.staging() as tmp:
                self.remote.download(manifest, tmp)
                folder = self.local.commit(tmp, key, manifest)
        except StoreMiss as e:
            raise CacheMiss(str(e)) from e
        here = self.local.manifest(key)  # another writer's entry may have landed first: that one is checked
        if here is None:
            return None
        return Entry(key, folder, here, shared=here.get("blob") == manifest["blob"])

    def restore(self, entry: Entry, refs: dict[str, Any] | None = None) -> Restored:
        """The entry's outputs and the kept states of the inputs the stage changed, and the files the stage
        wrote written back; every file is checked against its SHA-256 as it is read (the very bytes used, so
        a writer replacing the entry meanwhile makes a miss, never a mix). ``refs``: the stage's inputs as the
        namespace holds them now. Raises CacheMiss (and drops the entry; a shared one too when its files fail
        their check)."""
        refs = refs or {}
        values: dict[str, Any] = {}
        manifest = entry.manifest
        written = manifest.get("files", {})
        opened: dict[str, BinaryIO] = {}
        try:
            stage_files = {f: d for f, d in entry_files(manifest).items() if not f.startswith("files/")}
            for file, digest in stage_files.items():
                handle = opened[file] = (entry.folder / file).open("rb")
                if _digest(handle) != digest:
                    raise CacheMiss(f"{file} does not match its recorded SHA-256")
            staged = _stage_back(entry.folder, written)
        except Exception as e:
            _close(opened)
            reason = str(e) if isinstance(e, CacheMiss) else f"cannot read the cached outputs: {e!r}"
            self.local.drop(entry.key, manifest)
            if entry.shared and self.remote is not None:
                self.remote.drop(entry.key, manifest["blob"])
                reason = f"the entry from the shared cache {self.remote.shown} is corrupt: {reason}"
            raise CacheMiss(reason) from e
        try:
            graph: dict[str, Any] = {"values": {}, "states": {}}
            if OBJECTS in manifest:
                graph = pickling.load(opened[OBJECTS], refs, CacheMiss)
            for name, meta in manifest["outputs"].items():
                if meta["format"] == "ref":
                    if meta["ref"] not in refs:
                        raise CacheMiss(f"output {name} is the input {meta['ref']}, which is not defined now")
                    values[name] = refs[meta["ref"]]
                elif meta["format"] == "object":
                    values[name] = graph["values"][name]
                else:
                    values[name] = _read(opened[meta["file"]], meta["format"])
            shown = json.load(opened[SHOWN]) if SHOWN in manifest else None
        except Exception as e:
            _unstage(staged)
            self.local.drop(entry.key, manifest)
            if isinstance(e, CacheMiss):
                raise
            raise CacheMiss(f"cannot read the cached outputs: {e!r}") from e
        finally:
            _close(opened)
        _put_back(staged)
        self.local.touch(entry.key)
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
        """Write an entry atomically, here and then to the shared cache. ``files``: paths the stage wrote
        (True: may be a folder), copied in as they are now (a path that is gone is deleted again on a
        restore). ``refs``: the stage's inputs (name -> object), stored as references; ``states``: the new
        states of the inputs it changed in place (name -> (kind, state), see mutation.py); ``shown``: what
        it showed (outputs.py); ``result``: the value of its last expression (None: none), pickled with the
        outputs so that it is the object they hold (``fit()`` returns the model), left out when it alone cannot
        be pickled. Raises whatever serialising an output raises (nothing is left behind), and
        NotShared when the entry is kept here but could not be written to the shared cache."""
        states = states or {}
        by_value = {id(state) for kind, state in states.values() if kind == "value"}  # kept as copies
        ref_ids = {id(v): n for n, v in (refs or {}).items() if id(v) not in by_value}
        with self.local.staging() as tmp:
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
                    pickling.dump(tmp / OBJECTS, {**graph, "result": result} if result is not None else graph, ref_ids)
                except Exception:  # the value shown (a generator...) alone: the hit shows its display
                    if result is None:
                        raise
                    pickling.dump(tmp / OBJECTS, graph, ref_ids)
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
            target = self.local.commit(tmp, key, manifest)
        self._unstored_path(key).unlink(missing_ok=True)
        manifest = self.local.manifest(key) or manifest  # another writer's entry may have landed first
        if self.remote is not None:
            self.remote.upload(key, target, manifest)
        return Entry(key, target, manifest)

    def drop(self, key: str) -> None:
        self.local.drop(key)

    def evict(self) -> None:
        """Delete what killed writers left, then least recently used entries until the cache fits its bound."""
        self.local.evict()
