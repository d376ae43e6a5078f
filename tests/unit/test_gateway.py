"""tracking/ is the one gateway to MLflow: its public functions are declared to return our own records."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re

import mlops_nb.tracking

# Modules MLflow itself calls, whose public names are MLflow's own interfaces (a run-context provider).
MLFLOW_ADAPTERS = {"mlops_nb.tracking.mlflow_context"}


def _type_checking_imports(source: str) -> dict[str, str]:
    """Names imported under ``if TYPE_CHECKING:`` -> the module they come from."""
    names = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    names.update({a.asname or a.name: stmt.module or "" for a in stmt.names})
                elif isinstance(stmt, ast.Import):
                    names.update({(a.asname or a.name).split(".")[0]: a.name for a in stmt.names})
    return names


def _origin(name: str, module: object, hidden: dict[str, str]) -> str:
    if name in hidden:
        return hidden[name]
    value = getattr(module, name, None)
    if value is None:
        return "builtins"
    return value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", "") or ""


def test_no_public_function_of_tracking_returns_an_mlflow_type() -> None:
    import papermill  # noqa: F401 - papermill loads our engine by entry point; import it first, as it does

    leaks = []
    checked = 0
    for info in pkgutil.walk_packages(mlops_nb.tracking.__path__, "mlops_nb.tracking."):
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf.startswith("_") or info.name in MLFLOW_ADAPTERS:
            continue
        module = importlib.import_module(info.name)
        hidden = _type_checking_imports(inspect.getsource(module))
        for name, function in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(function) or function.__module__ != info.name:
                continue
            checked += 1
            annotation = function.__annotations__.get("return")
            assert annotation is not None, f"{info.name}.{name} declares no return type"
            text = annotation if isinstance(annotation, str) else repr(annotation)
            for word in re.findall(r"[A-Za-z_][\w.]*", text):
                origin = _origin(word.split(".")[0], module, hidden)
                if origin.split(".")[0] == "mlflow" or word.startswith("mlflow"):
                    leaks.append(f"{info.name}.{name} -> {text}")
    assert checked > 40  # the walk really found tracking's functions
    assert not leaks, "tracking/ hands out MLflow objects:\n" + "\n".join(leaks)


def test_the_layers_above_tracking_import_no_mlflow_module() -> None:
    """No module outside tracking/ imports MLflow, not even lazily inside a function (import-linter checks
    the graph in CI; this reads the source, where a lazy import is plain to see)."""
    import mlops_nb

    offenders = []
    for info in pkgutil.walk_packages(mlops_nb.__path__, "mlops_nb."):
        if info.name.startswith("mlops_nb.tracking"):
            continue
        spec = importlib.util.find_spec(info.name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        tree = ast.parse(open(spec.origin, encoding="utf-8").read())  # noqa: SIM115
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            offenders += [f"{info.name}: import {n}" for n in names if n.split(".")[0] == "mlflow"]
    assert not offenders, offenders
