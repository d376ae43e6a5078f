"""The model registry side of mlops-nb: promoting a run's model behind gates (``mlops-nb promote``).

Importing this package loads no MLflow; the functions load it when called.
"""

from __future__ import annotations

from mlops_nb.registry.promote import FoundModel, Gate, Promotion, find_model, promote

__all__ = ["FoundModel", "Gate", "Promotion", "find_model", "promote"]
