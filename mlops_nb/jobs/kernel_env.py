"""The environment every job's kernel (and the zygote it may fork from) starts with, unless the user set it.

Its own module, below both ``kernels.py`` (which starts kernels) and ``zygote.py`` (which forks them), so that
neither imports the other for it.
"""

from __future__ import annotations

# debugpy, which every kernel imports, warns about Python's frozen modules on each start (its documented
# switch; the kernels' debugger is not used by jobs).
KERNEL_ENV = {"PYDEVD_DISABLE_FILE_VALIDATION": "1"}

# Modules the zygote imports once for all the kernels it forks (comma-separated): a study runs one notebook
# again and again, and its kernels spent most of their CPU importing its libraries (scikit-learn, SciPy).
PRELOAD_ENV = "MLOPS_NB_KERNEL_PRELOAD"
# Never imported ahead: they start threads or devices at import, pick a plotting backend, or are heavy and
# rarely needed before the cell that uses them.
NOT_PRELOADED = ("tensorflow", "torch", "jax", "ray", "dask", "distributed", "pyspark", "matplotlib.pyplot", "mlflow")


def notebook_imports(cells: list[str]) -> list[str]:
    """The installed packages' modules that ``cells`` (code cells' sources) import at their top level, in
    order: what a zygote can import ahead for the notebook's kernels. The notebook's own modules (not
    installed) are left out: they may change between trials."""
    import ast
    from importlib.metadata import packages_distributions

    installed = packages_distributions()
    found: list[str] = []
    for source in cells:
        code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                top = name.partition(".")[0]
                unsafe = any(name == n or name.startswith(f"{n}.") for n in NOT_PRELOADED)
                if top in installed and top != "mlops_nb" and not unsafe and name not in found:
                    found.append(name)
    return found
