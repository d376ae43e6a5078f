"""An Airflow DAG file for a notebook's stage graph (``mlops-nb export-pipeline --to airflow``).

One BashOperator task per task of the plan (tasks.py), running ``mlops-nb run NOTEBOOK --stage NAME`` for
each of its stages, in the project root, so every task shares the project's settings, tracking store and
stage cache. Every value from the notebook (its path, stage names, parameter defaults) and from the user
(the schedule, the ``mlops-nb`` command) enters the file only as a Python literal (serving/literal.py), and
the task's command only as shell-quoted text wrapped in Airflow's ``literal`` (never rendered by Jinja). The
DAG run's params reach each command as JSON in an environment variable (``-y "$MLOPS_NB_PIPELINE_PARAMS"``),
never as shell text. A setup task opens the DAG run's one MLflow job run (``mlops-nb pipeline-run open``), each
stage task records its stage into it (``--pipeline-run``), and a teardown task ends it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from mlops_nb.exceptions import UsageError
from mlops_nb.pipelines.finale import Finale
from mlops_nb.pipelines.tasks import Plan, safe_id
from mlops_nb.serving.literal import one_line, python_literal

PARAMS_ENV = "MLOPS_NB_PIPELINE_PARAMS"
RUN_ENV = "MLOPS_NB_PIPELINE_RUN"
PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")


@dataclass(frozen=True)
class Exported:
    """``path``: the file written; ``name``: the DAG's id (or the KFP pipeline's name); ``tasks``: task ids."""

    path: Path
    name: str
    tasks: tuple[str, ...]
    compiled: Path | None = None


def check_schedule(schedule: str | None) -> str | None:
    """``schedule`` when it is a cron line of 5 fields or one of Airflow's presets; UsageError otherwise."""
    if schedule is None:
        return None
    text = schedule.strip()
    fields = text.split()
    if text in PRESETS or (len(fields) == 5 and all(f.isprintable() and f.isascii() for f in fields)):
        return " ".join(fields)
    raise UsageError(
        f"--schedule {one_line(schedule)!r}: give a cron line of 5 fields, e.g. '0 6 * * *' (06:00 UTC every day), "
        f"or one of {', '.join(PRESETS)}."
    )


def render(
    plan: Plan, *, notebook: Path, project_root: Path, command: str, schedule: str | None, finale: Finale | None = None
) -> tuple[str, str]:
    """The DAG's id and its file's text (``finale``: the promote and monitor tasks after the stages)."""
    dag_id = safe_id(notebook.stem, set())
    taken: set[str] = set()  # each stage's executed notebook apart, so tasks running at once do not share one
    runs = {
        t.task_id: [[s, str(notebook.with_name(f"{notebook.stem}.{safe_id(s, taken)}.out.ipynb"))] for s in t.stages]
        for t in plan.tasks
    }
    taken = {t.task_id.lower() for t in plan.tasks}
    first, last = safe_id("pipeline_run_open", taken), safe_id("pipeline_run_close", taken)
    after = [list(step) for step in (finale or Finale()).steps(taken)]
    ends = {t for task in plan.tasks for t in task.upstream}
    suffix, with_params = f' "${RUN_ENV}"', f' -y "${PARAMS_ENV}"'
    lines = [
        f"# Airflow DAG written by mlops-nb export-pipeline from {one_line(notebook)}: a task per stage, each",
        "# running `mlops-nb run NOTEBOOK --stage NAME` in the project root (one settings, store and stage cache),",
        "# between a setup task that opens the DAG run's MLflow job run and a teardown task that ends it.",
        "# Export again after changing the notebook's stages; do not edit.",
        "from __future__ import annotations",
        "",
        "import datetime",
        "import shlex",
        "",
        "from airflow.providers.standard.operators.bash import BashOperator",
        "from airflow.sdk import DAG, literal",
        "",
        f"MLOPS_NB = {python_literal(command)}",
        f"NOTEBOOK = {python_literal(str(notebook))}",
        f"PROJECT_ROOT = {python_literal(str(project_root))}",
        f"PARAMS = {python_literal(plan.parameters)}",
        "# task id -> its stages in turn, each with the path of its executed notebook",
        f"TASKS = {python_literal(runs)}",
        f"UPSTREAM = {python_literal({t.task_id: list(t.upstream) for t in plan.tasks if t.upstream})}",
        f"FIRST, LAST = {python_literal(first)}, {python_literal(last)}",
        f"ROOTS = {python_literal([t.task_id for t in plan.tasks if not t.upstream])}",
        f"LEAVES = {python_literal([t.task_id for t in plan.tasks if t.task_id not in ends])}",
        "# after the stages, in turn: task id, its mlops-nb arguments, whether the job run's id goes last",
        f"FINALE = {python_literal(after)}",
        f"RUN = {python_literal(['--pipeline-run'])}",
        f"SUFFIX = {python_literal(suffix)}",
        f"WITH_PARAMS = {python_literal(suffix + with_params)}",
        "",
        "",
        "def command(stages: list[list[str]]) -> str:",
        '    """A task\'s shell command: its stages in turn, into the DAG run\'s job run, with its params (JSON)."""',
        "    return literal(",
        '        " && ".join(',
        '            shlex.join([MLOPS_NB, "run", NOTEBOOK, "--stage", stage, "-o", output, *RUN]) + WITH_PARAMS',
        "            for stage, output in stages",
        "        )",
        "    )",
        "",
        "",
        "def task(task_id: str, bash_command: str) -> BashOperator:",
        "    return BashOperator(",
        "        task_id=task_id,",
        "        bash_command=bash_command,",
        "        cwd=literal(PROJECT_ROOT),",
        "        env={",
        '            "MLOPS_NB_PROJECT_ROOT": literal(PROJECT_ROOT),',
        f'            {python_literal(PARAMS_ENV)}: "{{{{ params | tojson }}}}",',
        f'            {python_literal(RUN_ENV)}: "{{{{ run_id }}}}",',
        "        },",
        "        append_env=True,",
        "        do_xcom_push=False,",
        "    )",
        "",
        "",
        "with DAG(",
        f"    dag_id={python_literal(dag_id)},",
        f"    schedule={python_literal(schedule)},",
        f"    start_date=datetime.datetime({datetime.datetime.now(datetime.UTC).year}, 1, 1, tzinfo=datetime.UTC),",
        "    catchup=False,",
        "    params=PARAMS,",
        '    tags=["mlops-nb"],',
        f"    description={python_literal(one_line(f'mlops-nb stages of {notebook.name}'))},",
        ") as dag:",
        "    tasks = {task_id: task(task_id, command(stages)) for task_id, stages in TASKS.items()}",
        "    for task_id, before in UPSTREAM.items():",
        "        for upstream in before:",
        "            tasks[upstream] >> tasks[task_id]",
        "    # The DAG run's job run: opened first (a retry finds it), ended last whatever happened in between.",
        '    opening = shlex.join([MLOPS_NB, "pipeline-run", "open", NOTEBOOK, *RUN]) + WITH_PARAMS',
        "    opened = task(FIRST, literal(opening))",
        '    closed = task(LAST, literal(shlex.join([MLOPS_NB, "pipeline-run", "close", NOTEBOOK, *RUN]) + SUFFIX))',
        "    opened >> [tasks[t] for t in ROOTS]",
        "    last = [tasks[t] for t in LEAVES]",
        "    for task_id, args, with_run in FINALE:  # the job run's id: what its (idempotent) opening prints",
        "        text = shlex.join([MLOPS_NB, *args])",
        "        if with_run:",
        '            text = f\'RUN="$({opening})" && {text} "$RUN"\'',
        "        step = task(task_id, literal(text))",
        "        last >> step",
        "        last = [step]",
        "    last >> closed",
        "    closed.as_teardown(setups=opened)",
        "",
    ]
    return dag_id, "\n".join(lines)
