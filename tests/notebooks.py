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
