"""The serving package generator behind ``mlops-nb export`` (see docs/serving.md).

``export(model_uri, out)`` writes a standalone FastAPI package for a scikit-learn model from MLflow; the
package's own code comes from the jinja2 templates under ``templates/``.
"""

from __future__ import annotations

from mlops_nb.serving.export import ExportError, ExportResult, export

__all__ = ["ExportError", "ExportResult", "export"]
