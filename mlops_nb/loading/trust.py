"""Which types of a skops model file the serving package may load: trust comes from the person exporting.

``skops.io.load`` builds every object of the file from a type named in the file, and for some node kinds
calls that type with arguments from the file: a file naming ``posix.system`` runs a command when loaded if
``posix.system`` is trusted. So the list of trusted types never comes from the file or from the MLmodel
beside it (``skops_trusted_types`` is written by whoever logged the model). It is:

- the types skops trusts by default (not listed: ``skops.io.load`` adds them);
- types mlops-nb knows to be inert, among those skops reports untrusted: classes defined in scikit-learn
  (estimators and their fitted state, such as ``sklearn.tree._tree.Tree``), numpy scalar and dtype
  classes, and scipy sparse containers (classes only: functions such as ``numpy.log`` need ``--trust``);
- the types the person exporting names with ``--trust TYPE``.

Types that can run code, read or write files or reach the network when called (``os``, ``subprocess``,
``builtins.eval``, ``importlib``, ``pickle`` ...: ``UNSAFE_MODULES`` and ``UNSAFE_NAMES``) are refused even
with ``--trust``, unless ``--allow-unsafe TYPE`` names each of them. The deny-list is a second line: what is
not on it still needs ``--trust``.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from pathlib import Path

from mlops_nb.exceptions import ExportError

# Modules whose callables run code, touch files, processes or the network, or build code objects.
UNSAFE_MODULES = frozenset(
    {
        "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "_posixsubprocess", "sys", "shutil", "socket",
        "_socket", "ssl", "select", "selectors", "signal", "pty", "tty", "fcntl", "resource", "mmap", "ctypes",
        "_ctypes", "cffi", "importlib", "imp", "zipimport", "pkgutil", "runpy", "code", "codeop", "pdb", "bdb",
        "inspect", "gc", "types", "marshal", "pickle", "_pickle", "cPickle", "copyreg", "pickletools",
        "shelve", "dbm", "cloudpickle", "dill", "joblib", "multiprocessing", "concurrent", "threading",
        "_thread", "asyncio", "tempfile", "glob", "io", "_io", "pathlib", "fileinput", "linecache", "tokenize",
        "webbrowser", "urllib", "http", "ftplib", "smtplib", "poplib", "imaplib", "telnetlib", "xmlrpc",
        "platform", "sysconfig", "timeit", "trace", "cProfile", "profile", "operator",
        "logging", "atexit", "torch", "keras", "tensorflow", "numpy.ctypeslib", "numpy.f2py",
        "numpy.distutils", "numpy.testing", "numpy.lib.npyio", "numpy.lib.format", "numpy.lib._npyio_impl",
        "numpy.lib._datasource", "pandas.io", "scipy.io", "sklearn.datasets", "sklearn.externals",
        "sklearn.utils._testing",
    }
)  # fmt: skip
# Single callables elsewhere that load pickles, read files or evaluate expressions.
UNSAFE_NAMES = frozenset(
    {
        "numpy.load", "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile", "numpy.fromregex", "numpy.memmap",
        "numpy.save", "numpy.savez", "numpy.savetxt", "numpy.DataSource", "pandas.eval", "pandas.read_pickle",
        "pandas.read_csv", "pandas.read_parquet", "pandas.read_json", "pandas.read_sql",
    }
)  # fmt: skip
# builtins that build plain values; every other builtin (eval, exec, open, __import__, getattr ...) is unsafe
SAFE_BUILTINS = frozenset(
    {
        "int", "float", "complex", "str", "bytes", "bytearray", "bool", "list", "tuple", "dict", "set",
        "frozenset", "slice", "range", "object", "NoneType", "map",
    }
)  # fmt: skip
_INERT_ROOTS = ("sklearn", "numpy", "scipy")


@dataclasses.dataclass(frozen=True)
class Trust:
    """The types ``skops.io.load`` gets as ``trusted`` (beyond its defaults), and why each is there.

    Attributes:
        types: every type of the file that skops does not trust by default, all of them trusted.
        known_safe: those mlops-nb trusted by itself (inert scikit-learn/numpy/scipy classes).
        unsafe: those trusted only because ``--allow-unsafe`` named them.
    """

    types: tuple[str, ...]
    known_safe: tuple[str, ...] = ()
    unsafe: tuple[str, ...] = ()


def is_unsafe(type_name: str) -> bool:
    """The type is a callable that can run code, touch files or processes when skops calls it."""
    if type_name in UNSAFE_NAMES:
        return True
    module, _, name = type_name.rpartition(".")
    if module == "builtins":
        return name not in SAFE_BUILTINS
    parts = module.split(".")
    return any(".".join(parts[:i]) in UNSAFE_MODULES for i in range(1, len(parts) + 1))


def is_known_safe(type_name: str) -> bool:
    """The type is a class defined in scikit-learn, a numpy scalar/dtype class or a scipy sparse container.

    Only modules of those three libraries are imported to find out (never a module the file names otherwise).
    """
    module, _, name = type_name.rpartition(".")
    if module.split(".")[0] not in _INERT_ROOTS or is_unsafe(type_name):
        return False
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False
    if not isinstance(obj, type):  # functions (numpy.log ...) are called at predict time: the user decides
        return False
    defined_in = str(getattr(obj, "__module__", ""))
    if defined_in.split(".")[0] == "sklearn":  # estimators and their fitted state (Tree, TreePredictor ...)
        return not is_unsafe(f"{defined_in}.{obj.__name__}")
    import numpy as np
    import scipy.sparse

    return issubclass(obj, (np.generic, np.dtype, scipy.sparse.spmatrix, scipy.sparse.sparray))


def untrusted_types(path: Path) -> list[str]:
    """The types of the skops file at ``path`` that skops does not trust by default (read, not loaded)."""
    import skops.io

    return sorted(skops.io.get_untrusted_types(file=str(path)))


def decide(
    untrusted: Sequence[str],
    trust: Sequence[str] = (),
    allow_unsafe: Sequence[str] = (),
    declared: Sequence[str] = (),
) -> Trust:
    """The trust for a file whose untrusted types are ``untrusted``.

    Args:
        untrusted: the file's types that skops does not trust by default.
        trust: ``--trust`` types (the person exporting vouches for them).
        allow_unsafe: ``--allow-unsafe`` types (may run code: named one by one).
        declared: the model's own ``skops_trusted_types``, only to say in the error that they were ignored.

    Raises:
        ExportError: a type that can run code without ``--allow-unsafe``, or another type nobody trusted;
            the message lists them and the exact flags to pass.
    """
    unsafe = [t for t in untrusted if is_unsafe(t)]
    refused_unsafe = [t for t in unsafe if t not in allow_unsafe]
    if refused_unsafe:
        flags = " ".join(f"--allow-unsafe {t}" for t in refused_unsafe)
        raise ExportError(
            f"The model file names types that can run code, touch files or start processes when skops loads it: "
            f"{', '.join(refused_unsafe)}. The export refuses it, even with --trust: a scikit-learn model never "
            f"needs them, and loading such a file may run a command of whoever wrote it. Log the model again from "
            f"code you trust. Only if you know why it holds them: {flags}."
        )
    known = [t for t in untrusted if t not in unsafe and is_known_safe(t)]
    refused = [t for t in untrusted if t not in unsafe and t not in known and t not in trust]
    if refused:
        flags = " ".join(f"--trust {t}" for t in refused)
        ignored = (
            f" (The model's MLmodel lists skops_trusted_types {', '.join(declared)}: trust is not taken from the "
            "model's own files.)"
            if declared
            else ""
        )
        raise ExportError(
            f"The model file holds types that neither skops nor mlops-nb trusts: {', '.join(refused)}. Check "
            f"what they are, then pass {flags}.{ignored}"
        )
    return Trust(tuple(untrusted), tuple(known), tuple(unsafe))
