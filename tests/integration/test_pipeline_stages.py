"""``mlops-nb graph`` and ``mlops-nb run --stage/--until``: real kernels, the real CLI, the embedded store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from tests.conftest import embedded_client
from tests.notebooks import KERNELSPEC, mlops_nb, runs, write_notebook

PARAMETERS = "n = 10\nscale = 1.0"
CELLS = (
    "%load_ext mlops_nb",
    "%%track load\nimport numpy as np\ndata = np.arange(n) * scale",
    "%%track double\ndoubled = data * 2",
    "%%track side\nother = data + 1\nprint('side ran')",
    "%%track score\nimport mlops_nb as mnb\ntotal = float(doubled.sum())\nmnb.log_metric('total', total)",
)


def _stages_of(project: Path, run_id: str) -> dict[str, object]:
    return {
        r.data.tags["mlops_nb.stage"]: r
        for r in runs(project, "pipe")
        if r.data.tags.get("mlflow.parentRunId") == run_id
    }


@pytest.mark.slow  # four jobs, each a kernel
def test_one_stage_runs_with_its_upstream_restored_or_run_first(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", *CELLS, parameters=PARAMETERS)

    # Nothing is cached yet: --no-upstream refuses, naming the first upstream stage, and the run says why.
    refused = mlops_nb("run", "pipe.ipynb", "--stage", "score", "--no-upstream", cwd=project)
    assert refused.returncode == 2, refused.stderr
    assert "upstream stage 'load' is not in the cache" in refused.stderr
    client = embedded_client(project)
    job = client.get_run(refused.stdout.strip())
    assert job.info.status == "FAILED"
    assert job.data.tags["mlops_nb.job.outcome"] == "upstream_not_cached"
    assert "UpstreamNotCached" in job.data.tags["mlops_nb.error"]
    assert _stages_of(project, job.info.run_id)["load"].info.status == "FAILED"

    # Without --no-upstream the upstream stages run first; the stage that score does not need is skipped.
    first = mlops_nb("run", "pipe.ipynb", "--stage", "score", cwd=project)
    assert first.returncode == 0, first.stderr
    assert "running stage score; upstream load, double" in first.stderr
    job = client.get_run(first.stdout.strip())
    assert job.info.status == "FINISHED" and job.data.tags["mlops_nb.kind"] == "job"
    assert job.data.tags["mlops_nb.job.stage"] == "score"
    assert job.data.metrics == {"total": 90.0}
    assert job.data.params == {"n": "10", "scale": "1.0"}
    stages = _stages_of(project, job.info.run_id)
    assert set(stages) == {"load", "double", "score"}
    assert all(r.info.status == "FINISHED" for r in stages.values())
    output = json.loads((project / "pipe.out.ipynb").read_text())
    side = next(c for c in output["cells"] if "%%track side" in "".join(c["source"]))
    assert side["outputs"] == [] and "skip-execution" in side["metadata"]["tags"]

    # Now upstream is in the cache: --no-upstream is served from it.
    again = mlops_nb("run", "pipe.ipynb", "--stage", "score", "--no-upstream", cwd=project)
    assert again.returncode == 0, again.stderr
    stages = _stages_of(project, again.stdout.strip())
    assert {n: r.data.tags.get("mlops_nb.cache_hit") for n, r in stages.items()} == {
        "load": "true",
        "double": "true",
        "score": "true",
    }
    assert client.get_run(again.stdout.strip()).data.metrics == {"total": 90.0}  # logged again by the hit

    # Another parameter value is another key: not cached, refused again.
    other = mlops_nb("run", "pipe.ipynb", "--stage", "score", "--no-upstream", "-p", "scale", "2", cwd=project)
    assert other.returncode == 2 and "upstream stage 'load' is not in the cache" in other.stderr


def test_until_runs_the_stages_up_to_one(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", *CELLS, parameters=PARAMETERS)
    done = mlops_nb("run", "pipe.ipynb", "--until", "side", cwd=project)
    assert done.returncode == 0, done.stderr
    job = embedded_client(project).get_run(done.stdout.strip())
    assert job.data.tags["mlops_nb.job.until"] == "side"
    assert set(_stages_of(project, job.info.run_id)) == {"load", "double", "side"}


def test_a_stage_of_mlops_auto_keeps_its_name_when_the_cells_above_are_skipped(project: Path) -> None:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext mlops_nb\n%mlops auto"),
        nbformat.v4.new_markdown_cell("## Data"),
        nbformat.v4.new_code_cell("rows = list(range(5))"),
        nbformat.v4.new_code_cell("extra = len(rows)"),  # data-2, which data-3 does not need
        nbformat.v4.new_code_cell("import mlops_nb as mnb\ntotal = sum(rows)\nmnb.log_metric('total', total)"),
    ]
    nbformat.write(nb, project / "pipe.ipynb")
    graph = json.loads(mlops_nb("graph", "pipe.ipynb", "--json", cwd=project).stdout)
    assert [s["name"] for s in graph["stages"]] == ["data", "data-2", "data-3"]
    done = mlops_nb("run", "pipe.ipynb", "--stage", "data-3", cwd=project)
    assert done.returncode == 0, done.stderr
    assert set(_stages_of(project, done.stdout.strip())) == {"data", "data-3"}


def test_bad_selections_exit_2_naming_the_fix_and_record_nothing(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", *CELLS, parameters=PARAMETERS)
    unknown = mlops_nb("run", "pipe.ipynb", "--stage", "scor", cwd=project)
    assert unknown.returncode == 2 and "has no stage 'scor'. Did you mean score?" in unknown.stderr

    write_notebook(project / "plain.ipynb", "x = 1\nprint(x)")
    plain = mlops_nb("run", "plain.ipynb", "--stage", "train", cwd=project)
    assert plain.returncode == 2 and "has no stages: mark a cell as one with %%track NAME" in plain.stderr

    write_notebook(
        project / "locked.ipynb",
        "%load_ext mlops_nb",
        "%%track open\nimport threading\nlock = threading.Lock()",
        "%%track use\nwith lock:\n    n = 1",
    )
    locked = mlops_nb("run", "locked.ipynb", "--stage", "use", cwd=project)
    assert locked.returncode == 2
    assert "lock is a lock (threading.Lock()), read by use: no cache can keep it" in locked.stderr
    assert "Create it in use, in a setup cell, or merge the two stages" in locked.stderr

    both = mlops_nb("run", "pipe.ipynb", "--stage", "score", "--until", "load", cwd=project)
    assert both.returncode == 2 and "Give one of --stage NAME" in both.stderr
    assert runs(project, "pipe") == [] and runs(project, "locked") == []


def test_a_failing_stage_leaves_its_job_failed_with_the_reason(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", "%load_ext mlops_nb", "%%track load\nx = 1", "%%track boom\ny = x / 0")
    failed = mlops_nb("run", "pipe.ipynb", "--stage", "boom", cwd=project)
    assert failed.returncode == 1
    job = embedded_client(project).get_run(failed.stdout.strip())
    assert job.info.status == "FAILED"
    assert "ZeroDivisionError: division by zero" in job.data.tags["mlops_nb.error"]
    assert _stages_of(project, job.info.run_id)["boom"].info.status == "FAILED"


def test_the_graph_command(project: Path) -> None:
    write_notebook(project / "pipe.ipynb", *CELLS, parameters=PARAMETERS)
    shown = mlops_nb("graph", "pipe.ipynb", cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^score +6 +double: doubled", shown.stdout, re.MULTILINE), shown.stdout
    assert "found no problem" in shown.stdout
    data = json.loads(mlops_nb("graph", "pipe.ipynb", "--json", cwd=project).stdout)
    assert {"from": "load", "to": "side", "names": ["data"]} in data["edges"]
    assert data["parameters"] == {"n": 10, "scale": 1.0}
    dot = mlops_nb("graph", "pipe.ipynb", "--dot", cwd=project).stdout
    assert '"load" -> "double" [label="data"];' in dot

    write_notebook(project / "bad.ipynb", "%%track a\ny = missing")
    bad = mlops_nb("graph", "bad.ipynb", cwd=project)
    assert bad.returncode == 3 and "reads missing, which no stage, parameter or setup cell provides" in bad.stdout
    none = mlops_nb("graph", "nothing.ipynb", cwd=project)
    assert none.returncode == 2 and "does not exist" in none.stderr
