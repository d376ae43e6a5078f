"""The append-only journal: every record is written to the OS before the logging call returns.

One journal file per process, ``<home>/journal/<host>-<pid>-<id>.jsonl``, JSON lines. The first line is a
header naming the tracking URI, without its credentials: the process that replays a journal connects with
the URI of its own settings, when it names the same store. The caller's records carry a sequence number; the
sender appends ``created`` (local run key -> MLflow run id) and ``ack`` (everything up to seq N is in
MLflow) lines.
The owning process holds an exclusive ``flock`` on the file for its whole life, so a journal whose lock can
be taken belongs to a dead process and is replayed by whoever takes it. Files logged as artifacts are
copied into ``<journal>.files/`` so that they survive until they are sent.

Durability: a record is in the OS when its call returns, so a killed or crashed process loses nothing. A
run's end is also made durable against a crash of the machine, by a group commit: a thread of the journal
fsyncs it within ``COMMIT_WINDOW`` seconds, one fsync for every run that ended meanwhile, so that the caller
does not wait for the disk (an fsync costs 1-10 ms here, more than everything else a run's end does).
Closing the journal fsyncs what is left.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_nb.exceptions import InvalidRecordError, JournalError
from mlops_nb.redaction import redact_uri

FORMAT_VERSION = 1
SUFFIX = ".jsonl"
# Journals hold params, tags and texts (and the tracking URI): only their owner may read them.
FILE_MODE = 0o600
FOLDER_MODE = 0o700
COMMIT_WINDOW = 0.05  # seconds between a run's end and the fsync that makes it durable (group commit)


def _dumps(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()


class Journal:
    """This process's journal. Thread-safe; ``append`` is a single ``write(2)`` of one line."""

    def __init__(self, folder: Path, tracking_uri: str, *, job: str | None = None, deferred: bool = False) -> None:
        """``job``: the job run a kernel records into; ``deferred``: another process sends this journal by design
        (a job's kernel, a forked child), so its runs are new when replayed, not leftovers of a crash."""
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path = folder / f"{name}{SUFFIX}"
        self.spool = folder / f"{name}.files"
        try:
            folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)
        except OSError as e:
            raise JournalError(
                f"mlops-nb cannot write its journal in {folder}: {e.strerror}. Make that folder writable, "
                "or point MLOPS_NB_HOME at a writable folder. Nothing was recorded."
            ) from e
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd = fd
        self._lock = threading.Lock()
        self._seq = 0
        self._unsynced = False  # written since the last fsync
        self._syncing = 0  # fsyncs under way (a closing journal must not return before they end)
        self._commit = threading.Condition()
        self._commit_due = False
        self._committer: threading.Thread | None = None
        self._write(
            {
                "op": "open",
                "v": FORMAT_VERSION,
                # Without credentials: the replaying process connects with its own settings' URI (same store).
                "tracking_uri": redact_uri(tracking_uri),
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "t": int(time.time() * 1000),
                **({"job": job} if job else {}),
                **({"deferred": True} if deferred else {}),
            }
        )

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def _write(self, record: dict[str, Any]) -> None:
        data = _dumps(record)
        try:
            os.write(self._fd, data)
        except OSError as e:
            raise JournalError(
                f"mlops-nb cannot append to its journal {self.path}: {e.strerror}. Free disk space or make "
                "the folder writable; records before this one are kept."
            ) from e

    def append(self, record: dict[str, Any], *, sync: bool = False) -> int:
        """Write a caller record and give it the next sequence number; ``sync`` (a run's end): have it fsynced
        within ``COMMIT_WINDOW`` by the group commit."""
        with self._lock:
            self._seq += 1
            record["seq"] = self._seq
            self._write(record)
            self._unsynced = True
            seq = self._seq
        if sync:
            self._request_commit()
        return seq

    def sync(self) -> None:
        """fsync now what was written since the last fsync."""
        with self._lock:
            if self._fd < 0 or not self._unsynced:
                return
            self._unsynced = False
            self._syncing += 1
            fd = os.dup(self._fd)  # fsync outside the lock: writers go on meanwhile
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
            with self._lock:
                self._syncing -= 1

    def _request_commit(self) -> None:
        with self._commit:
            self._commit_due = True
            if self._committer is None or not self._committer.is_alive():  # none yet, or a forked child's
                self._committer = threading.Thread(target=self._commit_loop, name="mlops-nb-journal", daemon=True)
                self._committer.start()
            self._commit.notify()

    def _commit_loop(self) -> None:
        while True:
            with self._commit:
                self._commit.wait_for(lambda: self._commit_due)
                self._commit_due = False
            time.sleep(COMMIT_WINDOW)  # the runs that end meanwhile share the fsync
            if self.closed:
                return
            with contextlib.suppress(OSError):  # closed meanwhile: close() fsynced
                self.sync()

    def note(self, record: dict[str, Any]) -> None:
        """Write a sender line (``created``, ``ack``): not a record to replay."""
        with self._lock:
            if self._fd >= 0:
                self._write(record)

    @contextlib.contextmanager
    def spooling(self) -> Iterator[None]:
        """Turn a failure to write into the spool into a JournalError that names the folder and the fix."""
        try:
            yield
        except OSError as e:
            raise JournalError(
                f"mlops-nb cannot copy into its journal folder {self.path.parent}: {e.strerror or e}. Make that "
                "folder writable, free disk space, or point MLOPS_NB_HOME at a writable folder. This call "
                "recorded nothing; records before it are kept."
            ) from e

    def spool_path(self, seq_hint: str, name: str) -> Path:
        """A fresh path inside the spool folder for a copy of an artifact."""
        folder = self.spool / seq_hint
        with self.spooling():
            self.spool.mkdir(mode=FOLDER_MODE, exist_ok=True)
            folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def copy_into_spool(self, source: Path, key: str) -> Path:
        """Copy a file or folder into the spool so the artifact survives until it is sent.

        Raises:
            JournalError: the spool cannot be written.
            InvalidRecordError: ``source`` cannot be read.
        """
        target = self.spool_path(key, source.name)
        try:
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
        except OSError as e:
            shutil.rmtree(target.parent, ignore_errors=True)  # the half copy
            if not os.access(source, os.R_OK) or e.filename == str(source):
                raise InvalidRecordError(f"Cannot log artifact {source}: {e.strerror or e}.") from e
            with self.spooling():
                raise
        return target

    def abandon(self) -> None:
        """Drop the descriptor without touching the file (a forked child; the parent keeps its lock)."""
        os.close(self._fd)
        self._fd = -1

    def close(self, *, remove: bool) -> None:
        """Release the journal; ``remove`` deletes it (only when everything in it reached MLflow)."""
        with self._lock:
            if self._fd < 0:
                return
            if remove:
                self.path.unlink(missing_ok=True)
                shutil.rmtree(self.spool, ignore_errors=True)
            elif self._unsynced or self._syncing:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


@dataclass
class Replay:
    """What a dead process's journal still owes MLflow."""

    path: Path
    tracking_uri: str
    pid: int
    host: str
    pending: list[dict[str, Any]] = field(default_factory=list)
    run_ids: dict[str, str] = field(default_factory=dict)
    open_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    deferred: bool = False  # written to be sent by another process (see Journal)


def header(path: Path) -> dict[str, Any]:
    """The first line of a journal (which tracking URI it is for), without reading the rest."""
    with path.open("rb") as f:
        try:
            return json.loads(f.readline())
        except ValueError:
            return {}


def read(path: Path) -> Replay:
    """Parse a journal: records not yet acknowledged, known run ids, runs that never ended."""
    header: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    run_ids: dict[str, str] = {}
    acked = 0
    with path.open("rb") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a torn last line: its logging call never returned
            op = rec.get("op")
            if op == "open":
                header = rec
            elif op == "created":
                run_ids[rec["run"]] = rec["run_id"]
            elif op == "ack":
                acked = max(acked, rec["upto"])
            else:
                records.append(rec)
    open_runs: dict[str, dict[str, Any]] = {}
    for rec in records:
        if rec["op"] == "start":
            open_runs[rec["run"]] = rec
        elif rec["op"] == "end":
            open_runs.pop(rec["run"], None)
    return Replay(
        path=path,
        tracking_uri=header.get("tracking_uri", ""),
        pid=header.get("pid", 0),
        host=header.get("host", "?"),
        pending=[r for r in records if r["seq"] > acked],
        run_ids=run_ids,
        open_runs=open_runs,
        deferred=bool(header.get("deferred")),
    )


class Orphan:
    """A journal left by a dead process, locked by us while we replay it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    def note(self, record: dict[str, Any]) -> None:
        os.write(self._fd, _dumps(record))

    def finish(self, *, remove: bool) -> None:
        if remove:
            self.path.unlink(missing_ok=True)
            shutil.rmtree(self.path.with_suffix(".files"), ignore_errors=True)
        os.close(self._fd)


def take(path: Path) -> Orphan | None:
    """Lock the journal at ``path`` if its process is dead (None if it lives, or the journal is gone)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Another replayer may have finished and unlinked it between our open and our lock.
        if os.fstat(fd).st_ino != path.stat().st_ino:
            raise FileNotFoundError(path)
    except OSError:
        os.close(fd)
        return None
    return Orphan(path, fd)


class JobHold:
    """Held by the process running a job: the journals of the job's kernel are left to it (it reads them for
    the job's summary) until it releases the hold, or dies."""

    def __init__(self, folder: Path, job: str) -> None:
        folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        self.path = folder / f"{job}.job"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd >= 0:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = -1


def _held(folder: Path, job: str) -> bool:
    try:
        fd = os.open(folder / f"{job}.job", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def job_journals(folder: Path, job: str) -> list[Path]:
    """The journals still in ``folder`` that the kernel of job run ``job`` (or its children) wrote."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob(f"*{SUFFIX}"):
        try:
            if header(path).get("job") == job:
                found.append(path)
        except OSError:
            continue  # replayed and deleted meanwhile
    return found


def orphans(folder: Path, exclude: Path | None = None) -> Iterator[Orphan]:
    """Yield journals of dead processes, each locked so no other process replays it at the same time.

    Journals of job kernels come last (they record into a job run that another journal may create), and are
    skipped while the process running the job holds it (``JobHold``).
    """
    if not folder.is_dir():
        return
    held: dict[str, bool] = {}
    plain: list[Path] = []
    of_jobs: list[Path] = []
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            job = header(path).get("job")
        except OSError:
            continue  # replayed and deleted meanwhile
        if not job:
            plain.append(path)
        elif not held.setdefault(job, _held(folder, job)):
            of_jobs.append(path)
    for path in plain + of_jobs:
        orphan = take(path) if path != exclude else None
        if orphan is not None:
            yield orphan
