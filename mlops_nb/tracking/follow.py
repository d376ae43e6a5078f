"""Following the local journals as they grow: stage starts and ends the moment a process records them.

Every recording process appends to its journal (``journal.py``) before MLflow hears of anything, so a reader
of the journal folder sees a stage end within one poll of the cell finishing, without asking MLflow. The
``Follower`` keeps a read-only descriptor and an offset per journal and reads only the bytes appended since
the last poll: a poll is one ``scandir`` and one ``fstat`` per journal. A journal deleted by its process
(everything reached MLflow) is read to its end through the descriptor first, so its last records are not
lost. Standard library only: no MLflow here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

from mlops_nb.tracking import tags
from mlops_nb.tracking.journal import SUFFIX
from mlops_nb.tracking.records import StageEvent


@dataclasses.dataclass
class _Stage:
    name: str
    notebook: str | None
    parent: str | None
    started: int
    cache_hit: bool = False
    duration_s: float | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Tail:
    """One journal being followed: its descriptor, how far it was read, and its open stages."""

    fd: int
    inode: int
    offset: int = 0
    partial: bytes = b""
    stages: dict[str, _Stage] = dataclasses.field(default_factory=dict)
    run_ids: dict[str, str] = dataclasses.field(default_factory=dict)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class Follower:
    """Stage events from the journals in ``folder``; notebooks are named relative to ``root``.

    ``poll()`` returns the events recorded since the previous poll. The first poll reads what is already
    there without reporting it (those stages started before anyone was following).
    """

    def __init__(self, folder: Path, root: Path) -> None:
        self.folder = folder
        self.root = root.resolve()
        self._tails: dict[str, _Tail] = {}
        self._primed = False
        self._relative: dict[str, str | None] = {}

    def close(self) -> None:
        for tail in self._tails.values():
            tail.close()
        self._tails.clear()

    def poll(self) -> list[StageEvent]:
        events: list[StageEvent] = []
        report = self._primed
        self._primed = True
        present: set[str] = set()
        try:
            entries = list(os.scandir(self.folder))
        except OSError:  # no journal folder yet: nothing has been recorded
            entries = []
        for entry in entries:
            if not entry.name.endswith(SUFFIX):
                continue
            present.add(entry.name)
            tail = self._tails.get(entry.name)
            if tail is None:
                tail = self._open(entry.path)
                if tail is None:
                    continue
                self._tails[entry.name] = tail
            self._read(tail, events if report else None)
        for name in [n for n in self._tails if n not in present]:  # deleted: its last lines are still readable
            tail = self._tails.pop(name)
            self._read(tail, events if report else None)
            tail.close()
        return events

    @staticmethod
    def _open(path: str) -> _Tail | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # deleted since the scan, or not ours to read
            return None
        return _Tail(fd=fd, inode=os.fstat(fd).st_ino)

    def _read(self, tail: _Tail, events: list[StageEvent] | None) -> None:
        try:
            size = os.fstat(tail.fd).st_size
            if size <= tail.offset:
                return
            data = os.pread(tail.fd, size - tail.offset, tail.offset)
        except OSError:
            return
        tail.offset += len(data)
        lines = (tail.partial + data).split(b"\n")
        tail.partial = lines.pop()  # a line still being written (each record is one write(2), so rarely)
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                event = self._apply(tail, record)
                if event is not None and events is not None:
                    events.append(event)

    def _notebook(self, path: Any) -> str | None:
        """``path`` relative to the root, or None when it is not a path below the root."""
        if not isinstance(path, str) or not path:
            return None
        if path not in self._relative:
            try:
                found: str | None = Path(path).resolve().relative_to(self.root).as_posix()
            except (ValueError, OSError):
                found = None
            self._relative[path] = found
        return self._relative[path]

    def _apply(self, tail: _Tail, record: dict[str, Any]) -> StageEvent | None:
        op, key = record.get("op"), record.get("run")
        if op == "created":
            tail.run_ids[str(key)] = str(record.get("run_id"))
            return None
        if op == "start":
            start_tags = record.get("tags") or {}
            if start_tags.get(tags.KIND) != "stage":
                return None
            stage = _Stage(
                name=str(start_tags.get(tags.STAGE) or record.get("name") or ""),
                notebook=self._notebook(start_tags.get(tags.NOTEBOOK)),
                parent=record.get("parent"),
                started=_ms(record.get("t")),
                cache_hit=start_tags.get(tags.CACHE_HIT) == "true",
            )
            tail.stages[str(key)] = stage
            return self._event(tail, str(key), stage, "RUNNING", record.get("t"))
        stage = tail.stages.get(str(key))
        if stage is None:
            return None
        if op == "tag":
            if record.get("k") == tags.CACHE_HIT:
                stage.cache_hit = record.get("v") == "true"
            elif record.get("k") == tags.DURATION:
                with contextlib.suppress(TypeError, ValueError):
                    stage.duration_s = float(record["v"])
        elif op == "metric" and isinstance(record.get("v"), (int, float)) and math.isfinite(record["v"]):
            stage.metrics[str(record.get("k"))] = float(record["v"])
        elif op == "end":
            del tail.stages[str(key)]
            if stage.duration_s is None:  # a cache hit, or a cell that raised: the stage's own time
                stage.duration_s = round(max(0, _ms(record.get("t")) - stage.started) / 1000, 3)
            return self._event(tail, str(key), stage, str(record.get("status") or "FINISHED"), record.get("t"))
        return None

    @staticmethod
    def _event(tail: _Tail, key: str, stage: _Stage, status: str, t: Any) -> StageEvent:
        return StageEvent(
            notebook=stage.notebook,
            stage=stage.name,
            status=status,
            cache_hit=stage.cache_hit,
            duration_s=stage.duration_s,
            run_id=tail.run_ids.get(key),
            run_key=key,
            parent_key=stage.parent,
            metrics=dict(stage.metrics),
            time=_ms(t),
        )


def _ms(t: Any) -> int:
    return int(t) if isinstance(t, (int, float)) else 0


def top_run_id(folder: Path, pid: int, kind: str) -> str | None:
    """The MLflow id of the first ``kind`` run that process ``pid`` (on this host) started, once its sender has
    created it: how a running ``mlops-nb run`` is linked to its job run before it prints the id."""
    import socket

    for path in folder.glob(f"{socket.gethostname()}-{pid}-*{SUFFIX}"):
        key = None
        try:
            with path.open("rb") as f:
                for line in f:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if key is None and record.get("op") == "start":
                        if (record.get("tags") or {}).get(tags.KIND) == kind:
                            key = record.get("run")
                    elif key is not None and record.get("op") == "created" and record.get("run") == key:
                        return str(record.get("run_id"))
        except OSError:
            continue  # deleted meanwhile: the process has ended, and says the id itself
    return None
