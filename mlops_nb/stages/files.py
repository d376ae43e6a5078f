"""Files a stage reads and writes: content fingerprints before it runs, what changed after.

A stage's file inputs are the paths the analysis sees (string constants naming files, inputs passed as the
path of a file call, ``--in`` paths): their content is part of the stage key. Its file outputs are those of
the same paths that the stage created, changed or deleted while it ran: the cache keeps their content and
writes it back on a hit. Contents are hashed with BLAKE2 (a folder: every file below it, with its relative
path); a hash is reused within the process while the file's size, mtime, ctime and inode are unchanged.
"""

# os.stat / os.walk on strings, not pathlib: this runs for every path of every stage, and Path objects cost
# more than the stat itself.
# ruff: noqa: PTH116, PTH118, PTH123, PTH207

from __future__ import annotations

import hashlib
import os
import stat

MAX_FOLDER_FILES = 10_000  # a folder with more files is not hashed: the stage is not cached
_BLOCK = 1 << 20
_digests: dict[tuple[str, int, int, int, int], str] = {}


class TooManyFiles(Exception):
    """A folder has more files than a stage input may."""


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def _file_digest(path: str, st: os.stat_result) -> str:
    memo = (path, *_signature(st))
    digest = _digests.get(memo)
    if digest is None:
        h = hashlib.blake2b(digest_size=20)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_BLOCK), b""):
                h.update(block)
        digest = h.hexdigest()
        if len(_digests) > 10_000:
            _digests.clear()
        _digests[memo] = digest
    return digest


def _walk(folder: str) -> list[str]:
    """Relative paths of the regular files below ``folder``, sorted; raises TooManyFiles."""
    found: list[str] = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in names:
            found.append(os.path.relpath(os.path.join(root, name), folder))
            if len(found) > MAX_FOLDER_FILES:
                raise TooManyFiles(f"{folder} has more than {MAX_FOLDER_FILES} files")
    return sorted(found)


def fingerprint(path: str, *, folders: bool) -> str | None:
    """The content fingerprint of a file (or, with ``folders``, a folder); None when it is neither."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(st.st_mode):
        return "file:" + _file_digest(path, st)
    if folders and stat.S_ISDIR(st.st_mode):
        h = hashlib.blake2b(digest_size=20)
        for rel in _walk(path):
            full = os.path.join(path, rel)
            try:
                h.update(f"{rel}\0{_file_digest(full, os.stat(full))}\0".encode())
            except OSError:
                continue  # vanished, or not a regular file
        return "folder:" + h.hexdigest()
    return None


def is_pattern(path: str) -> bool:
    """A glob pattern (``data/*.csv``) rather than a path."""
    return any(c in path for c in "*?[")


def glob_fingerprint(pattern: str) -> str | None:
    """The fingerprint of every file a glob pattern matches now (names and contents); None when it matches
    nothing (so a pattern that comes to match files changes the key). Raises TooManyFiles."""
    import glob

    matches = sorted(glob.glob(pattern, recursive=True))
    if not matches:
        return None
    if len(matches) > MAX_FOLDER_FILES:
        raise TooManyFiles(f"{pattern} matches more than {MAX_FOLDER_FILES} files")
    h = hashlib.blake2b(digest_size=20)
    for match in matches:
        h.update(f"{match}\0{fingerprint(match, folders=True)}\0".encode())
    return "glob:" + h.hexdigest()


def snapshot(paths: dict[str, bool]) -> dict[str, tuple[int, ...] | None]:
    """A cheap picture of ``paths`` (stat of each file, of each file below a folder where the value is True)
    to compare after a run."""
    picture: dict[str, tuple[int, ...] | None] = {}
    for path, folders in paths.items():
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            picture[path] = None
            continue
        if stat.S_ISDIR(st.st_mode):
            if not folders:
                picture[path] = (0,)  # a string that names a folder, not a folder the stage writes
                continue
            try:
                files = _walk(path)
            except TooManyFiles:
                picture[path] = (-1,)
                continue
            sigs: list[int] = []
            for rel in files:
                try:
                    sigs.extend(_signature(os.stat(os.path.join(path, rel))))
                except OSError:
                    sigs.append(-2)
            picture[path] = (hash(tuple(files)), *sigs)
        else:
            picture[path] = _signature(st)
    return picture


def changed(before: dict[str, tuple[int, ...] | None], after: dict[str, tuple[int, ...] | None]) -> list[str]:
    """The paths whose picture differs: created, written or deleted in between."""
    return [p for p in before if before[p] != after.get(p)]
