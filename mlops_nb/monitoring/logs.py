"""Reading the serving package's prediction log: what the model was asked, and what it answered.

The exported package (``SERVING_LOG_PREDICTIONS=1``) writes one JSON line per scored row into
``predictions-<pid>.jsonl`` under its log folder, rotated by size into ``predictions-<pid>.jsonl.1``, ``.2``
...::

    {"time": 1732380000.1, "request_id": "...", "model_version": "3", "inputs": {"age": 41, ...}, "prediction": 1}

:func:`read_logs` turns a folder of them into one Arrow table: the input columns, ``prediction`` (monitored
for prediction drift) and ``time`` (epoch seconds, for time windows), in time order. A line cut short (a file
being written, a disk that filled) is skipped and counted, never fatal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_nb.exceptions import UsageError
from mlops_nb.monitoring.stored import PREDICTION

TIME = "time"
_LOG_FILE = re.compile(r"^predictions-[^/]*\.jsonl(\.\d+)?$")
FIX = (
    "Give the serving package's log folder (SERVING_LOG_DIR, logs/ by default) of a server started with "
    "SERVING_LOG_PREDICTIONS=1."
)


@dataclass
class PredictionLog:
    """The rows of a prediction log folder."""

    table: Any  # pyarrow.Table: input columns, prediction, time
    files: int
    skipped: int  # lines that were not a complete log record


def log_files(folder: str | Path) -> list[Path]:
    """The prediction log files of ``folder`` (current and rotated)."""
    target = Path(folder)
    if not target.is_dir():
        raise UsageError(f"--logs {target}: no such folder. {FIX}")
    found = sorted(p for p in target.iterdir() if p.is_file() and _LOG_FILE.match(p.name))
    if not found:
        raise UsageError(f"--logs {target}: no predictions-*.jsonl file in it. {FIX}")
    return found


def read_logs(folder: str | Path) -> PredictionLog:
    """Every record of the prediction logs in ``folder``, oldest first.

    Raises:
        UsageError: no such folder, no log file, no complete record, or a column whose values mix types.
    """
    import orjson
    import pyarrow as pa

    files = log_files(folder)
    rows: list[dict[str, Any]] = []
    skipped = 0
    for file in files:
        with file.open("rb") as f:
            for line in f:
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    skipped += bool(line.strip())
                    continue
                inputs = record.get("inputs") if isinstance(record, dict) else None
                if not isinstance(inputs, dict) or not isinstance(record.get(TIME), (int, float)):
                    skipped += 1
                    continue
                rows.append({**inputs, PREDICTION: record.get(PREDICTION), TIME: float(record[TIME])})
    if not rows:
        raise UsageError(f"--logs {folder}: no complete prediction record in {len(files)} file(s). {FIX}")
    rows.sort(key=lambda r: r[TIME])
    names = list(dict.fromkeys(name for row in rows for name in row))
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # numbers and strings mixed: read as text
            columns[name] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    return PredictionLog(pa.table(columns), len(files), skipped)
