"""The dead-letter file: records MLflow refused for what they are, set aside with the reason.

A record that MLflow refuses for good (a 4xx answer, a name or value it does not accept, text it cannot
encode) is never retried and never drops its neighbours: the sender keeps it here and goes on, so the run it
belongs to still gets every other record and ends. ``<home>/dead-letter.jsonl`` is shared by every process of
the project; each line is one JSON object written with a single ``write(2)`` (see docs/tracking.md)::

    {"time": 1796198536435, "tracking_uri": "http://127.0.0.1:5000", "journal": "vm-4242-1a2b3c4d.jsonl",
     "run": "<mlops-nb run key>", "run_id": "<MLflow run id or null>", "op": "metric",
     "record": {"k": "f1 (macro)", "v": 0.8, "t": 1796198536400, "step": 0}, "reason": "Invalid value ..."}

It holds params, tags and texts, like the journals: it is readable by its owner only.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from mlops_nb.redaction import redact_uri

FILE_NAME = "dead-letter.jsonl"
_MODE = 0o600


class DeadLetter:
    """Appends set-aside records to ``<home>/dead-letter.jsonl``."""

    def __init__(self, home: Path, tracking_uri: str) -> None:
        self.path = home / FILE_NAME
        self._uri = redact_uri(tracking_uri)

    def add(self, *, journal: str, run: str, run_id: str | None, op: str, record: Any, reason: str) -> None:
        """Keep one refused record (an OSError propagates: the sender retries the step, nothing is lost)."""
        line = {
            "time": int(time.time() * 1000),
            "tracking_uri": self._uri,
            "journal": journal,
            "run": run,
            "run_id": run_id,
            "op": op,
            "record": record,
            "reason": redact_uri(reason),
        }
        data = (json.dumps(line, default=str) + "\n").encode()  # ASCII: a lone surrogate travels as its escape
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, _MODE)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
