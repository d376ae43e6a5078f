"""What a cell reads and writes, found with the ``ast`` module.

- **inputs**: names the cell reads before it assigns them (also free names inside functions it defines,
  which are read when they are called);
- **outputs**: names it assigns (``=``, ``+=``, ``for``/``with`` targets, ``del``), plus names it may
  mutate in place: ``df["x"] = ...``, ``df.x = ...``, a method call used as a statement (``model.fit(X)``)
  or with ``inplace=True`` make ``df``/``model`` outputs too;
- **imports**: names bound by import statements, restored on a cache hit by re-running the statements;
- **definitions**: functions and classes, restored by re-running their (cheap) definitions;
- **normalised code**: the AST dump, so comments, blank lines and formatting do not change a stage's key.

IPython syntax inside the cell (``%time``, ``!ls``) is first turned into Python by IPython's transformer.
What this cannot see: mutation through another function (``np.random.shuffle(a)``), names reached through
``globals()``/``exec``, attributes of modules. ``%%track --in/--out`` override the inference.
"""

from __future__ import annotations

import ast
import builtins
import functools
from dataclasses import dataclass, field

_BUILTINS = frozenset(dir(builtins)) | {"get_ipython", "display", "In", "Out", "exit", "quit"}


@dataclass(frozen=True)
class CellAnalysis:
    """The result of ``analyse``; name sets keep first-seen order."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    imports: tuple[str, ...]  # names bound by imports
    definitions: tuple[str, ...]  # names bound by def/class
    restore_code: str  # the cell's import statements and top-level def/class, re-run on a cache hit
    normalised: str
    python: str = field(repr=False)  # the cell as plain Python


def to_python(cell: str) -> str:
    """The cell with IPython syntax (magics, shell escapes) turned into Python."""
    if "%" not in cell and "!" not in cell and "?" not in cell:
        return cell
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(cell)


class _Visitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.assigned: dict[str, None] = {}
        self.inputs: dict[str, None] = {}
        self.outputs: dict[str, None] = {}
        self.imports: dict[str, None] = {}
        self.definitions: dict[str, None] = {}

    def _read(self, name: str) -> None:
        if name not in self.assigned and name not in _BUILTINS:
            self.inputs.setdefault(name)

    def _write(self, name: str) -> None:
        self.assigned.setdefault(name)
        self.outputs.setdefault(name)

    def _mutate(self, node: ast.AST) -> None:
        """``x[...] = v``, ``x.a = v``, ``x.method(...)``: x (the root name) is read and may change."""
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        if isinstance(node, ast.Name):
            self._read(node.id)
            if node.id not in self.imports:
                self.outputs.setdefault(node.id)

    # --- reads and writes ---------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._read(node.id)
        else:  # Store, Del
            self._write(node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)  # the value is read before the targets are bound
        for target in node.targets:
            self._target(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self._target(node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self._read(node.target.id)
            self._write(node.target.id)
        else:
            self._target(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._write(node.target.id)

    def _target(self, target: ast.AST) -> None:
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            self.visit(target.slice if isinstance(target, ast.Subscript) else ast.Pass())
            self._mutate(target)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._target(elt)
        elif isinstance(target, ast.Starred):
            self._target(target.value)
        else:
            self.visit(target)

    def visit_For(self, node: ast.For) -> None:
        self.visit(node.iter)
        self._target(node.target)
        for stmt in node.body + node.orelse:
            self.visit(stmt)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._target(item.optional_vars)
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncWith = visit_With

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._target(target)

    def visit_Expr(self, node: ast.Expr) -> None:
        # A method call whose result is dropped is called for its effect: model.fit(X), lst.append(x).
        call = node.value
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
            self._mutate(call.func.value)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if _is_magic_running_code(node):  # %time x = f(y): the code is a string argument of the magic
            for stmt in ast.parse(node.args[-1].value).body:
                self.visit(stmt)
            return
        if isinstance(node.func, ast.Attribute) and any(
            k.arg == "inplace" and not (isinstance(k.value, ast.Constant) and not k.value.value) for k in node.keywords
        ):
            self._mutate(node.func.value)  # df.dropna(inplace=True)
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._write(node.name)
        for stmt in node.body:
            self.visit(stmt)

    # --- imports and definitions --------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._import(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self._import(alias.asname or alias.name)

    def _import(self, name: str) -> None:
        self.assigned.setdefault(name)
        self.imports.setdefault(name)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        if not isinstance(node, ast.Lambda):
            for decorator in node.decorator_list:
                self.visit(decorator)
        for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(default)
        # Free names of the body are read when the function runs: treat them as inputs of the cell.
        for name in _free_names(node):
            self._read(name)
        if not isinstance(node, ast.Lambda):
            self.assigned.setdefault(node.name)
            self.definitions.setdefault(node.name)

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in node.bases + node.decorator_list + [k.value for k in node.keywords]:
            self.visit(expr)
        for name in _free_names(node):
            self._read(name)
        self.assigned.setdefault(node.name)
        self.definitions.setdefault(node.name)

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> None:
        for name in _free_names(node):
            self._read(name)

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension


_CODE_MAGICS = frozenset({"time", "timeit", "prun", "capture", "debug"})


def _is_magic_running_code(node: ast.Call) -> bool:
    """``get_ipython().run_line_magic('time', 'code')`` / ``run_cell_magic('time', '', 'code')``."""
    func = node.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr in ("run_line_magic", "run_cell_magic")
        and len(node.args) >= 2
        and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)
        and node.args[0].value in _CODE_MAGICS
    )


def _free_names(node: ast.AST) -> list[str]:
    """Names a function, class or comprehension reads from the enclosing (global) scope."""
    bound: set[str] = set()
    loads: list[str] = []
    args = getattr(node, "args", None)
    if isinstance(args, ast.arguments):
        bound.update(a.arg for a in args.posonlyargs + args.args + args.kwonlyargs)
        bound.update(a.arg for a in (args.vararg, args.kwarg) if a is not None)
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
        body: list[ast.AST] = [node]
    else:
        body = node.body if isinstance(node.body, list) else [node.body]
    global_names: set[str] = set()
    for sub in (n for stmt in body for n in ast.walk(stmt)):
        if isinstance(sub, ast.Global):
            global_names.update(sub.names)
        elif isinstance(sub, ast.Name):
            if isinstance(sub.ctx, ast.Load):
                loads.append(sub.id)
            else:
                bound.add(sub.id)
        elif isinstance(sub, ast.arg):
            bound.add(sub.arg)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and sub is not node:
            bound.add(sub.name)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in sub.names)
    return [n for n in dict.fromkeys(loads) if n not in bound or n in global_names]


@functools.lru_cache(maxsize=256)
def analyse(cell: str) -> CellAnalysis:
    """Analyse a cell's code (IPython syntax allowed). Raises SyntaxError like Python would."""
    python = to_python(cell)
    tree = ast.parse(python)
    visitor = _Visitor()
    for stmt in tree.body:
        visitor.visit(stmt)
    restore = [
        stmt
        for stmt in tree.body
        if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    outputs = [n for n in visitor.outputs if n not in visitor.imports and n not in visitor.definitions]
    return CellAnalysis(
        inputs=tuple(visitor.inputs),
        outputs=tuple(outputs),
        imports=tuple(visitor.imports),
        definitions=tuple(visitor.definitions),
        restore_code=ast.unparse(ast.Module(body=restore, type_ignores=[])),
        normalised=ast.dump(tree, annotate_fields=False, include_attributes=False),
        python=python,
    )
