"""Fuzzing the generated server from its own OpenAPI document (schemathesis): no 5xx, and alive after."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.integration.test_export import Server, child_env, export, train


@pytest.mark.extended
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["frame", "array"])
def test_fuzzing_from_the_openapi_schema_finds_no_server_error(project: Path, kind: str) -> None:
    schemathesis = shutil.which("schemathesis") or shutil.which("st")
    if schemathesis is None:
        pytest.skip("schemathesis is not installed (pip install schemathesis)")
    train(project, kind)
    assert export("models:/demo@champion", "--out", "pkg").exit_code == 0
    with Server([sys.executable, "-m", "app", "--port", "{port}"], project / "pkg", "/ready") as server:
        with urllib.request.urlopen(server.url + "/openapi.json") as r:
            spec = json.loads(r.read())
        assert "InvocationsRequest" in spec["components"]["schemas"]
        out = subprocess.run(
            [
                schemathesis,
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--mode",
                "all",
                "--max-examples",
                "150",
                "--seed",
                "1",
                "--request-timeout",
                "10",
            ],
            cwd=project,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert out.returncode == 0, out.stdout[-6000:]
        assert server.proc.poll() is None
        with urllib.request.urlopen(server.url + "/health") as r:
            assert r.status == 200
        # the server answered every fuzzed request with a status it chose: none was a 5xx
        with urllib.request.urlopen(server.url + "/metrics") as r:
            metrics = r.read().decode()
        assert 'status="5' not in metrics, [line for line in metrics.splitlines() if 'status="5' in line]
        assert "Traceback" not in server.output()
