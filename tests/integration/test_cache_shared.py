"""The stage cache a team shares, on a real S3 API (moto's server process): a teammate's cached stage is a
hit on another machine, a corrupt shared entry is a miss with the reason (never a wrong value), writers of
one key never mix an entry, and a shared cache that cannot be reached stops a command with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SETTING_VARS, embedded_client, free_port
from tests.notebooks import mlops_nb, runs, write_notebook
from tests.s3 import CREDENTIALS, MotoServer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("moto")]

CELLS = (
    "%load_ext mlops_nb",
    "%%track make\nimport numpy as np\nx = np.arange(200_000) * scale",
    "%%track total\nimport mlops_nb as mnb\nmnb.log_metric('total', float(x.sum()))",
)


@pytest.fixture(autouse=True)
def fresh_filesystems() -> None:
    """fsspec keeps one file system per arguments in a process: each test reaches the endpoint it sets."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory):
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


def stage_runs(project: Path, run_id: str) -> dict:
    client = embedded_client(project)
    run = client.get_run(run_id)
    found = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'")
    return {r.data.tags["mlops_nb.stage"]: r for r in found}


def test_a_stage_cached_on_one_machine_is_a_hit_on_another_and_a_corrupt_entry_is_a_miss(
    project: Path, s3: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"s3://{s3.bucket('team-a')}/cache"
    write_notebook(project / "nb.ipynb", *CELLS, parameters="scale = 2")

    def run_on(machine: str) -> tuple[dict, dict]:
        env = {**s3.env, "MLOPS_NB_CACHE_URI": url, "MLOPS_NB_CACHE_DIR": str(project / machine)}
        done = mlops_nb("run", "nb.ipynb", "--json", cwd=project, env=env)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        return {s["name"]: s["cache_hit"] for s in result["stages"]}, stage_runs(project, result["run_id"])

    first, first_runs = run_on("laptop")
    assert first == {"make": False, "total": False}

    # A teammate's machine: its own local cache folder, empty; the same code and inputs.
    second, second_runs = run_on("teammate")
    assert second == {"make": True, "total": True}
    assert second_runs["make"].data.tags["mlops_nb.cache_source_run"] == first_runs["make"].info.run_id
    assert second_runs["total"].data.metrics["total"] == first_runs["total"].data.metrics["total"]
    assert list((project / "teammate" / "v2").glob("*/*/x.npy")), "no read-through copy on the teammate's machine"

    # Someone (or a broken upload) changes the shared copy of x: a third machine runs the stage, says why,
    # and writes a good entry in place of the bad one.
    fs = s3.filesystem()
    key = second_runs["make"].data.tags["mlops_nb.cache_key"]
    entry = f"team-a/cache/v2/{key[:2]}/{key}"
    blob = json.loads(fs.cat_file(f"{entry}/manifest.json"))["blob"]
    fs.pipe_file(f"{entry}/{blob}/x.npy", fs.cat_file(f"{entry}/{blob}/x.npy")[:-8] + b"\x00" * 8)
    third, third_runs = run_on("build-server")
    assert third["make"] is False
    reason = third_runs["make"].data.tags["mlops_nb.cache_miss_reason"]
    assert "shared cache s3://team-a/cache" in reason and "x.npy does not match its recorded SHA-256" in reason
    assert json.loads(fs.cat_file(f"{entry}/manifest.json"))["blob"] != blob
    assert not fs.exists(f"{entry}/{blob}"), "the corrupt write is left behind"
    from mlops_nb.stages.cache import Cache

    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    fresh = Cache(project / "new-hire", 10**9, url)
    assert (fresh.restore(fresh.lookup(key)).values["x"] == np.arange(200_000) * 2).all()


WRITER = """
import sys
import numpy as np
from pathlib import Path
from mlops_nb.stages.cache import Cache

url, folder, value, rounds = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for i in range(rounds):
    Cache(folder / str(i), 10**9, url).store(
        "c" * 64, {"x": np.full(500_000, value), "v": {"value": value}}, {"x": "fp", "v": "fp"}, {}
    )
print("done", flush=True)
"""


def test_two_writers_of_one_key_never_mix_an_entry(project: Path, s3: MotoServer, monkeypatch) -> None:
    from mlops_nb.stages.cache import Cache, CacheMiss

    url = f"s3://{s3.bucket('team-b')}/cache"
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARS}
    env.update(s3.env)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER), url, str(project / f"w{n}"), str(n), "6"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    seen, misses = set(), 0
    try:
        while any(w.poll() is None for w in writers):  # read while they write: whole entries or misses
            reader = Cache(project / f"r{len(seen) + misses}-{time.monotonic_ns()}", 10**9, url)
            try:
                entry = reader.lookup("c" * 64)
                if entry is None:
                    continue
                values = reader.restore(entry).values
            except CacheMiss:
                misses += 1
                continue
            value = values["v"]["value"]
            assert (values["x"] == value).all(), "an entry mixes two writers' files"
            seen.add(value)
    finally:
        outputs = [w.communicate(timeout=120) for w in writers]
    assert all(w.returncode == 0 for w in writers), [err[-2000:] for _, err in outputs]
    final = Cache(project / "final", 10**9, url)
    values = final.restore(final.lookup("c" * 64)).values
    assert (values["x"] == values["v"]["value"]).all()
    assert seen, "the reader never saw an entry"


def test_an_unreachable_shared_cache_stops_the_command_with_exit_2(project: Path) -> None:
    write_notebook(project / "nb.ipynb", *CELLS, parameters="scale = 2")
    env = {
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "MLOPS_NB_CACHE_URI": "s3://ci-user:hunter2@team-c/cache",
    }
    done = mlops_nb("run", "nb.ipynb", cwd=project, env=env)
    assert done.returncode == 2, done.stderr
    assert "Cannot reach the stage cache s3://ci-user:***@team-c/cache" in done.stderr
    assert "environment variable MLOPS_NB_CACHE_URI" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
    assert runs(project, "nb") == []  # nothing ran, nothing was recorded
    # --no-cache needs no cache: the job runs.
    assert mlops_nb("run", "nb.ipynb", "--no-cache", cwd=project, env=env).returncode == 0


def test_a_shared_cache_gone_mid_session_is_a_miss_and_the_stage_is_kept_locally(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_nb.stages.cache import Cache, CacheMiss, NotShared

    for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}.items():
        monkeypatch.setenv(name, value)
    cache = Cache(project / "local", 10**9, "s3://team-d/cache")
    with pytest.raises(CacheMiss, match="shared cache s3://team-d/cache could not be reached"):
        cache.lookup("e" * 64)
    started = time.monotonic()
    with pytest.raises(NotShared, match="kept in the local cache only"):
        cache.store("e" * 64, {"v": 1}, {"v": "fp"}, {})
    assert time.monotonic() - started < 5, "asked the unreachable cache again at once"
    assert cache.restore(cache.lookup("e" * 64)).values == {"v": 1}  # served locally, no shared cache asked
