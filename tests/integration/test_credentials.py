"""A tracking URI with credentials (``http://user:password@host``): the password appears nowhere mlops-nb
prints or keeps, and `mlops-nb run`'s stdout stays the run id alone (``RUN=$(mlops-nb run nb.ipynb)``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import MlflowServer
from tests.notebooks import PIPELINE, PIPELINE_PARAMETERS, mlops_nb, write_notebook

PASSWORD = "s3cret-Pa55"


def _files_holding(folder: Path, secret: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.slow
def test_a_password_in_the_tracking_uri_is_never_shown_or_kept(project: Path, mlflow_server: MlflowServer) -> None:
    from mlflow import MlflowClient

    uri = mlflow_server.uri.replace("http://", f"http://alice:{PASSWORD}@")  # basic auth, ignored by the server
    env = {"MLFLOW_TRACKING_URI": uri}
    write_notebook(project / "pipe.ipynb", *PIPELINE, parameters=PIPELINE_PARAMETERS)

    done = mlops_nb("run", "pipe.ipynb", "-p", "scale", "2", cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"[0-9a-f]{32}\n", done.stdout), done.stdout  # no "View run ... at" line from MLflow
    run_id = done.stdout.strip()
    assert PASSWORD not in done.stderr
    assert _files_holding(project, PASSWORD) == []  # .mlops_nb/ (journals, cache), the output notebook

    client = MlflowClient(mlflow_server.uri)
    assert client.get_run(run_id).info.status == "FINISHED"
    output = Path(client.download_artifacts(run_id, "notebook/output.ipynb", str(project / "downloaded")))
    banner = "".join("".join(o.get("text", "")) for c in json.loads(output.read_text())["cells"] for o in c["outputs"])
    assert f"tracking to http://alice:***@127.0.0.1:{mlflow_server.port}" in banner
    assert PASSWORD not in output.read_text()
    for run in client.search_runs([client.get_run(run_id).info.experiment_id]):
        assert PASSWORD not in json.dumps({**run.data.tags, **run.data.params})

    # Errors name the store without the password: a run that does not exist, a store that does not answer.
    missing = mlops_nb("reproduce", "0" * 32, cwd=project, env=env)
    assert missing.returncode == 2 and "alice:***@127.0.0.1" in missing.stderr, missing.stderr
    assert PASSWORD not in missing.stderr + missing.stdout
    down = {
        "MLFLOW_TRACKING_URI": f"http://alice:{PASSWORD}@127.0.0.1:9/?token={PASSWORD}",
        "MLOPS_NB_FLUSH_TIMEOUT": "2",
    }
    unreachable = mlops_nb("run", "pipe.ipynb", cwd=project, env=down)
    assert unreachable.returncode == 5, unreachable.stderr
    assert "alice:***@127.0.0.1:9/?token=***" in unreachable.stderr
    assert PASSWORD not in unreachable.stderr + unreachable.stdout
    assert list((project / ".mlops_nb" / "journal").glob("*.jsonl"))  # the records wait in the journal...
    assert _files_holding(project, PASSWORD) == []  # ...which names the store without the password
