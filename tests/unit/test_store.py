"""Where cache entries are kept: a shared folder (file://) read through each machine's own local cache, its
settings, and local writers of one key racing each other."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlops_nb.config import load_settings
from mlops_nb.exceptions import ConfigError
from mlops_nb.stages.cache import Cache, CacheMiss
from mlops_nb.stages.store import check_shared

KEY = "d" * 64


def test_a_shared_folder_serves_another_machine_through_its_own_local_copy(tmp_path: Path) -> None:
    shared = tmp_path / "nfs" / "team"
    shared.mkdir(parents=True)
    url = f"file://{shared}"
    mine = Cache(tmp_path / "mine", 10**9, url)
    mine.store(KEY, {"x": np.arange(10), "o": {"a": 1}}, {"x": "fp", "o": "fp"}, {"stage": "s"})
    (manifest,) = shared.glob("v2/dd/*/manifest.json")
    blob = json.loads(manifest.read_text())["blob"]
    assert sorted(p.name for p in (manifest.parent / blob).iterdir()) == ["objects.pkl", "x.npy"]

    theirs = Cache(tmp_path / "theirs", 10**9, url)
    entry = theirs.lookup(KEY)
    assert entry.shared and entry.folder == tmp_path / "theirs" / "v2" / "dd" / KEY
    assert theirs.restore(entry).values["o"] == {"a": 1}
    assert not theirs.lookup(KEY).shared  # the next hit is the local copy

    # A corrupt shared file: a miss naming it and the shared cache, the shared entry dropped, never a value.
    (manifest.parent / blob / "x.npy").write_bytes(b"not an array")
    third = Cache(tmp_path / "third", 10**9, url)
    with pytest.raises(CacheMiss, match=r"shared cache file://.*x\.npy does not match its recorded SHA-256"):
        third.restore(third.lookup(KEY))
    assert third.lookup(KEY) is None and not manifest.exists()


def test_a_shared_cache_that_cannot_be_reached_is_a_miss_in_a_kernel_and_an_error_for_a_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"file://{tmp_path / 'not-mounted'}"
    monkeypatch.setenv("MLOPS_NB_CACHE_URI", url)
    with pytest.raises(ConfigError, match="not-mounted does not exist") as e:
        check_shared(load_settings(tmp_path))
    assert e.value.setting == "cache_uri" and e.value.source == "environment variable MLOPS_NB_CACHE_URI"
    monkeypatch.setenv("MLOPS_NB_CACHE", "off")
    check_shared(load_settings(tmp_path))  # the cache is off: nothing to reach


def test_the_shared_cache_is_set_in_pyproject_or_the_environment(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.mlops_nb]\ncache = "s3://team-bucket/stages"\n')
    settings = load_settings(tmp_path, env={})
    assert settings.cache is True and settings.cache_uri == "s3://team-bucket/stages"
    env = {"MLOPS_NB_CACHE_URI": "gs://other/prefix", "MLOPS_NB_CACHE": "off"}
    settings = load_settings(tmp_path, env=env)
    assert settings.cache_uri == "gs://other/prefix" and settings.cache is False
    with pytest.raises(ConfigError, match=r"'cache_uri' from environment variable MLOPS_NB_CACHE_URI.*CACHE_DIR"):
        load_settings(tmp_path, env={"MLOPS_NB_CACHE_URI": "/mnt/shared/cache"})
    (tmp_path / "pyproject.toml").write_text('[tool.mlops_nb]\ncache = "sometimes"\n')
    with pytest.raises(ConfigError, match=r"'cache' from \[tool.mlops_nb\].*or an fsspec URL"):
        load_settings(tmp_path, env={})


WRITER = """
import sys
import numpy as np
from pathlib import Path
from mlops_nb.stages.cache import Cache

folder, value = Path(sys.argv[1]), int(sys.argv[2])
for _ in range(40):
    Cache(folder, 10**9).store("e" * 64, {"x": np.full(100_000, value), "v": value}, {"x": "fp", "v": "fp"}, {})
"""


def test_local_writers_of_one_key_leave_a_whole_entry_and_readers_never_see_a_mix(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    writers = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), str(folder), str(n)], stderr=subprocess.PIPE)
        for n in (1, 2)
    ]
    reads = 0
    while any(w.poll() is None for w in writers):
        cache = Cache(folder, 10**9)
        try:
            entry = cache.lookup("e" * 64)
            values = cache.restore(entry).values if entry is not None else None
        except CacheMiss:
            continue
        if values is not None:
            assert (values["x"] == values["v"]).all(), "an entry mixes two writers' files"
            reads += 1
    assert [w.wait() for w in writers] == [0, 0], [w.stderr.read()[-2000:] for w in writers]
    cache = Cache(folder, 10**9)
    values = cache.restore(cache.lookup("e" * 64)).values
    assert (values["x"] == values["v"]).all()
    assert [p.name for p in (folder / "v2").iterdir()] == ["ee"]  # nothing left behind
    assert reads, "the reader never saw an entry"


def test_a_hostile_shared_manifest_reaches_nothing_outside_its_entry(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    url = f"file://{shared}"
    Cache(tmp_path / "mine", 10**9, url).store(KEY, {"x": np.arange(3)}, {"x": "fp"}, {})
    (path,) = shared.glob("v2/dd/*/manifest.json")
    good = json.loads(path.read_text())
    for hostile in (
        {**good, "blob": "../../.."},
        {**good, "outputs": {"x": {**good["outputs"]["x"], "file": "../../../../escaped.npy"}}},
    ):
        path.write_text(json.dumps(hostile))
        with pytest.raises(CacheMiss, match="points outside the entry"):
            Cache(tmp_path / "theirs", 10**9, url).lookup(KEY)
    assert not list(tmp_path.rglob("escaped.npy")) and shared.is_dir()
