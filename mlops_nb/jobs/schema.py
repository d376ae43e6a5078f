"""nbformat's notebook validator, loaded the fast way: ``from mlops_nb.jobs.schema import validator``.

The fast way: without jsonschema's optional IRI syntax checker. When the ``rfc3987-syntax`` package is
installed (JupyterLab's dependencies bring it), importing jsonschema compiles its ~40 Lark grammars, about
0.8 s (2 s on a busy machine) of every start that validates a notebook or loads papermill; nbformat's
notebook schema never checks IRIs. Only mlops-nb's own processes skip it (a kernel is a process of its
own), and only when jsonschema is not loaded yet.
"""

from __future__ import annotations

import sys

if "jsonschema" not in sys.modules:
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # "not installed", for this process

from nbformat import validator

__all__ = ["validator"]
