"""A job's parameters: typed like papermill's CLI, read from YAML files, checked against the notebook.

``-p NAME VALUE`` values are typed as papermill types them (``True``/``False``/``None``, int, float, else the
text); ``-r NAME VALUE`` keeps the text; ``-f FILE`` and ``-y TEXT`` are YAML, for lists and mappings. A name
the notebook's ``parameters`` cell does not assign is an error before anything runs (papermill only warns,
and the run then silently ignores it), unless allowed.

Every value is bounded before anything runs: a parameters file by its size, a YAML text by the size it
expands to (anchors and aliases can make a few hundred bytes expand to gigabytes), and each parameter by
MLflow's limit on a param's text, since every parameter is recorded as one.
"""

from __future__ import annotations

import datetime
import difflib
import json
import keyword
from pathlib import Path
from typing import Any

from mlops_nb.exceptions import UsageError

MAX_FILE_BYTES = 1_000_000  # a parameters file; anything bigger is data, to be read by the notebook from a path
MAX_EXPANDED = 1_000_000  # YAML nodes plus scalar characters once every alias is expanded


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


def like_defaults(nb: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """``parameters`` typed like the notebook's defaults where that loses nothing: a whole number given for a
    parameter whose default is a float (``C = 1.0``; ``-p C 1``, ``--grid C=0.1,1,10``) becomes a float, so
    the job sees, records and caches ``1.0`` as the notebook would have had it."""
    from mlops_nb.stages.params import defaults

    known = defaults(nb)
    return {
        name: float(value)
        if isinstance(known.get(name), float) and isinstance(value, int) and not isinstance(value, bool)
        else value
        for name, value in parameters.items()
    }


def read_file(path: Path) -> dict[str, Any]:
    """The parameters in a YAML (or JSON) file: a mapping of names to values."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UsageError(
                f"The parameter file {path} is {size:,} bytes; parameter files are limited to {MAX_FILE_BYTES:,}. "
                "Pass the path of a data file as a parameter and read it in the notebook instead."
            )
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"Cannot read the parameter file {path}: {e.strerror}.") from e
    except UnicodeDecodeError as e:
        raise UsageError(f"The parameter file {path} is not UTF-8 text ({e.reason}). Fix the file.") from e
    return read_yaml(text, f"The parameter file {path}", "Fix the file.")


def read_yaml(text: str, source: str = "The --parameters-yaml text", fix: str = "Fix the YAML.") -> dict[str, Any]:
    """The parameters in a YAML text (papermill's ``-y``): a mapping of names to values; ``source`` names it
    in errors."""
    import yaml

    try:
        data = load_yaml(text, source)
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


def load_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load``, refusing a text that expands beyond ``MAX_EXPANDED`` (an "alias bomb").

    Aliases are shared nodes while YAML composes the document; they multiply only when the value is used
    (recorded as a param, injected as Python). The expanded size is counted on the composed node graph, each
    node once (memoised), before any value is constructed.

    Raises:
        UsageError: the text is too big once expanded, naming the limit.
        yaml.YAMLError: the text is not valid YAML.
    """
    import yaml

    if len(text) > MAX_FILE_BYTES:
        raise UsageError(f"{source} is {len(text):,} characters; parameters are limited to {MAX_FILE_BYTES:,}.")

    class BoundedLoader(yaml.SafeLoader):
        def construct_document(self, node: Any) -> Any:
            size = _expanded_size(node, {})
            if size > MAX_EXPANDED:
                raise UsageError(
                    f"{source} expands to more than {MAX_EXPANDED:,} YAML nodes and characters once its anchors "
                    f"and aliases are expanded ({len(text):,} characters as written); parameters are limited to "
                    f"{MAX_EXPANDED:,}. Write the values out, or pass a data file's path and read it in the notebook."
                )
            return super().construct_document(node)

    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _expanded_size(node: Any, seen: dict[int, int]) -> int:
    """Nodes plus scalar characters of ``node`` with every alias expanded; ``seen`` memoises shared nodes."""
    import yaml

    known = seen.get(id(node))
    if known is not None:
        return known
    seen[id(node)] = 0  # a recursive alias (a list containing itself) counts once, not forever
    if isinstance(node, yaml.ScalarNode):
        size = 1 + len(node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, seen) for child in node.value)
    else:  # MappingNode
        size = 1 + sum(_expanded_size(k, seen) + _expanded_size(v, seen) for k, v in node.value)
    size = min(size, MAX_EXPANDED + 1)  # enough to refuse; keeps the sums small
    seen[id(node)] = size
    return size


def check_values(parameters: dict[str, Any], source: str = "Parameter") -> dict[str, Any]:
    """The parameters as they are injected and recorded, or a UsageError naming the parameter and the fix.

    Names must be Python names (papermill injects ``name = value``). Dates and times (YAML's ``2001-12-14``,
    TOML's dates) become their text, as papermill injects them. Values must be text, numbers, booleans,
    None, or lists and mappings of those, and each value's text at most MLflow's limit for a param.
    """
    from mlops_nb.tracking.validation import MAX_PARAM_VALUE, surrogate_at

    checked: dict[str, Any] = {}
    for name, value in parameters.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise UsageError(
                f"{source} name {name!r} is not a Python name: papermill injects each parameter as "
                "'name = value'. Use letters, digits and underscores, not starting with a digit."
            )
        plain = _plain(value, name)
        text = plain if isinstance(plain, str) else json.dumps(plain) if isinstance(plain, (list, dict)) else str(plain)
        if len(text) > MAX_PARAM_VALUE:
            raise UsageError(
                f"{source} {name!r} is {len(text):,} characters; a parameter is recorded as an MLflow param, which "
                f"holds at most {MAX_PARAM_VALUE:,}. Pass the path of a file holding the value instead, and read "
                "it in the notebook."
            )
        at = surrogate_at(text)
        if at is not None:
            raise UsageError(
                f"{source} {name!r} holds {text[at]!r} at position {at}, a lone surrogate (a byte that is not UTF-8, "
                "as os.fsdecode gives for such file names): MLflow cannot store it. Pass the value as UTF-8 text."
            )
        checked[name] = plain
    return checked


def _plain(value: Any, name: str) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return str(value)  # as papermill injects what it cannot translate: its text
    if isinstance(value, (list, tuple)):
        return [_plain(v, name) for v in value]
    if isinstance(value, dict):
        return {
            k if k is None or isinstance(k, (str, int, float)) else str(k): _plain(v, name) for k, v in value.items()
        }
    raise UsageError(
        f"Parameter {name!r} holds a {type(value).__name__}, which cannot be injected into a notebook. Use text, "
        "numbers, booleans, null, or lists and mappings of those."
    )


def check_names(notebook: str, nb: dict[str, Any], parameters: dict[str, Any], allow_new: bool) -> None:
    """UsageError when a parameter is not one the notebook declares (and new ones are not allowed)."""
    from mlops_nb.stages.params import declared

    if allow_new or not parameters:
        return
    _check_syntax(notebook, nb)
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


def _check_syntax(notebook: str, nb: dict[str, Any]) -> None:
    """UsageError when the ``parameters`` cell does not parse: its names cannot be known, and the notebook
    would stop at that cell."""
    from mlops_nb.stages.analysis import analyse

    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code" or "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        try:
            analyse(source)
        except SyntaxError as e:
            raise UsageError(
                f"The 'parameters' cell of {notebook} (cell {index + 1}) has a syntax error at line {e.lineno}: "
                f"{e.msg}. Fix the cell; its names cannot be known, and the notebook would stop there."
            ) from None
