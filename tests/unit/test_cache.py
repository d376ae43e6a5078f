from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_nb.stages.cache import Cache, CacheMiss


def test_outputs_round_trip_in_fitting_formats(tmp_path: Path) -> None:
    cache = Cache(tmp_path, max_bytes=10**9)
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": pd.Categorical(["p", "q", "p"])})
    values = {"frame": frame, "array": np.arange(6.0).reshape(2, 3), "obj": {"k": [1, 2]}, "series": frame["a"]}
    entry = cache.store("k" * 64, values, dict.fromkeys(values, "fp"), {"stage": "s"})
    formats = {name: meta["format"] for name, meta in entry.manifest["outputs"].items()}
    assert formats == {"frame": "parquet", "array": "npy", "obj": "object", "series": "object"}
    restored = cache.restore(cache.lookup("k" * 64)).values
    pd.testing.assert_frame_equal(restored["frame"], frame)
    np.testing.assert_array_equal(restored["array"], values["array"])
    assert restored["obj"] == {"k": [1, 2]}
    pd.testing.assert_series_equal(restored["series"], frame["a"])


def test_a_corrupt_or_missing_file_is_a_miss_and_the_entry_is_dropped(tmp_path: Path) -> None:
    cache = Cache(tmp_path, max_bytes=10**9)
    entry = cache.store("a" * 64, {"x": np.arange(100)}, {"x": "fp"}, {})
    path = entry.folder / "x.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CacheMiss, match="SHA-256"):
        cache.restore(cache.lookup("a" * 64))
    assert cache.lookup("a" * 64) is None
    entry = cache.store("b" * 64, {"y": 1}, {"y": "fp"}, {})
    (entry.folder / "objects.pkl").unlink()
    with pytest.raises(CacheMiss):
        cache.restore(cache.lookup("b" * 64))


def test_unsaveable_outputs_leave_nothing_behind(tmp_path: Path) -> None:
    cache = Cache(tmp_path, max_bytes=10**9)
    with pytest.raises(TypeError):
        cache.store("c" * 64, {"gen": (i for i in range(3))}, {"gen": None}, {})
    assert cache.lookup("c" * 64) is None
    assert [p.name for p in cache.root.iterdir()] == []


def test_least_recently_used_entries_are_evicted_beyond_the_bound(tmp_path: Path) -> None:
    blob = np.zeros(100_000, dtype=np.uint8)  # 100 kB per entry
    cache = Cache(tmp_path, max_bytes=250_000)
    for i, key in enumerate(("1" * 64, "2" * 64)):
        cache.store(key, {"b": blob}, {"b": "fp"}, {})
        os.utime(cache.lookup(key).folder / "manifest.json", (time.time() - 100 + i, time.time() - 100 + i))
    cache.restore(cache.lookup("1" * 64))  # used now: the older "2" is the least recently used
    cache.store("3" * 64, {"b": blob}, {"b": "fp"}, {})
    assert cache.lookup("2" * 64) is None
    assert cache.lookup("1" * 64) is not None and cache.lookup("3" * 64) is not None


def test_a_read_only_entry_is_still_a_hit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = Cache(tmp_path, max_bytes=10**9)
    entry = cache.store("d" * 64, {"x": np.arange(5)}, {"x": "fp"}, {})
    for path in entry.folder.iterdir():
        path.chmod(0o444)

    def refuse(*args, **kwargs):  # what a read-only file gives a non-root user (root may write anyway)
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "utime", refuse)
    np.testing.assert_array_equal(cache.restore(cache.lookup("d" * 64)).values["x"], np.arange(5))


def test_files_a_stage_wrote_are_verified_and_written_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("out.csv").write_text("a\n1\n")
    Path("plots").mkdir()
    Path("plots/p.txt").write_text("plot")
    cache = Cache(tmp_path / "cache", max_bytes=10**9)
    cache.store("e" * 64, {}, {}, {}, files={"out.csv": False, "plots": True, "gone.txt": False})
    Path("out.csv").write_text("changed")
    Path("gone.txt").write_text("should be deleted again")
    import shutil

    shutil.rmtree("plots")
    cache.restore(cache.lookup("e" * 64))
    assert Path("out.csv").read_text() == "a\n1\n"
    assert Path("plots/p.txt").read_text() == "plot"
    assert not Path("gone.txt").exists()
    entry = cache.lookup("e" * 64)
    (entry.folder / "files" / "0").write_text("tampered")
    Path("out.csv").write_text("mine")
    with pytest.raises(CacheMiss, match="SHA-256"):
        cache.restore(entry)
    assert Path("out.csv").read_text() == "mine"  # nothing written from a corrupt entry


def test_outputs_keep_their_shared_references_and_inputs_are_bound_by_name(tmp_path: Path) -> None:
    """A pipeline's step *is* the fitted scaler after a restore, and an output holding an input holds the
    namespace's object then, not a copy."""
    cache = Cache(tmp_path, max_bytes=10**9)
    config = {"alpha": 1}  # an input the stage reads and keeps a reference to
    scaler = {"fitted": True}
    pipeline = [scaler, config]
    values = {"scaler": scaler, "pipeline": pipeline, "same": config}
    cache.store("d" * 64, values, dict.fromkeys(values, "fp"), {}, refs={"config": config})
    now = {"alpha": 1}  # a fresh kernel's equal object
    restored = cache.restore(cache.lookup("d" * 64), {"config": now}).values
    assert restored["pipeline"][0] is restored["scaler"]
    assert restored["pipeline"][1] is now and restored["same"] is now
    with pytest.raises(CacheMiss, match="config"):  # an input gone since: never a wrong value
        cache.restore(cache.lookup("d" * 64), {})


def test_mutated_inputs_keep_their_new_state(tmp_path: Path) -> None:
    from mlops_nb.stages import mutation

    cache = Cache(tmp_path, max_bytes=10**9)
    rng = np.random.RandomState(0)
    before = np.random.RandomState(0)
    rng.normal(size=5)  # the stage drew from it
    cache.store("e" * 64, {}, {}, {}, refs={"rng": rng}, states={"rng": mutation.state_of(rng)})
    restored = cache.restore(cache.lookup("e" * 64), {"rng": before})
    kind, state = restored.states["rng"]
    assert mutation.can_put(before, kind, state)
    mutation.put_state(before, kind, state)
    assert before.normal() == rng.normal()


KILLED_WRITER = """
import sys, time
from pathlib import Path
from mlops_nb.stages.cache import Cache

class Slow:
    def __reduce__(self):
        print("writing", flush=True)
        time.sleep(600)

Cache(Path(sys.argv[1]), max_bytes=10**9).store("k" * 64, {"x": b"0" * 1_000_000, "y": Slow()}, {}, {})
"""


def test_a_writer_killed_mid_write_leaves_nothing_that_outlives_the_next_store(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
        (tmp,) = (tmp_path / "v2").glob(".tmp-*")
        assert sum(p.stat().st_size for p in tmp.rglob("*")) >= 1_000_000
        long_ago = time.time() - 3600
        os.utime(tmp, (long_ago, long_ago))
        Cache(tmp_path, max_bytes=10**9).evict()
        assert tmp.is_dir(), "a write in progress was deleted"
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)
    finally:
        writer.kill()
        writer.wait()
    Cache(tmp_path, max_bytes=10**9).store("a" * 64, {"v": 1}, {"v": "fp"}, {})
    assert not tmp.exists()
    assert [p.name for p in (tmp_path / "v2").iterdir()] == ["aa"]
