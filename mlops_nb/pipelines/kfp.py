"""A Kubeflow Pipelines v2 pipeline for a notebook's stage graph (``mlops-nb export-pipeline --to kfp``).

One container component per task of the plan (tasks.py), in an image that holds the project and mlops-nb
(``--image``), running ``mlops-nb run NOTEBOOK --stage NAME`` for each of its stages with the notebook's path
relative to the project root (the image's working directory). The pipeline's inputs are the notebook's
parameters of type bool, int, float and str, with their defaults; each reaches the command as its own
argument (``-p NAME VALUE``, strings ``-r NAME VALUE``), never through a shell. KFP's own caching is off for
every task: the stage cache decides what reruns. The stage tasks run after one that opens the pipeline job's
MLflow job run and inside an exit handler that ends it (jobs/pipeline_run.py). Every value from the notebook
and the user enters the file only as a Python literal or identifier (serving/literal.py).

The file compiles itself (``python NAME_pipeline.py`` writes ``NAME_pipeline.yaml``); ``compile_yaml`` runs
that with a Python that has kfp.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from mlops_nb.exceptions import UsageError
from mlops_nb.pipelines.tasks import Plan, safe_id
from mlops_nb.serving.literal import identifier, one_line, python_literal

DEFAULT_IMAGE = "python:3.12-slim"
# A group's task: mlops-nb run NOTEBOOK --stage S for each of its N stages in turn, with the other arguments.
GROUP_SCRIPT = (
    "import subprocess, sys\n"
    "mlops_nb, notebook, n = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
    "for stage in sys.argv[4 : 4 + n]:\n"
    "    code = subprocess.call([mlops_nb, 'run', notebook, '--stage', stage, *sys.argv[4 + n :]])\n"
    "    if code:\n"
    "        sys.exit(code)\n"
)
_TYPES = {bool: "bool", int: "int", float: "float", str: "str"}


def _inputs(plan: Plan) -> dict[str, object]:
    """The parameters a KFP input can carry (a plain Python identifier, a bool/int/float/str default)."""
    found: dict[str, object] = {}
    for name, value in plan.parameters.items():
        try:
            identifier(name)
        except ValueError:
            continue
        if type(value) in _TYPES:
            found[name] = value
    return found


def render(plan: Plan, *, notebook: Path, project_root: Path, command: str, image: str | None) -> tuple[str, str]:
    """The pipeline's name and its Python file's text."""
    try:
        relative = str(notebook.relative_to(project_root))
    except ValueError:
        relative = str(notebook)
    name = safe_id(notebook.stem, set()).lower().replace("_", "-").replace(".", "-").strip("-") or "pipeline"
    inputs = _inputs(plan)
    signature = ", ".join(f"{n}: {_TYPES[type(v)]} = {python_literal(v)}" for n, v in inputs.items())
    args = "".join(f', "{"-r" if isinstance(v, str) else "-p"}", {python_literal(n)}, {n}' for n, v in inputs.items())
    taken: set[str] = set()
    functions = {t.task_id: "task_" + safe_id(t.task_id, taken).replace("-", "_").replace(".", "_") for t in plan.tasks}
    lines = [
        f"# Kubeflow Pipelines v2 pipeline written by mlops-nb export-pipeline from {one_line(notebook)}: a task per",
        "# stage, each running `mlops-nb run NOTEBOOK --stage NAME` in IMAGE. Compile: python THIS_FILE (writes the",
        "# YAML beside it). Export again after changing the notebook's stages; do not edit.",
        "# (No `from __future__ import annotations`: kfp reads the components' annotations as types.)",
        "import sys",
        "from pathlib import Path",
        "",
        "from kfp import compiler, dsl",
        "",
        f"IMAGE = {python_literal(image or DEFAULT_IMAGE)}",
        f"MLOPS_NB = {python_literal(command)}",
        f"NOTEBOOK = {python_literal(relative)}",
        f"GROUP_SCRIPT = {python_literal(GROUP_SCRIPT)}",
        "# Every task records into the pipeline job's one MLflow job run, found by the job's id.",
        'RUN = ["--pipeline-run", dsl.PIPELINE_JOB_ID_PLACEHOLDER]',
        "",
        "",
        "@dsl.container_component",
        f"def pipeline_run_open({signature}):",
        '    """Opens the pipeline job\'s MLflow job run (a retry finds it)."""',
        "    return dsl.ContainerSpec(",
        f'        image=IMAGE, command=[MLOPS_NB], args=["pipeline-run", "open", NOTEBOOK, *RUN{args}]',
        "    )",
        "",
        "",
        "@dsl.container_component",
        "def pipeline_run_close():",
        '    """Ends the job run: FAILED with the reason when a stage failed or did not run."""',
        '    return dsl.ContainerSpec(image=IMAGE, command=[MLOPS_NB], args=["pipeline-run", "close", NOTEBOOK, *RUN])',
        "",
    ]
    for task in plan.tasks:
        if len(task.stages) == 1:
            head = f'command=[MLOPS_NB], args=["run", NOTEBOOK, "--stage", {python_literal(task.stages[0])}'
        else:  # a group: its stages in turn, by a fixed script that takes them as arguments (no shell)
            stages = ", ".join(python_literal(s) for s in task.stages)
            head = f'command=["python", "-c", GROUP_SCRIPT], args=[MLOPS_NB, NOTEBOOK, "{len(task.stages)}", {stages}'
        lines += [
            "",
            "@dsl.container_component",
            f"def {identifier(functions[task.task_id])}({signature}):",
            f"    {python_literal(one_line('Runs stage ' + ', then '.join(task.stages) + '.'))}",
            f"    return dsl.ContainerSpec(image=IMAGE, {head}, *RUN{args}])",
            "",
        ]
    description = python_literal(one_line(f"mlops-nb stages of {notebook.name}"))
    call = ", ".join(f"{n}={n}" for n in inputs)
    lines += [
        "",
        f"@dsl.pipeline(name={python_literal(name)}, description={description})",
        f"def pipeline({signature}):",
        "    closed = pipeline_run_close()  # the exit handler: it runs whatever happened to the tasks",
        "    closed.set_caching_options(False)",
        "    with dsl.ExitHandler(closed):",
        f"        opened = pipeline_run_open({call})",
        "        opened.set_caching_options(False)",
        "        tasks = {}",
    ]
    for task in plan.tasks:
        key = python_literal(task.task_id)
        lines += [
            f"        tasks[{key}] = {functions[task.task_id]}({call})",
            f"        tasks[{key}].set_display_name({key})",
            f"        tasks[{key}].set_caching_options(False)",
        ]
        lines += [f"        tasks[{key}].after(tasks[{python_literal(u)}])" for u in task.upstream]
        if not task.upstream:
            lines.append(f"        tasks[{key}].after(opened)")
    lines += [
        "",
        "",
        'if __name__ == "__main__":',
        '    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_suffix(".yaml")',
        "    compiler.Compiler().compile(pipeline, str(target))",
        "",
    ]
    return name, "\n".join(lines)


def compile_yaml(source: Path, python: str) -> Path:
    """Compile ``source`` with ``python`` (a Python that has kfp) into the YAML beside it."""
    target = source.with_suffix(".yaml")
    try:
        done = subprocess.run([python, str(source), str(target)], capture_output=True, text=True, timeout=300)
    except OSError as exc:
        raise UsageError(
            f"--kfp-python {one_line(python)!r}: cannot run it ({exc}). Give a Python that has kfp."
        ) from exc
    if done.returncode != 0:
        tail = one_line(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
        raise UsageError(
            f"--kfp-python {one_line(python)!r} could not compile {source.name}: {tail}. Give a Python that has "
            "kfp 2 (pip install kfp), or compile it yourself: python " + one_line(source)
        )
    return target
