"""Where stage cache entries are kept: a local folder, and a cache the team shares behind an fsspec URL.

``Folder`` is the local cache, ``<cache_dir>/v2/<key[:2]>/<key>/`` (an entry's files and its
``manifest.json``). Entries are written into a locked temporary folder (``.tmp-*``) and renamed into place, so
a reader never sees half an entry; of two writers of one key, one entry stays whole. Least recently used
entries are evicted beyond the size bound, and what a killed writer left is removed.

``Remote`` is the shared cache (``s3://bucket/prefix``, ``gs://...``, ``file:///shared/folder``), reached with
fsspec (imported on first use). An entry there is ``<url>/v2/<key[:2]>/<key>/manifest.json``, with its files
under ``<url>/v2/<key[:2]>/<key>/<write id>/``: each writer puts its files under a name of its own and the
manifest last (one object, naming that write id), so two writers of one key never mix their files, a reader
never finds a manifest before its files, and the last manifest wins. A hit downloads the entry into the local
folder (the read-through copy: later hits of that key are local), where the cache checks every file's
SHA-256 before using it. The URL may carry credentials: every message shows it through ``redact_uri``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from mlops_nb.exceptions import ConfigError
from mlops_nb.redaction import redact_uri
from mlops_nb.tracking.recorder import unique_id

FORMAT = "v2"
MANIFEST = "manifest.json"
_TMP_PREFIX = ".tmp-"
_TMP_GRACE = 60.0  # seconds
_IN_MEMORY = 256 * 2**20  # bytes: a smaller shared entry is downloaded through memory, a larger one streamed
_RETRY_AFTER = 60.0  # seconds a shared cache that could not be reached is not asked again
_WRITE_ID = re.compile(r"[0-9a-f]{32}")  # what unique_id() gives


class StoreMiss(Exception):
    """An entry cannot be had from where it is kept: the reason says why (the stage runs instead)."""


class NotShared(Exception):
    """An entry was kept locally but could not be written to the shared cache."""


def entry_files(manifest: dict[str, Any]) -> dict[str, str]:
    """Every file of an entry, by its path in the entry, with its recorded SHA-256."""
    files = {m["file"]: m["sha256"] for m in manifest.get("outputs", {}).values() if "file" in m}
    for name in ("objects.pkl", "outputs.json"):
        if name in manifest:
            files[name] = manifest[name]
    for meta in manifest.get("files", {}).values():
        files.update(meta.get("members", {}))
    return files


class Folder:
    """The entries under ``folder``, kept under ``max_bytes`` by evicting least recently used ones."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.root = folder / FORMAT
        self.max_bytes = max_bytes
        self._total: int | None = None  # bytes in the cache, scanned once per process, then counted

    def path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def manifest(self, key: str) -> dict[str, Any] | None:
        """The manifest of the entry for ``key`` if one is complete here."""
        try:
            return json.loads((self.path(key) / MANIFEST).read_text())
        except (OSError, ValueError):
            return None

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A temporary entry folder, locked while this process fills it (a temporary nobody holds is what a
        killed writer left); removed unless ``commit`` moved it into place."""
        if self._total is None:
            self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f"{_TMP_PREFIX}{unique_id()}"
        tmp.mkdir()
        hold = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        fcntl.flock(hold, fcntl.LOCK_EX)
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone already once committed
            os.close(hold)

    def commit(self, tmp: Path, key: str, manifest: dict[str, Any]) -> Path:
        """Write ``manifest`` into ``tmp`` and move it into place as the entry for ``key``, replacing an older
        one. When another writer's entry for the key lands first, it stays and this one is dropped: both
        hold the same stage's outputs."""
        (tmp / MANIFEST).write_text(json.dumps(manifest, default=str))
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        old = self.root / f"{_TMP_PREFIX}{unique_id()}"
        try:
            target.rename(old)  # out of the way in one step: a reader sees the old entry or none
        except OSError:
            old = None
        try:
            tmp.rename(target)
        except OSError:
            pass  # a concurrent writer's entry is in place
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._added(int(manifest.get("size", 0)))
        return target

    def touch(self, key: str) -> None:
        """Mark the entry recently used, for eviction."""
        try:
            os.utime(self.path(key) / MANIFEST)
        except OSError:
            pass  # a read-only cache is still a cache; eviction then goes by creation time

    def drop(self, key: str, manifest: dict[str, Any] | None = None) -> None:
        """Delete the entry for ``key``; with ``manifest``, only while it still is that entry (a writer may
        have replaced the one that failed to read)."""
        if manifest is not None and self.manifest(key) != manifest:
            return
        shutil.rmtree(self.path(key), ignore_errors=True)

    def _added(self, size: int) -> None:
        if self._total is None:
            self.evict()
        else:
            self._total += size
            if self._total > self.max_bytes:
                self.evict()

    def evict(self) -> None:
        """Delete what killed writers left, then least recently used entries until the cache fits ``max_bytes``."""
        for tmp in self.root.glob(f"{_TMP_PREFIX}*"):
            _remove_if_abandoned(tmp)
        entries = []
        for manifest in self._manifests():
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

    def _manifests(self) -> Iterator[Path]:
        """The manifest path of every entry folder (folders other writers move or delete meanwhile are skipped)."""
        try:
            prefixes = [p for p in self.root.iterdir() if not p.name.startswith(_TMP_PREFIX)]
        except OSError:
            return
        for prefix in prefixes:
            try:
                folders = list(prefix.iterdir())
            except OSError:
                continue
            yield from (folder / MANIFEST for folder in folders)


def _remove_if_abandoned(tmp: Path) -> None:
    """Delete the temporary entry folder ``tmp`` unless a live writer holds its lock (``staging``). One younger
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


def check_shared(settings: Any) -> None:
    """Raise ConfigError (exit 2 in a command) when ``settings`` name a shared cache that does not answer;
    nothing when the cache is off or local only. Commands call it before anything runs."""
    if settings.cache and settings.cache_uri:
        Remote(settings.cache_uri).check(settings.sources.get("cache_uri"))


def _filesystem(url: str) -> tuple[Any, str]:
    """The fsspec file system of ``url`` and the path in it. Raises ConfigError naming the missing package."""
    try:
        from fsspec.core import url_to_fs
    except ModuleNotFoundError as e:
        raise ConfigError(
            f"The stage cache {redact_uri(url)} needs fsspec: pip install 'mlops-nb[s3]' (or unset cache_uri).",
            setting="cache_uri",
        ) from e
    try:
        fs, path = url_to_fs(url)
    except ImportError as e:  # fsspec names the package of the protocol (s3fs, gcsfs...)
        raise ConfigError(
            f"The stage cache {redact_uri(url)} needs a package fsspec names: {e}. For s3:// run "
            "pip install 'mlops-nb[s3]'.",
            setting="cache_uri",
        ) from e
    except ValueError as e:  # an unknown protocol
        raise ConfigError(
            f"The stage cache {redact_uri(url)} is not a URL fsspec knows: {e}.", setting="cache_uri"
        ) from e
    return fs, path.rstrip("/")


def _secrets(url: str) -> list[str]:
    """The credentials in ``url``'s authority (``user:password@``), which a backend's error may repeat bare."""
    from urllib.parse import urlsplit

    userinfo = urlsplit(url).netloc.rpartition("@")[0]
    return [s for s in (userinfo, userinfo.partition(":")[2]) if s]


class Remote:
    """The shared cache at ``url`` (the file system is opened on first use)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.shown = redact_uri(url)
        self._secrets = _secrets(url)
        self._fs: Any = None
        self._base = ""
        self._root = ""
        self._down: tuple[float, str] | None = None  # when it last could not be reached, and why

    def _scrub(self, text: str) -> str:
        """``text`` without the URL's credentials, in URLs or bare."""
        text = redact_uri(text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _why(self, error: BaseException) -> str:
        """What went wrong, without the URL's credentials."""
        return self._scrub(f"{type(error).__name__}: {error}")[:300]

    def _open(self) -> Any:
        if self._fs is None:
            try:
                self._fs, self._base = _filesystem(self.url)
            except ConfigError as e:
                raise ConfigError(self._scrub(str(e)), setting="cache_uri") from e
            self._root = f"{self._base}/{FORMAT}"
        return self._fs

    def _folder(self, key: str) -> str:
        self._open()
        return f"{self._root}/{key[:2]}/{key}"

    def check(self, source: str | None = None) -> None:
        """Raise ConfigError (naming the URL, where it was set and the fix) unless the cache answers: its
        bucket (or, for file://, its folder) must exist; a missing prefix is fine, the first entry makes it."""
        fs = self._open()
        where = self._base if _local(fs) else self._base.partition("/")[0]
        try:
            fs.info(where)
        except FileNotFoundError:
            self._unreachable(source, f"{where} does not exist (create the bucket or folder first)")
        except Exception as e:  # noqa: BLE001 - whatever the backend raises: connection, credentials, DNS
            self._unreachable(source, self._why(e))

    def _unreachable(self, source: str | None, why: str) -> None:
        where = f" (setting cache_uri from {source})" if source else ""
        off = f"remove it from {source}" if source and source.startswith("[") else "unset MLOPS_NB_CACHE_URI"
        raise ConfigError(
            f"Cannot reach the stage cache {self.shown}{where}: {why}. Check the URL, the credentials and endpoint "
            "its file system reads (for s3://: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL), "
            f"{off} to use the local cache only, or run with --no-cache.",
            setting="cache_uri",
            source=source,
        )

    def manifest(self, key: str) -> dict[str, Any] | None:
        """The manifest of the shared entry for ``key``; None when there is none. Raises StoreMiss when the
        cache cannot be reached (it is then not asked again for a minute) or the manifest is unreadable."""
        if self._down is not None and time.monotonic() - self._down[0] < _RETRY_AFTER:
            raise StoreMiss(f"the shared cache {self.shown} could not be reached: {self._down[1]}")
        try:
            fs = self._open()
            raw = fs.cat_file(f"{self._folder(key)}/{MANIFEST}")
        except FileNotFoundError:
            return None
        except ConfigError as e:
            raise StoreMiss(str(e)) from e
        except Exception as e:  # connection, credentials, throttling: run the stage
            self._down = (time.monotonic(), self._why(e))
            raise StoreMiss(f"the shared cache {self.shown} could not be reached: {self._down[1]}") from e
        self._down = None
        try:
            manifest = json.loads(raw)
            if not isinstance(manifest, dict) or manifest.get("key") != key:
                raise ValueError("not the manifest of this key")
            if not _WRITE_ID.fullmatch(str(manifest.get("blob"))) or not all(map(_inside, entry_files(manifest))):
                raise ValueError("its write id or a file name points outside the entry")
        except ValueError as e:
            raise StoreMiss(f"the shared entry's manifest in {self.shown} is unreadable: {e}") from e
        return manifest

    def download(self, manifest: dict[str, Any], into: Path) -> None:
        """The entry's files into the folder ``into`` (their digests are checked by the cache). Raises StoreMiss."""
        try:
            fs, blob = self._open(), f"{self._folder(manifest['key'])}/{manifest['blob']}"
            names = sorted(entry_files(manifest))
            for name in names:
                (into / name).parent.mkdir(parents=True, exist_ok=True)
            if manifest["size"] <= _IN_MEMORY:  # one GET each, at once: s3fs's streamed get is twice as slow
                got = fs.cat([f"{blob}/{name}" for name in names]) if names else {}
                for name in names:
                    (into / name).write_bytes(got[f"{blob}/{name}"])
            else:
                for name in names:
                    fs.get_file(f"{blob}/{name}", str(into / name))
        except Exception as e:  # a file gone (a writer replaced the entry), the network
            raise StoreMiss(f"cannot download the shared entry from {self.shown}: {self._why(e)}") from e

    def upload(self, key: str, folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
        """Write the local entry ``folder`` as the shared entry for ``key``: its files under a new write id,
        then the manifest (naming it). Returns that manifest. Raises NotShared."""
        if self._down is not None and time.monotonic() - self._down[0] < _RETRY_AFTER:
            raise NotShared(f"kept in the local cache only: {self.shown} could not be reached: {self._down[1]}")
        blob = unique_id()
        shared = {**manifest, "blob": blob}
        try:
            fs, target = self._open(), self._folder(key)
            try:
                before = json.loads(fs.cat_file(f"{target}/{MANIFEST}")).get("blob")
            except (FileNotFoundError, ValueError, AttributeError):
                before = None
            files = sorted(entry_files(manifest))
            if _local(fs):
                for parent in {f"{target}/{blob}/{n}".rpartition("/")[0] for n in files} | {target}:
                    fs.makedirs(parent, exist_ok=True)
            if files:
                fs.put([str(folder / n) for n in files], [f"{target}/{blob}/{n}" for n in files])
            _put_atomic(fs, f"{target}/{MANIFEST}", json.dumps(shared, default=str).encode())
            now = json.loads(fs.cat_file(f"{target}/{MANIFEST}")).get("blob")
        except Exception as e:  # whatever the backend raises; the local entry stays
            raise NotShared(f"kept in the local cache only: cannot write to {self.shown}: {self._why(e)}") from e
        for stale in {before, blob} - {now, None}:  # the entry replaced, or ours when another writer's won
            self._remove(f"{target}/{stale}")
        return shared

    def drop(self, key: str, blob: str) -> None:
        """Delete the shared entry for ``key`` if it still is the write ``blob`` (one that failed its check)."""
        try:
            fs, target = self._open(), self._folder(key)
            if json.loads(fs.cat_file(f"{target}/{MANIFEST}")).get("blob") != blob:
                return  # rewritten meanwhile
            fs.rm_file(f"{target}/{MANIFEST}")
        except Exception:  # noqa: BLE001 - gone already, or not reachable: the next writer replaces it
            return
        self._remove(f"{target}/{blob}")

    def _remove(self, path: str) -> None:
        try:
            self._fs.rm(path, recursive=True)
        except Exception:  # noqa: BLE001 - gone already; what is left is unreferenced and harmless
            pass


def _inside(name: str) -> bool:
    """True for a file name that stays inside an entry's folder (a shared manifest may be hostile)."""
    parts = PurePosixPath(name).parts
    return bool(parts) and not PurePosixPath(name).is_absolute() and ".." not in parts and "\\" not in name


def _local(fs: Any) -> bool:
    """True for a file system of local (or mounted shared) folders, where writes are not atomic but renames are."""
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def _put_atomic(fs: Any, path: str, data: bytes) -> None:
    """Write one small object so that a reader sees all of it or nothing: a PUT on object stores; on a file
    system, a temporary file renamed into place."""
    if _local(fs):
        tmp = f"{path}.{unique_id()}.tmp"
        fs.pipe_file(tmp, data)
        fs.mv(tmp, path)
    else:
        fs.pipe_file(path, data)
