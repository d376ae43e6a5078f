"""A job's parameters: typed like papermill's CLI, read from YAML files, checked against the notebook.

``-p NAME VALUE`` values are typed as papermill types them (``True``/``False``/``None``, int, float, else the
text); ``-r NAME VALUE`` keeps the text; ``-f FILE`` and ``-y TEXT`` are YAML, for lists and mappings. A name
the notebook's ``parameters`` cell does not assign is an error before anything runs (papermill only warns,
and the run then silently ignores it), unless allowed.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from mlops_nb.exceptions import UsageError


def typed(text: str) -> Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"True"`` -> True, ``"None"`` -> None, anything else stays text."""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def read_file(path: Path) -> dict[str, Any]:
    """The parameters in a YAML (or JSON) file: a mapping of names to values."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"Cannot read the parameter file {path}: {e.strerror}.") from e
    return read_yaml(text, f"The parameter file {path}", "Fix the file.")


def read_yaml(text: str, source: str = "The --parameters-yaml text", fix: str = "Fix the YAML.") -> dict[str, Any]:
    """The parameters in a YAML text (papermill's ``-y``): a mapping of names to values; ``source`` names it
    in errors."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(e, "problem", None) or e
        raise UsageError(f"{source} is not valid YAML{at}: {problem}. {fix}") from e
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise UsageError(
            f"{source} must map parameter names to values (e.g. 'alpha: 0.5'), not a {type(data).__name__}."
        )
    return data


def check_names(notebook: str, nb: dict[str, Any], parameters: dict[str, Any], allow_new: bool) -> None:
    """UsageError when a parameter is not one the notebook declares (and new ones are not allowed)."""
    from mlops_nb.stages.params import declared

    if allow_new or not parameters:
        return
    names = declared(nb)
    if names is None:
        raise UsageError(
            f"{notebook} has no cell tagged 'parameters', so {', '.join(sorted(parameters))} would be injected "
            "as new variables. Tag the cell that sets the defaults with 'parameters' (JupyterLab: the cell's "
            "property inspector), or pass --allow-new."
        )
    unknown = sorted(set(parameters) - set(names))
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, list(names), n=1)
            hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
        raise UsageError(
            f"Unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(hints)}: the 'parameters' cell of "
            f"{notebook} sets {', '.join(sorted(names)) or 'nothing'}. Fix the name, or pass --allow-new to "
            "inject it anyway."
        )
