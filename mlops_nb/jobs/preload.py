"""Importing this module loads papermill and nbclient the fast way: ``from mlops_nb.jobs.preload import
papermill`` in ``run_job``, and the server that a sweep's worker processes fork from preloads it (once for
all of them).

The fast way: see ``mlops_nb.jobs.schema``, imported first.
"""

from __future__ import annotations

import mlops_nb.jobs.schema  # noqa: F401  # first: jsonschema without its IRI checker

# isort: split
import nbclient  # noqa: F401
import papermill

__all__ = ["papermill"]
