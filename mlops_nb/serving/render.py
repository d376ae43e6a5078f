"""Rendering the serving package from the jinja2 templates under ``templates/``.

Every file under ``templates/`` becomes the file of the same relative path in the package, without its
``.j2`` suffix (``dockerignore.j2`` becomes ``.dockerignore``). The templates see the model's input schema,
its metadata (name, version, run id, sha256), the input example with the model's own outputs on it, and the
pinned requirements.

Every value reaches a file through one escaping path (``mlops_nb.serving.literal``): a Python template
takes values only through the ``py`` (a literal), ``ident`` (an identifier) and ``code`` (source built by
``schema`` from escaped parts) filters, and rendering anything else into it is an error; every other file
(Markdown, YAML, Dockerfile, requirements) gets each value on one line.
"""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from mlops_nb.serving.literal import identifier, one_line, python_literal
from mlops_nb.serving.schema import InputSchema

TEMPLATES = Path(__file__).parent / "templates"
_RENAMES = {"dockerignore": ".dockerignore", "gitignore": ".gitignore"}
# Libraries of the generated app, pinned to the versions installed here; the fallback when one is not.
SERVING_REQUIREMENTS = {
    "fastapi": ">=0.110",
    "starlette": ">=0.37",
    "uvicorn": ">=0.29",
    "pydantic": ">=2.6,<3",
    "prometheus-client": ">=0.20",
    "orjson": ">=3.9",
    "skops": ">=0.10",
}
# uvicorn's fast event loop and HTTP parser (what uvicorn[standard] adds): required wherever they install,
# whatever the exporting environment holds (pinned to its versions when it has them). name: (fallback, marker)
SPEEDUPS = {
    "uvloop": (">=0.19", "sys_platform != 'win32' and platform_python_implementation == 'CPython'"),
    "httptools": (">=0.6", "platform_python_implementation == 'CPython'"),
}
TEST_REQUIREMENTS = {"pytest": ">=8", "httpx": ">=0.27", "httpx2": ">=2"}
_NOT_AT_RUN_TIME = {"mlflow", "mlflow-skinny", "mlflow-tracing", "mlops-nb", "cloudpickle"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pin(name: str, fallback: str) -> str:
    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return f"{name}{fallback}"


def requirements(model_requirements: list[str]) -> list[str]:
    """The package's pinned requirements: the model's own (minus MLflow), then the serving libraries."""
    pins: dict[str, str] = {}
    for line in model_requirements:
        name = re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0]
        if _normalise(name) not in _NOT_AT_RUN_TIME:
            pins[_normalise(name)] = line
    for name, fallback in SERVING_REQUIREMENTS.items():
        pins.setdefault(_normalise(name), _pin(name, fallback))
    for name, (fallback, marker) in SPEEDUPS.items():
        pins.setdefault(name, f"{_pin(name, fallback)}; {marker}")
    return list(pins.values())


def _shell_json(value: Any) -> str:
    """JSON for inside a single-quoted shell argument (the README's curl -d '...'): strict JSON (no NaN,
    which the example no longer holds), and no single quote, which would end the argument."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False).replace("'", "\\u0027")


def _dns_name(name: str) -> str:
    """A Kubernetes/Docker-safe name: lower-case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63] or "model"


def test_requirements() -> list[str]:
    """pytest, and the HTTP client of FastAPI's TestClient (httpx2 where installed, which Starlette 1 prefers)."""
    client = "httpx2" if _installed("httpx2") else "httpx"
    return [_pin("pytest", ">=8"), _pin(client, TEST_REQUIREMENTS.get(client, ""))]


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def _finalize_python(value: Any) -> Any:
    """What a ``{{ }}`` of a Python template may print: escaped source (Markup) or a bool/int/None."""
    from markupsafe import Markup

    if isinstance(value, Markup) or value is None or isinstance(value, (bool, int)):
        return value
    raise ValueError(f"{value!r} would go raw into generated Python: render it with |py (a literal), |ident or |code")


def _finalize_text(value: Any) -> Any:
    """What a ``{{ }}`` of any other template prints: escaped markup (tojson ...) as is, anything else on one
    line, so no value adds a line to a Dockerfile, YAML or Markdown file."""
    from markupsafe import Markup

    return value if isinstance(value, Markup) else one_line(value)


def _code(source: str) -> Any:
    """Python source built by ``schema`` from escaped parts (annotations, ``Field`` arguments): one line."""
    from markupsafe import Markup

    if not source.isprintable():
        raise ValueError(f"generated source {source!r} is not one line of printable characters")
    return Markup(source)


def _environment(python: bool) -> Any:
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # Python, YAML and Markdown, not HTML: the finalize hooks escape instead
        finalize=_finalize_python if python else _finalize_text,
    )
    env.filters["py"] = lambda value: Markup(python_literal(value))
    env.filters["ident"] = lambda name: Markup(identifier(name))
    env.filters["code"] = _code
    env.filters["shell_json"] = _shell_json
    return env


def _python_minor(version: Any) -> str:
    """``3.11`` from the model's Python version (``3.11.4``), which MLmodel (written by the model's author)
    holds; 3.11 when it is not a version number, as it goes into the Dockerfile's FROM line."""
    match = re.fullmatch(r"(3\.\d{1,2})(?:\.\d+)?", str(version or ""))
    return match.group(1) if match else "3.11"


def render_package(
    out: Path,
    *,
    schema: InputSchema,
    metadata: dict[str, Any],
    example: dict[str, Any],
    model_requirements: list[str],
) -> list[Path]:
    """Render every template into ``out``; returns the files written."""
    environments = {True: _environment(python=True), False: _environment(python=False)}
    context = {
        "schema": schema,
        "columns": schema.columns,
        "meta": metadata,
        "example": example,
        "first_split": {"columns": example["columns"], "data": example["data"][:1]},
        "first_record": dict(zip(example["columns"], example["data"][0], strict=True)),
        "has_probabilities": "probabilities" in example,
        "requirements": requirements(model_requirements),
        "test_requirements": test_requirements(),
        "python_minor": _python_minor(metadata.get("python_version")),
        "title": metadata.get("name") or f"run {metadata.get('run_id')}",
        "app_name": _dns_name(str(metadata.get("name") or "model")),
    }
    written = []
    for template in sorted(TEMPLATES.rglob("*.j2")):
        relative = template.relative_to(TEMPLATES)
        name = relative.name[: -len(".j2")]
        target = out / relative.parent / _RENAMES.get(name, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        env = environments[name.endswith(".py")]
        target.write_text(env.get_template(relative.as_posix()).render(**context))
        written.append(target)
    (out / "tests" / "example.json").write_text(json.dumps(example, indent=1) + "\n")
    (out / "model").mkdir(exist_ok=True)
    example_input = {"columns": example["columns"], "data": example["data"]}
    (out / "model" / "input_example.json").write_text(json.dumps(example_input, allow_nan=False) + "\n")
    return written
