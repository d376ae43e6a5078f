"""What a cell reads and writes, found with the ``ast`` module.

- **inputs**: names the cell reads before it assigns them (also free names inside functions it defines,
  which are read when they are called);
- **outputs**: names it assigns (``=``, ``+=``, ``for``/``with`` targets, ``del``), plus names it may
  mutate in place: ``df["x"] = ...``, ``df.x = ...``, a method call used as a statement (``model.fit(X)``)
  or with ``inplace=True`` make ``df``/``model`` outputs too;
- **imports**: names bound by import statements, restored on a cache hit by re-running the statements;
- **definitions**: functions and classes, restored by re-running their (cheap) definitions;
- **normalised code**: the AST dump, so comments, blank lines and formatting do not change a stage's key.

- **paths**: string constants (``pd.read_csv('data.csv')``, ``df.to_csv('out.csv')``), which the stage
  takes as files it reads or writes when they name files; **path names**: inputs passed as the path of a
  file-reading or -writing call (``pd.read_csv(data_path)``), whose values are looked at when the stage runs;
- **opaque**: why the cell's inputs cannot all be seen (a shell escape, ``%run``, ``exec``/``eval``, a
  subprocess, a file path computed at run time): such a cell is never served from the cache.

IPython syntax inside the cell (``%time``, ``!ls``) is first turned into Python by IPython's transformer.
What this cannot see: mutation through another function (``np.random.shuffle(a)``), names reached through
``globals()``, attributes of modules. ``%%track --in/--out`` override the inference.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

# Read before assigned, these are not inputs unless the namespace has a value of that name (``max = 99``
# shadows the builtin, and is then an input like any other): the stage checks the namespace.
_IPYTHON_GLOBALS = frozenset({"get_ipython", "display", "In", "Out", "exit", "quit"})

# Calls that read or write files, by the name called (``pd.read_csv``, ``open``, ``df.to_parquet``) and
# the position of their path argument; ``to_*`` / ``read_*`` cover pandas, pyarrow and friends.
_FILE_CALLS = {
    "open": 0,
    "load": 0,
    "loadtxt": 0,
    "genfromtxt": 0,
    "fromfile": 0,
    "imread": 0,
    "open_dataset": 0,
    "save": 0,
    "savez": 0,
    "savez_compressed": 0,
    "savetxt": 0,
    "savefig": 0,
    "imwrite": 0,
    "dump": 1,
    "Path": 0,
    "PurePath": 0,
    "copy": 0,
    "copyfile": 0,
    "copytree": 0,
    "move": 0,
    "rename": 0,
    "remove": 0,
    "unlink": 0,
    "rmtree": 0,
    "makedirs": 0,
    "mkdir": 0,
    "listdir": 0,
    "scandir": 0,
    "glob": 0,
    "iglob": 0,
    "File": 0,
    "connect": 0,
}
_PATH_BUILDERS = frozenset({"Path", "PurePath", "join"})
_PATH_KEYWORDS = frozenset({"path", "filepath_or_buffer", "path_or_buf", "fname", "file", "filename", "io", "where"})
_URL_SCHEMES = ("http://", "https://", "s3://", "gs://", "gcs://", "az://", "abfs://", "ftp://", "hdfs://")
# Calls whose effect on inputs and outputs no analysis can see.
_OPAQUE_CALLS = {
    "exec": "runs code from a string (exec)",
    "eval": "runs code from a string (eval)",
    "compile": "compiles code from a string",
    "__import__": "imports a module by a computed name",
    "import_module": "imports a module by a computed name",
    "globals": "reaches names through globals()",
    "system": "runs a shell command",
    "popen": "runs a shell command",
    "getoutput": "runs a shell command",
    "getstatusoutput": "runs a shell command",
    "run": "runs a process",
    "call": "runs a process",
    "check_call": "runs a process",
    "check_output": "runs a process",
    "Popen": "runs a process",
}
_OPAQUE_MODULES = {
    "run": "subprocess",
    "call": "subprocess",
    "check_call": "subprocess",
    "check_output": "subprocess",
    "Popen": "subprocess",
    "system": "os",
    "popen": "os",
    "getoutput": "subprocess",
    "getstatusoutput": "subprocess",
    "import_module": "importlib",
}
# Line magics that only time, profile or set display options: their code (if any) is analysed.
_CODE_MAGICS = frozenset({"time", "timeit", "prun", "capture", "debug"})
_HARMLESS_MAGICS = frozenset({"matplotlib", "precision", "pprint", "config", "load_ext", "who", "whos", "pwd"})


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
    paths: tuple[str, ...] = ()  # string constants: the files it may read or write, if they exist
    call_paths: tuple[str, ...] = ()  # the constants given as paths to file calls (folders count there)
    write_only: tuple[str, ...] = ()  # paths only given to calls that write them: outputs, not inputs
    path_names: tuple[str, ...] = ()  # inputs used as paths of file calls
    opaque: tuple[str, ...] = ()  # why its inputs cannot all be seen (then it is never served from the cache)
    modules: tuple[str, ...] = ()  # the modules its import statements import
    path_exprs: tuple[str, ...] = ()  # file paths built from inputs (``evaluate_path`` works them out)
    file_exprs: tuple[str, ...] = ()  # ... built by Path()/os.path.join() on their own: files, not folders
    seeds: tuple[str, ...] = ()  # global generators the cell seeds before anything else ("numpy", "random")


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
        self.paths: dict[str, None] = {}  # string constants: files the cell may read or write
        self.call_paths: dict[str, None] = {}  # string constants given as the path of a file call
        self.written: dict[str, None] = {}  # ... of a call that writes it
        self.read: dict[str, None] = {}  # ... of a call that reads it (or may)
        self.path_names: dict[str, None] = {}  # inputs used as the path of a file call
        self.opaque: dict[str, None] = {}  # why the cell's inputs cannot all be seen
        self.constants: dict[str, str] = {}  # names assigned a string constant in the cell
        self.handles: set[str] = set()  # names bound by ``with ... as`` (file objects)
        self.modules: dict[str, None] = {}  # modules imported by import statements
        self.loop_names: set[str] = set()  # names a comprehension being looked into binds
        self.path_exprs: dict[str, None] = {}  # paths built from inputs: worked out when the stage runs
        self.file_exprs: dict[str, None] = {}  # the same, built by Path()/join() outside a file call: files only

    def _read(self, name: str) -> None:
        if name not in self.assigned and name not in _IPYTHON_GLOBALS:
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
            if isinstance(target, ast.Name):
                if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    self.constants[target.id] = node.value.value
                else:
                    self.constants.pop(target.id, None)
                    if isinstance(node.value, ast.Call) and _called_name(node.value) == "open":
                        self.handles.add(target.id)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, str) and 0 < len(value) < 1024 and "\n" not in value and "\x00" not in value:
            self.paths.setdefault(value)

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
                if isinstance(item.optional_vars, ast.Name):
                    self.handles.add(item.optional_vars.id)
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
        self._opaque_call(node)
        self._file_call(node)
        if isinstance(node.func, ast.Attribute) and any(
            k.arg == "inplace" and not (isinstance(k.value, ast.Constant) and not k.value.value) for k in node.keywords
        ):
            self._mutate(node.func.value)  # df.dropna(inplace=True)
        self.generic_visit(node)

    def _opaque_call(self, node: ast.Call) -> None:
        func, name = node.func, _called_name(node)
        line = getattr(node, "lineno", 0)
        if isinstance(func, ast.Attribute) and func.attr in ("system", "getoutput", "run_line_magic", "run_cell_magic"):
            owner = func.value
            if isinstance(owner, ast.Call) and _called_name(owner) == "get_ipython":
                if func.attr in ("system", "getoutput"):
                    self.opaque.setdefault(f"runs a shell command (line {line})")
                    return
                magic = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else "?"
                if magic not in _CODE_MAGICS and magic not in _HARMLESS_MAGICS:
                    self.opaque.setdefault(f"runs the magic %{magic} (line {line})")
                return
        if name in _OPAQUE_CALLS:
            module = _OPAQUE_MODULES.get(name)
            owner = func.value if isinstance(func, ast.Attribute) else None
            # exec(...), check_output(...), subprocess.run(...), os.system(...); not run(), df.run(), model.call()
            bare = isinstance(func, ast.Name) and name not in ("run", "call")
            qualified = isinstance(owner, ast.Name) and module is not None and owner.id in (module, "sp")
            if bare or qualified:
                self.opaque.setdefault(f"{_OPAQUE_CALLS[name]} (line {line})")

    def _file_call(self, node: ast.Call) -> None:
        name = _called_name(node)
        if not (name in _FILE_CALLS or name.startswith(("read_", "to_", "write_"))):
            return
        if name in _PATH_BUILDERS:
            # Path('conf.txt').read_text(): a file (not a folder: Path(DATA) alone is not a read of DATA/)
            if self._path_expression(node):
                self.file_exprs.setdefault(ast.unparse(node))
            else:
                self.opaque.setdefault(
                    f"uses a file path computed at run time: {ast.unparse(node)[:120]} (line {node.lineno})"
                )
            return
        position = _FILE_CALLS.get(name, 0)
        arg = next((k.value for k in node.keywords if k.arg in _PATH_KEYWORDS), None)
        if arg is None and len(node.args) > position:
            arg = node.args[position]
        if arg is None:
            return
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            (self.written if _writes(name, node) else self.read).setdefault(arg.value)
        if self._static_path(arg):
            return
        where = f"{ast.unparse(node.func)}({ast.unparse(arg)})"[:120]
        self.opaque.setdefault(f"reads or writes a file by a path computed at run time: {where} (line {node.lineno})")

    def _static_path(self, arg: ast.AST) -> bool:
        """True when the path argument is known before the cell runs (or is not a path at all)."""
        if isinstance(arg, ast.Constant):
            value = arg.value
            if isinstance(value, str) and value.startswith(_URL_SCHEMES):
                self.opaque.setdefault(f"reads a remote URL ({value[:80]})")
            elif isinstance(value, str):
                self.call_paths.setdefault(value)
            return True
        if isinstance(arg, ast.Name):
            if arg.id in self.loop_names:
                return False
            if arg.id in self.handles:
                return True  # a file object opened by a call the analysis checks itself
            if arg.id in self.constants:
                self.call_paths.setdefault(self.constants[arg.id])
                return True  # the constant is among the paths already
            if arg.id not in self.assigned:
                self.path_names.setdefault(arg.id)  # an input: its value is looked at when the stage runs
                return True
            return False
        if self._path_expression(arg):
            # Path(DATA, 'train.csv'), f'{DATA}/train.csv', DATA / 'x': worked out when the stage runs
            self.path_exprs.setdefault(ast.unparse(arg))
            return True
        if isinstance(arg, ast.Call):
            # StringIO(...), open(...) and other calls: a buffer or a file object, not a path; Path(...) or
            # os.path.join(...) of anything else: a path no one can know before the cell runs.
            return _called_name(arg) not in _PATH_BUILDERS
        return isinstance(arg, (ast.Starred, ast.Lambda))

    def _path_expression(self, node: ast.AST) -> bool:
        """A path built only from strings, the cell's inputs and constants, ``+``, ``/``, f-strings,
        ``Path()`` and ``os.path.join()``."""
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str)
        if isinstance(node, ast.Name):
            return node.id not in self.assigned or node.id in self.constants
        if isinstance(node, ast.JoinedStr):
            return all(
                isinstance(v, ast.Constant)
                or (isinstance(v, ast.FormattedValue) and v.format_spec is None and self._path_expression(v.value))
                for v in node.values
            )
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Div)):
            return self._path_expression(node.left) and self._path_expression(node.right)
        if isinstance(node, ast.Call) and _called_name(node) in _PATH_BUILDERS and not node.keywords:
            return all(self._path_expression(a) for a in node.args)
        return False

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
            self._import(alias.asname or alias.name.split(".")[0], alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self._import(alias.asname or alias.name, node.module if node.level == 0 else None)
            elif node.module and node.level == 0:
                self.modules.setdefault(node.module)

    def _import(self, name: str, module: str | None) -> None:
        self.assigned.setdefault(name)
        self.imports.setdefault(name)
        if module:
            self.modules.setdefault(module)

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
        # Files and commands inside it count as in the cell: [pd.read_csv(f) for f in files] reads files by a
        # path known only when it runs (its loop variable).
        bound = {n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
        self.loop_names |= bound
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                self._opaque_call(sub)
                self._file_call(sub)
            elif isinstance(sub, ast.Constant):
                self.visit_Constant(sub)
        self.loop_names -= bound

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension


_WRITERS = frozenset(
    {"save", "savez", "savez_compressed", "savetxt", "savefig", "imwrite", "dump", "mkdir", "makedirs"}
)


def _writes(name: str, node: ast.Call) -> bool:
    """True for a call that only writes its path: ``df.to_csv(p)``, ``np.save(p, a)``, ``open(p, 'w')``."""
    if name.startswith(("to_", "write_")) or name in _WRITERS:
        return True
    if name == "open":
        mode = next((k.value for k in node.keywords if k.arg == "mode"), node.args[1] if len(node.args) > 1 else None)
        return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and not {"r", "a", "+"} & set(mode.value)
    return False


def _called_name(node: ast.Call) -> str:
    """The name a call calls: ``open``, ``read_csv`` for ``pd.read_csv``, ``''`` for anything else."""
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


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


def _seeds(tree: ast.Module) -> tuple[str, ...]:
    """The global generators a cell seeds first thing (``np.random.seed(0)``, ``random.seed(1)`` before any
    statement but imports): what it draws then does not depend on the state it started from."""
    found: list[str] = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "seed"):
            break
        owner = ast.unparse(call.func.value)
        if owner in ("random",):
            found.append("random")
        elif owner.endswith(".random") and owner.split(".")[0] in ("np", "numpy"):
            found.append("numpy")
        else:
            break
    return tuple(found)


def evaluate_path(expression: str, namespace: dict[str, Any]) -> str | None:
    """The path a path expression of ``CellAnalysis.path_exprs`` names with the values of ``namespace``;
    None when a value is not a string or path."""
    import os

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            found = namespace[node.id]
            if not isinstance(found, (str, os.PathLike, int)) or isinstance(found, bool):
                raise TypeError(node.id)
            return found
        if isinstance(node, ast.JoinedStr):
            return "".join(
                str(v.value) if isinstance(v, ast.Constant) else str(value(v.value))
                for v in node.values
                if isinstance(v, (ast.Constant, ast.FormattedValue))
            )
        if isinstance(node, ast.BinOp):
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Div):
                return PurePath(left) / right
            if not (isinstance(left, str) and isinstance(right, str)):
                raise TypeError("+ of a non-string")
            return left + right
        if isinstance(node, ast.Call):
            parts = [os.fspath(value(a)) for a in node.args]
            return str(PurePath(*parts)) if _called_name(node) != "join" else os.path.join(*parts)  # noqa: PTH118
        raise TypeError(type(node).__name__)

    try:
        return os.fspath(value(ast.parse(expression, mode="eval").body))
    except (KeyError, TypeError, ValueError, SyntaxError):
        return None


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
        paths=tuple(visitor.paths),
        call_paths=tuple(visitor.call_paths),
        write_only=tuple(p for p in visitor.written if p not in visitor.read),
        path_names=tuple(visitor.path_names),
        opaque=tuple(visitor.opaque),
        modules=tuple(visitor.modules),
        path_exprs=tuple(visitor.path_exprs),
        file_exprs=tuple(e for e in visitor.file_exprs if e not in visitor.path_exprs),
        seeds=_seeds(tree),
    )
