"""Live stage events: the journal folder followed every 200 ms, each stage start and end emitted on
jupyter_server's event bus (schema ``events/stage.yaml``), which JupyterLab reads as
``app.serviceManager.events``. No comm and nothing injected into kernels: the journals are written by every
recording process anyway, before MLflow hears of the records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from mlops_nb.tracking.follow import Follower
from mlops_nb.tracking.records import STAGE_EVENT_SCHEMA

SCHEMA = Path(__file__).parent / "events" / "stage.yaml"
INTERVAL = 0.2  # seconds between two looks at the journal folder


def register_schema(event_logger: Any) -> None:
    if STAGE_EVENT_SCHEMA not in event_logger.schemas.schema_ids:
        event_logger.register_event_schema(SCHEMA)


class LiveStages:
    """One background task: poll the follower (in a thread: a first read may be large), emit its events."""

    def __init__(self, folder: Path, root: Path, event_logger: Any, log: logging.Logger) -> None:
        self.follower = Follower(folder, root)
        self.event_logger = event_logger
        self.log = log
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mlops-nb live stages")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.follower.close()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                events = await loop.run_in_executor(None, self.follower.poll)
                for event in events:
                    self.event_logger.emit(schema_id=STAGE_EVENT_SCHEMA, data=dict(event))
            except Exception:  # one bad poll must not end the live updates
                self.log.warning("mlops-nb: following the journals failed", exc_info=True)
            await asyncio.sleep(INTERVAL)
