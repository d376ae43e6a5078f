"""Values in MLflow search filters (``search_runs``, ``search_model_versions``), quoted as its parser reads them.

MLflow's filter parser (``mlflow.utils.search_utils``, on sqlparse's tokens) takes the text between the
quotes as it is and unescapes nothing: ``name = 'bob\\'s model'`` searches for ``bob\\'s model``, and
``'back\\\\slash'`` for two backslashes. A value is therefore quoted with the kind of quote it does not hold;
one holding both kinds (or ending in a backslash, which would escape the closing quote) cannot be written.
"""

from __future__ import annotations

from mlops_nb.exceptions import UsageError


def quotable(value: str) -> bool:
    """True when ``value`` can be written as a string in an MLflow filter."""
    return not value.endswith("\\") and ("'" not in value or '"' not in value)


def literal(value: str, what: str = "value") -> str:
    """``value`` as a quoted string of an MLflow filter.

    Raises:
        UsageError: ``value`` holds both ``'`` and ``"`` or ends in a backslash (``what`` names it).
    """
    if not quotable(value):
        raise UsageError(
            f"The {what} {value!r} cannot be searched for in MLflow: its filters cannot hold a text with both "
            "' and \" or one ending in a backslash. Rename it."
        )
    return f"'{value}'" if "'" not in value else f'"{value}"'
