"""``run_job``: check the inputs, execute the notebook with the ``mlops_nb`` engine, return what happened."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_nb.exceptions import UsageError
from mlops_nb.jobs import parameters as params_mod
from mlops_nb.jobs.job import OPTIONS_KWARG, JobOptions, JobResult
from mlops_nb.tracking import tags
from mlops_nb.tracking.recorder import get_recorder

if TYPE_CHECKING:
    from mlops_nb.pipelines.select import Selection


def default_output(notebook: Path) -> Path:
    """``train.ipynb`` -> ``train.out.ipynb`` beside it (papermill needs an output; git-ignore ``*.out.ipynb``)."""
    return notebook.with_name(f"{notebook.stem}.out.ipynb")


def output_path(notebook: Path, output: Path | None) -> Path:
    """Where the executed notebook goes: ``output``, inside it when it is a folder, else the default; never
    over the input notebook (papermill would overwrite it)."""
    if output is None:
        output = default_output(notebook)
    elif output.is_dir():
        output = output / default_output(notebook).name
    if output.resolve() == notebook.resolve():
        raise UsageError(
            f"--output {output} is the notebook itself: the executed copy would overwrite it. Give another path "
            f"(default: {default_output(notebook).name})."
        )
    return output


def load_notebook(notebook: Path) -> dict[str, Any]:
    """The notebook's JSON, checked against the notebook format, or a UsageError naming the problem (missing,
    not a notebook, damaged) and the cell it is in.

    Papermill, nbclient and the parameters cell read the notebook before any validation of theirs would
    speak (and papermill's only warns): a cell given as text or without ``metadata`` ends in a traceback deep
    inside them. nbformat's validator runs here first (loaded the fast way, see ``mlops_nb.jobs.schema``).
    """
    import json

    if not notebook.is_file():
        raise UsageError(f"Notebook {notebook} does not exist. Check the path (relative to {Path.cwd()}).")
    if notebook.suffix != ".ipynb":
        raise UsageError(f"{notebook} is not a notebook (.ipynb). mlops-nb runs Jupyter notebooks.")
    try:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"Cannot read {notebook} as a notebook: {e}. Open it in Jupyter to repair it.") from e
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or nb.get("nbformat") != 4:
        raise UsageError(
            f"{notebook} is not a version 4 Jupyter notebook (no 'cells' list or another 'nbformat'). "
            "Open and save it in JupyterLab to convert it."
        )
    _validate(notebook, nb)
    return nb


def _validate(notebook: Path, nb: dict[str, Any]) -> None:
    """UsageError naming the first place where ``nb`` breaks the notebook format (cells counted from 1)."""
    import copy

    from mlops_nb.jobs.schema import validator

    for index, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict):  # nbformat's validator itself raises TypeError on these
            raise UsageError(
                f"{notebook} is not a valid notebook: cell {index + 1} is a {type(cell).__name__}, not a cell "
                "object. Open and save it in JupyterLab to repair it."
            )
    # Cell ids are optional before nbformat 4.5 and repaired by papermill (as nbformat does): not an error here.
    checked = copy.copy(nb)
    checked["cells"] = [{"id": f"cell-{i}", **c} if "id" not in c else c for i, c in enumerate(nb["cells"])]
    if not isinstance(nb.get("nbformat_minor"), int) or nb["nbformat_minor"] < 5:
        checked["cells"] = [{k: v for k, v in c.items() if k != "id"} for c in checked["cells"]]
    try:
        validator.validate(checked)
    except validator.ValidationError as e:
        path = list(e.absolute_path)
        if len(path) >= 2 and path[0] == "cells":
            where = f"cell {path[1] + 1}" + "".join(f"[{p!r}]" for p in path[2:])
        else:
            where = ".".join(str(p) for p in path) or "the notebook"
        message = e.message if len(e.message) < 200 else e.message[:200] + "..."
        raise UsageError(
            f"{notebook} is not a valid notebook: {where}: {message}. Open and save it in JupyterLab to repair it, "
            "or fix that part of the JSON."
        ) from None


def check_kernel(name: str) -> str:
    """The language of the installed kernel ``name``; UsageError listing the installed kernels when it is not
    one of them."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        return str(manager.get_kernel_spec(name).language or "python")
    except NoSuchKernel:
        known = ", ".join(sorted(manager.find_kernel_specs())) or "none"
        raise UsageError(
            f"No Jupyter kernel named {name!r} is installed (installed: {known}). Pass --kernel NAME, or install "
            f"it (python -m ipykernel install --user --name {name})."
        ) from None


def kernel_of(nb: dict[str, Any], kernel: str | None) -> tuple[str, str | None]:
    """The kernel to run ``nb`` with (``kernel``, else the notebook's own, else python3), and the language to
    inject its parameters in when the notebook does not say (papermill needs one)."""
    metadata = nb.get("metadata", {})
    name = kernel or metadata.get("kernelspec", {}).get("name") or "python3"
    language = check_kernel(name)
    declared = metadata.get("kernelspec", {}).get("language") or metadata.get("language_info", {}).get("name")
    return name, None if declared and not kernel else language


def select_stages(
    notebook: Path, *, stage: str | None, until: str | None, no_upstream: bool = False, cache: bool = True
) -> Selection:
    """The cells a run of one stage (``stage``) or of the stages up to one (``until``) runs
    (pipelines/select.py). UsageError, before anything runs: both or neither given, ``no_upstream`` without the
    cache, a notebook without stages, an unknown stage, a pre-flight problem of a stage that would run."""
    from mlops_nb.pipelines.graph import build_graph
    from mlops_nb.pipelines.select import select

    if (stage is None) == (until is None):
        raise UsageError("Give one of --stage NAME (one stage) and --until NAME (the stages up to it).")
    if no_upstream and not cache:
        raise UsageError("--no-upstream restores the upstream stages from the cache: drop --no-cache.")
    nb = load_notebook(notebook)
    graph = build_graph(notebook, nb)
    code_cells = [i for i, c in enumerate(nb["cells"]) if c.get("cell_type") == "code"]
    return select(graph, code_cells, stage=stage or until or "", until=until is not None, no_upstream=no_upstream)


def _restrict(nb: dict[str, Any], selection: Selection, options: JobOptions) -> None:
    """Have the job skip the cells ``selection`` leaves out and serve its ``cache_only`` stages from the cache."""
    kept = [i for i, c in enumerate(nb["cells"]) if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    skip = set(selection.skip)
    options.skip_cells = tuple(position for position, index in enumerate(kept) if index in skip)
    options.cache_only = selection.cache_only
    options.tags = {**options.tags, (tags.JOB_UNTIL if selection.until else tags.JOB_STAGE): selection.target}


def run_job(
    notebook: Path,
    *,
    output: Path | None = None,
    parameters: dict[str, Any] | None = None,
    options: JobOptions | None = None,
    kernel: str | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    start_timeout: float = 60,
    allow_new: bool = False,
    progress_bar: bool = False,
    log_output: bool = False,
    selection: Selection | None = None,
) -> JobResult:
    """Execute ``notebook`` as one tracked job.

    Args:
        notebook: the .ipynb to run (it is recorded as the job's input notebook).
        output: where the executed notebook goes (default ``<stem>.out.ipynb`` beside the input).
        parameters: injected into the notebook after its ``parameters`` cell, as papermill does.
        options: experiment, run name, parent run, tags, requirements, cache.
        kernel: kernel name (default: the notebook's own).
        cwd: working directory of the kernel (default: the current one).
        timeout: seconds any one cell may run (papermill's execution timeout); None waits.
        start_timeout: seconds to wait for the kernel to start.
        allow_new: inject parameters the notebook's ``parameters`` cell does not set.
        selection: run only these cells (``select_stages``: ``--stage``/``--until``); the job records as a run of
            the whole notebook does, with the stages that ran or were restored.

    Raises:
        UsageError: a missing or damaged notebook, unknown parameters, an unknown kernel, a bad cwd; nothing
            was run or recorded.
    """
    from mlops_nb.jobs.preload import papermill  # loaded the fast way

    parameters = params_mod.check_values(parameters or {})
    options = options or JobOptions()
    nb = load_notebook(notebook)
    params_mod.check_names(str(notebook), nb, parameters, allow_new)
    parameters = params_mod.like_defaults(nb, parameters)
    if selection is not None:
        _restrict(nb, selection, options)
    kernel_name, language = kernel_of(nb, kernel)
    if cwd is not None and not cwd.is_dir():
        raise UsageError(f"--cwd {cwd} is not a folder.")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"The timeout must be a positive number of seconds, got {timeout:g}.")
    output = output_path(notebook, output)
    output.parent.mkdir(parents=True, exist_ok=True)
    get_recorder()  # settings are resolved here, before papermill moves into cwd
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters,
            engine_name="mlops_nb",
            kernel_name=kernel_name,
            language=language,
            cwd=str(cwd) if cwd else None,
            execution_timeout=timeout,
            start_timeout=start_timeout,
            progress_bar=progress_bar,
            log_output=log_output,
            **{OPTIONS_KWARG: options},
        )
    except papermill.PapermillExecutionError:
        pass  # recorded in the result
    except Exception:
        if options.result is None:  # failed before the job started
            raise
    assert options.result is not None
    return options.result
