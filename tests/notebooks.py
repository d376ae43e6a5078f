"""Small notebooks for job tests, written with nbformat as Jupyter writes them."""

from __future__ import annotations

from pathlib import Path

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def write_notebook(path: Path, *cells: str, parameters: str | None = None) -> Path:
    """A notebook with an optional ``parameters``-tagged cell first, then ``cells`` as code cells."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    if parameters is not None:
        nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb.cells.extend(nbformat.v4.new_code_cell(source) for source in cells)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# A small tracked pipeline: two stages, a metric that depends on the parameters.
PIPELINE = (
    "%load_ext mlops_nb",
    "%%track load\nimport numpy as np\ndata = np.arange(n) * scale",
    "%%track score\nimport mlops_nb as mnb\ntotal = float(data.sum())\nmnb.log_metric('total', total)\n"
    "mnb.log_metric('accuracy', 0.5 + scale / 10)",
)
PIPELINE_PARAMETERS = "n = 10\nscale = 1.0\nlabel = 'a'"


def mlops_nb(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300):
    """Run the real ``mlops-nb`` command (the console script of this environment) in ``cwd``."""
    import os
    import subprocess
    import sys

    from tests.conftest import SETTING_VARS

    full_env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    full_env.update(env or {})
    return subprocess.run(
        [str(Path(sys.executable).parent / "mlops-nb"), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def runs(project: Path, experiment: str) -> list:
    """Every run of ``experiment`` in the project's embedded store."""
    from tests.conftest import embedded_client

    client = embedded_client(project)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=1000)


# A stage that says it started (a file named after the parameter k holding the kernel's pid), then waits.
WAITING = (
    "%load_ext mlops_nb",
    "%%track wait\nimport os, time, pathlib\nimport mlops_nb as mnb\nmnb.log_metric('started', k)\n"
    "pathlib.Path(f'started-{k}').write_text(str(os.getpid()))\ntime.sleep(120)\ndone = k",
)


def start_mlops_nb(*args: str, cwd: Path):
    """Start the real ``mlops-nb`` command in its own session (a terminal's process group); stderr in a file."""
    import os
    import subprocess
    import sys

    from tests.conftest import SETTING_VARS

    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "mlops-nb"), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=(cwd / "stderr.txt").open("w"),
        text=True,
        start_new_session=True,
    )


def wait_for(paths: list[Path], proc, timeout: float = 120) -> list[int]:
    """The pids written into ``paths`` once they all exist (the process must not end meanwhile)."""
    import time

    deadline = time.monotonic() + timeout
    while not all(p.is_file() and p.read_text() for p in paths):
        assert proc.poll() is None, "the command ended before its jobs started"
        assert time.monotonic() < deadline, "the jobs did not start"
        time.sleep(0.1)
    return [int(p.read_text()) for p in paths]


def gone(pid: int) -> bool:
    """True when process ``pid`` has exited (an unreaped zombie counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")
