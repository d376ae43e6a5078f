"""A tracking server that cannot be reached, seen from a real JupyterLab process with mlops-nb's server
extension: the sidebar's reads answer 503 with the cause in seconds, everything else stays responsive, and
SIGTERM still stops the server."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.lab import Lab, running_lab

pytestmark = pytest.mark.slow

STORE_ROUTES = [
    "runs",
    "runs?max_results=5",
    "runs/0123456789abcdef",
    "notebook?path=nb.ipynb",
    "notebook?path=sub/other.ipynb",
    "diff?a=x&b=y",
    "models",
    "models/churn",
]


def fetch(lab: Lab, path: str, timeout: float) -> tuple[int, Any]:
    """(status, JSON) of a GET; a client-side timeout raises (the bound the test holds the server to)."""
    request = urllib.request.Request(f"{lab.url}/{path}", headers={"Authorization": f"token {lab.token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_an_unreachable_store_answers_503_with_the_cause_and_the_server_stays_responsive_and_stops(
    project: Path, tmp_path: Path
) -> None:
    port = free_port()  # a closed port: nothing listens there
    (project / "pyproject.toml").write_text(f'[tool.mlops_nb]\ntracking_uri = "http://127.0.0.1:{port}"\n')
    with running_lab(project, tmp_path / "lab-home") as lab, ThreadPoolExecutor(len(STORE_ROUTES) + 1) as pool:
        reads = [pool.submit(fetch, lab, f"mlops-nb/api/{route}", 120) for route in STORE_ROUTES]
        # While every read waits on the store: Jupyter's own routes and the ones that need no store answer.
        for path in ("api/status", "api/contents", "mlops-nb/api/status", "mlops-nb/api/jobs/no-such-job"):
            code, body = fetch(lab, path, 10)
            assert code in (200, 404) and (code == 200 or body["error"] == "not_found"), (path, body)
        assert not all(read.done() for read in reads), "the store's reads answered before the other routes"
        for route, read in zip(STORE_ROUTES, reads, strict=True):
            code, body = read.result()  # within 120 s (MLflow alone: 7 retries, about 4 minutes each)
            assert code == 503 and body["error"] == "store_unavailable", (route, body)
            assert f"http://127.0.0.1:{port}" in body["message"], (route, body)
            assert "connection refused" in body["message"], (route, body)

        # Known to be down: the next reads answer at once, with the cause and for how long.
        code, body = fetch(lab, "mlops-nb/api/runs", 10)
        assert code == 503 and "connection refused" in body["message"] and "tries it again every" in body["message"]

        # After the cool-down one read tries again and waits in MLflow's retries: SIGTERM stops the server anyway.
        time.sleep(6)
        trying = pool.submit(fetch, lab, "mlops-nb/api/models", 120)
        time.sleep(1)
        assert not trying.done()
        lab.process.send_signal(signal.SIGTERM)
        assert lab.process.wait(timeout=60) is not None
