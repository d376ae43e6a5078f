"""Provenance of a run: where it ran, from which notebook or script, at which commit, in which environment.

Two tiers, so the notebook never waits: ``process_tags()`` (host, user, notebook path, python...) is cheap
and cached, and goes into the journaled start record, so a run replayed after a crash carries the dead
process's provenance; ``Provenance`` adds git state, an environment hash and a pip-freeze artifact,
computed once per process by the sender thread. ``mlflow_context.ProvenanceContext`` offers the same tags to
plain ``mlflow.start_run()`` users through MLflow's ``mlflow.run_context_provider`` entry point.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlops_nb.tracking import tags

NOTEBOOK_ENV = "MLOPS_NB_NOTEBOOK"  # set by mlops-nb's papermill engine for the kernel it starts


def ipython_shell() -> Any:
    """The running IPython shell, if any (IPython is not imported for this). IPython may be half-imported
    (by MLflow, in the sender thread, while a script exits): then there is no shell either."""
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    return get_ipython() if get_ipython is not None else None


def in_kernel() -> bool:
    """True inside a Jupyter kernel (not merely in a process that imported ipykernel)."""
    return getattr(ipython_shell(), "kernel", None) is not None


def notebook_path() -> str | None:
    """The notebook this kernel runs, when the kernel can know it; the one place that decides it.

    In order: ``MLOPS_NB_NOTEBOOK`` (set by mlops-nb's papermill engine), the command line of the process
    that started the kernel (plain ``papermill in.ipynb out.ipynb``, ``jupyter nbconvert --execute nb.ipynb``,
    ``jupyter execute nb.ipynb``; Linux), VS Code's ``__vsc_ipynb_file__``, then the Jupyter server's session
    (``__session__`` / ``JPY_SESSION_NAME``: JupyterLab, Notebook 7). The launcher comes before the session:
    nbconvert started from another notebook's cell or from a console passes that session's
    ``JPY_SESSION_NAME`` on to the kernel it starts. Absolute when the file is found.
    """
    if os.environ.get(NOTEBOOK_ENV):
        return os.environ[NOTEBOOK_ENV]
    if not in_kernel():
        return None  # a script started from a notebook cell inherits JPY_SESSION_NAME: it is not the notebook
    launched = _launcher_notebook()  # a Jupyter server's kernels are started by no launcher: None for them
    if launched is not None:
        return launched
    shell = ipython_shell()
    for name in ("__vsc_ipynb_file__", "__session__"):
        value = shell.user_ns.get(name)
        if isinstance(value, str) and value.endswith(".ipynb"):
            return _absolute(value)
    session = os.environ.get("JPY_SESSION_NAME")
    if session is not None and session.endswith(".ipynb"):  # a Jupyter server's kernel (not a console's)
        return _absolute(session)
    return None


@functools.lru_cache(maxsize=8)
def _absolute(path: str) -> str:
    """A session path made absolute. A Jupyter server gives an absolute path when the client names the file
    (JupyterLab does), else one relative to the server's root, while the kernel starts in the notebook's
    folder: then the file is found by its name here. Cached: the notebook may change directory later."""
    given = Path(path)
    if given.is_absolute():
        return path
    for candidate in (given, Path(given.name)):
        if candidate.is_file():
            return str(candidate.absolute())
    return path


_VALUE_PAIRS = {"-p", "--parameters", "-r", "--parameters_raw"}  # papermill options followed by NAME VALUE
# Programs that start a kernel for the notebooks they are given (``python -m X`` and ``jupyter X`` too).
_LAUNCHERS = {"papermill", "nbconvert", "jupyter-nbconvert", "jupyter-execute", "nbclient"}


def notebooks_in_command(argv: list[str], cwd: Path) -> list[str]:
    """The notebooks a launcher's command line names, absolute (URLs as given): for papermill only its input
    (the second notebook is its output). Empty when ``argv`` is not a known launcher's."""
    names = [Path(arg).name for arg in argv[:3]]
    if not _LAUNCHERS.intersection(names) and not ("jupyter" in names and {"nbconvert", "execute"} & set(argv)):
        return []
    papermill = "papermill" in names
    found: list[str] = []
    skip = 0
    for arg in argv[1:]:
        if skip:
            skip -= 1
        elif papermill and arg in _VALUE_PAIRS:
            skip = 2
        elif arg.endswith(".ipynb") and not arg.startswith("-"):
            found.append(arg if "://" in arg else str(cwd / arg))
    return found[:1] if papermill else found


@functools.lru_cache(maxsize=1)
def _launcher_notebook() -> str | None:
    """The notebook named on the command line of the process that started this kernel, if exactly one fits.

    nbconvert and ``jupyter execute`` start each notebook's kernel in that notebook's folder, which tells
    several notebooks on one command line apart. Linux only (``/proc``); None elsewhere.
    """
    parent = os.getppid()
    try:
        raw = Path(f"/proc/{parent}/cmdline").read_bytes()
        cwd = Path(f"/proc/{parent}/cwd").readlink()
    except OSError:
        return None
    argv = [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]
    found = notebooks_in_command(argv, cwd)
    if len(found) > 1:
        here = Path.cwd()
        found = [nb for nb in found if Path(nb).parent == here]
    if len(found) != 1:
        return None
    return found[0] if "://" in found[0] else os.path.normpath(found[0])


@functools.lru_cache(maxsize=1)
def _static_tags() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    found = {
        tags.HOST: socket.gethostname(),
        tags.USER: user,
        tags.PYTHON: platform.python_version(),
        tags.PID: str(os.getpid()),
        tags.MLFLOW_USER: user,
    }
    if in_kernel():
        ipykernel = sys.modules["ipykernel"]
        found[tags.KERNEL] = f"{sys.executable} (ipykernel {getattr(ipykernel, '__version__', '?')})"
    return found


def process_tags() -> dict[str, str]:
    """Cheap provenance tags of this process (microseconds after the first call)."""
    found = dict(_static_tags())
    found[tags.PID] = str(os.getpid())  # not cached: a forked child is another process
    nb = notebook_path()
    if nb:
        found.update({tags.NOTEBOOK: nb, tags.MLFLOW_SOURCE_NAME: nb, tags.MLFLOW_SOURCE_TYPE: "NOTEBOOK"})
    elif sys.argv and sys.argv[0]:
        found.update({tags.MLFLOW_SOURCE_NAME: sys.argv[0], tags.MLFLOW_SOURCE_TYPE: "LOCAL"})
    return found


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, check=True, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_tags() -> dict[str, str]:
    """Commit, dirty flag and branch of the git checkout around the working directory, if any."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return {}
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    found = {tags.GIT_COMMIT: commit, tags.GIT_DIRTY: str(dirty).lower(), tags.MLFLOW_GIT_COMMIT: commit}
    branch = _git("rev-parse", "--abbrev-ref", "HEAD")
    if branch and branch != "HEAD":
        found[tags.MLFLOW_GIT_BRANCH] = branch
    return found


@functools.lru_cache(maxsize=1)
def frozen_requirements() -> str:
    """``name==version`` of every installed distribution, sorted: a pip freeze without a subprocess."""
    from importlib import metadata

    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    return "".join(line + "\n" for _, line in sorted(seen.items()))


def environment_tags() -> dict[str, str]:
    """Git state (read now) and the hash of the installed environment (read once per process)."""
    return {**git_tags(), tags.ENV_HASH: hashlib.sha256(frozen_requirements().encode()).hexdigest()[:16]}


class Provenance:
    """Provenance for the sender: per-run tags and, for top-level runs, the pip-freeze artifact."""

    def __init__(self) -> None:
        self._env_tags: dict[str, str] | None = None

    def _environment(self) -> dict[str, str]:
        if self._env_tags is None:
            self._env_tags = environment_tags()
        return self._env_tags

    def tags(self, start: dict[str, Any]) -> dict[str, str]:
        """Tags for a run being created from its start record (a replayed run gets no tags of ours)."""
        return {} if start.get("replay") else self._environment()

    def texts(self, start: dict[str, Any]) -> list[tuple[str, str]]:
        """``(text, artifact_file)`` to attach to a newly created top-level run: the pip freeze, sent as text
        so that no file has to be written (the journal folder may be read-only by then)."""
        if start.get("replay") or start.get("parent"):
            return []
        return [(frozen_requirements(), "environment/requirements.txt")]
