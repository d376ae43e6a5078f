"""``mlops-nb run NOTEBOOK --executor dask``: the stage graph on a real Dask LocalCluster (two worker
processes), the real CLI, real kernels, the embedded store. Two independent branches run at once; the records
are those of a whole-notebook run (one job run, each stage nested once); a failing stage fails the job, naming
it, while the branch that does not depend on it finishes; bad input exits 2 naming the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.notebooks import mlops_nb, runs, write_notebook

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dask-pipeline")]

CELLS = (
    "%load_ext mlops_nb",
    "%%track load\nvalues = list(range(n))",
    "%%track left\nimport time\ntime.sleep(10)\nscaled = [v * rate for v in values]",
    "%%track right\nimport time\ntime.sleep(10)\nsquares = [v * v for v in values]\nassert not fail, 'right broke'",
    "%%track report\nimport mlops_nb as mnb\nmnb.log_metric('total', sum(scaled) + sum(squares))",
)


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def _stages(project: Path, job_id: str) -> dict:
    found = [r for r in runs(project, "branches") if r.data.tags.get("mlflow.parentRunId") == job_id]
    names = [r.data.tags["mlops_nb.stage"] for r in found]
    assert len(names) == len(set(names)), names  # each stage once
    return {r.data.tags["mlops_nb.stage"]: r for r in found}


def test_independent_stages_run_at_once_into_one_job_run(project: Path, scheduler: str) -> None:
    write_notebook(project / "branches.ipynb", *CELLS, parameters="n = 5\nrate = 1.5\nfail = False")
    done = mlops_nb("run", "branches.ipynb", "--executor", "dask", "--scheduler", scheduler,
                    "--experiment", "branches", cwd=project)  # fmt: skip
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    from tests.conftest import embedded_client

    job = embedded_client(project).get_run(job_id)
    assert job.info.status == "FINISHED" and job.data.tags["mlops_nb.kind"] == "job"
    assert job.data.tags["mlops_nb.job.executor"] == "dask"
    assert job.data.tags["mlops_nb.pipeline.run"].startswith("dask-")  # a pipeline run of its own
    assert job.data.params == {"n": "5", "rate": "1.5", "fail": "False"}
    assert job.data.metrics == {"total": 45.0}  # rolled up from the stage
    stages = _stages(project, job_id)
    assert set(stages) == {"load", "left", "right", "report"}
    assert all(r.info.status == "FINISHED" and r.data.tags["mlops_nb.cache_hit"] == "false" for r in stages.values())
    left, right = stages["left"].info, stages["right"].info
    assert left.start_time < right.end_time and right.start_time < left.end_time  # they overlapped
    assert stages["report"].info.start_time >= max(left.end_time, right.end_time)

    # A failing branch fails the job, naming it; the other branch finishes; the join does not run.
    failed = mlops_nb("run", "branches.ipynb", "--executor", "dask", "--scheduler", scheduler,
                      "--experiment", "branches", "-p", "fail", "True", "-p", "rate", "2.0", cwd=project)  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert "stage 'right' failed" in failed.stderr and "right broke" in failed.stderr
    job = embedded_client(project).get_run(failed.stdout.strip())
    assert job.info.status == "FAILED"  # ended as pipeline-run close ends it: each failed or missing stage named
    error = job.data.tags["mlops_nb.error"]
    assert "stage right: FAILED" in error and "right broke" in error and "stage report: did not run" in error
    stages = _stages(project, job.info.run_id)
    assert stages["left"].info.status == "FINISHED" and stages["right"].info.status == "FAILED"
    assert stages["load"].data.tags["mlops_nb.cache_hit"] == "true"
    assert "report" not in stages


def test_bad_input_exits_2_naming_the_fix(project: Path) -> None:
    write_notebook(project / "branches.ipynb", *CELLS, parameters="n = 5\nrate = 1.5\nfail = False")
    unknown = mlops_nb("run", "branches.ipynb", "--executor", "ray", cwd=project)
    assert unknown.returncode == 2 and "'ray' is not one of 'local', 'dask'" in unknown.stderr
    gone = mlops_nb("run", "branches.ipynb", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9", cwd=project)
    assert gone.returncode == 2 and "Cannot reach the Dask scheduler at tcp://127.0.0.1:9" in gone.stderr
    both = mlops_nb("run", "branches.ipynb", "--executor", "dask", "--stage", "left", cwd=project)
    assert both.returncode == 2 and "leave out --stage" in both.stderr
    assert runs(project, "branches") == []  # nothing recorded
