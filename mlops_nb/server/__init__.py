"""The Jupyter server extension: authenticated JSON under ``/mlops-nb/api/`` and live stage events.

Enabled on install (``jupyter-config/server-config/mlops_nb.json``); ``jupyter server extension list`` shows
it. The tracking URI is the one mlops-nb's settings give for the server's ``root_dir`` (the project's
``pyproject.toml``, ``MLFLOW_TRACKING_URI``...), never one a request names; the kernels the server starts
inherit its project root (``MLOPS_NB_PROJECT_ROOT``). See docs/lab.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Float

from mlops_nb.exceptions import ConfigError


class MlopsNbExtension(ExtensionApp):
    """Routes (``handlers.ROUTES``), background jobs (``jobs.py``) and the journal follower (``live.py``)."""

    name = "mlops_nb"
    load_other_extensions = True

    read_timeout = Float(
        10.0, help="Seconds a read of the MLflow store may take before the route answers 503 (the sidebar's reads)."
    ).tag(config=True)
    cool_down = Float(
        5.0, help="Seconds during which a store that could not be reached is not asked again (answers 503 at once)."
    ).tag(config=True)

    def initialize_settings(self) -> None:
        from mlops_nb.config import PROJECT_ROOT_ENV, find_project_root, load_settings
        from mlops_nb.server.handlers import Context
        from mlops_nb.server.jobs import Jobs
        from mlops_nb.server.reads import DaemonPool, StoreGuard
        from mlops_nb.tracking.store import http_defaults

        http_defaults()  # as in mlops-nb's commands: a server that is gone is said so in seconds
        root = Path(self.serverapp.root_dir).resolve()
        # Kernels start in their notebook's folder, which may have no pyproject.toml of its own: they inherit
        # this project root, so that they record into the store this server reads.
        os.environ.setdefault(PROJECT_ROOT_ENV, str(find_project_root(root)))
        try:
            settings, problem = load_settings(), None
        except ConfigError as e:  # every route answers with it, rather than a server that will not start
            settings, problem = None, str(e)
            self.log.error("mlops-nb: %s", problem)
        jobs = Jobs(settings.home / "server-jobs", root, settings) if settings is not None else None
        pool = DaemonPool(4, "mlops-nb")
        reads = StoreGuard(settings.tracking_uri if settings else "", pool, self.read_timeout, self.cool_down)
        self.settings["mlops_nb"] = Context(
            root=root, settings=settings, problem=problem, jobs=jobs, executor=pool, reads=reads
        )
        self._follow = None

    def initialize_handlers(self) -> None:
        from mlops_nb.server.handlers import ROUTES
        from mlops_nb.server.live import register_schema

        self.handlers.extend(ROUTES)
        register_schema(self.serverapp.event_logger)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        from mlops_nb.server.live import LiveStages

        context = self.settings["mlops_nb"]
        if context.settings is not None:
            self._follow = LiveStages(context.settings.journal_dir, context.root, serverapp.event_logger, self.log)
            self._follow.start()

    async def stop_extension(self) -> None:
        if self._follow is not None:
            await self._follow.stop()
        context = self.settings.get("mlops_nb")
        if context is not None:
            context.shutdown()


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "mlops_nb.server", "app": MlopsNbExtension}]
