"""Importing this module loads papermill and nbclient the fast way: ``from mlops_nb.jobs.preload import
papermill`` in ``run_job``, and the server that a sweep's worker processes fork from preloads it (once for
all of them).

The fast way: without jsonschema's optional IRI syntax checker. When the ``rfc3987-syntax`` package is
installed (JupyterLab's dependencies bring it), importing jsonschema compiles its ~40 Lark grammars, about
0.8 s of every papermill start; nbformat's notebook validation never checks IRIs. Only mlops-nb's own
processes skip it (a kernel is a process of its own), and only when jsonschema is not loaded yet.
"""

from __future__ import annotations

import sys

if "jsonschema" not in sys.modules:
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # "not installed", for this process

import nbclient  # noqa: F401
import papermill

__all__ = ["papermill"]
