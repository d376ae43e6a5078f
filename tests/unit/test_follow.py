"""tracking/follow.py: stage events from journals written by the real Journal, read incrementally."""

from __future__ import annotations

import json
from pathlib import Path

from mlops_nb.tracking import reading
from mlops_nb.tracking.follow import Follower
from mlops_nb.tracking.journal import Journal


def _stage(journal: Journal, key: str, name: str, notebook: str, parent: str = "nb") -> None:
    tags = {
        "mlops_nb.kind": "stage",
        "mlops_nb.stage": name,
        "mlops_nb.cache_hit": "false",
        "mlops_nb.notebook": notebook,
    }
    journal.append({"op": "start", "run": key, "exp": "e", "name": name, "parent": parent, "tags": tags, "t": 1000})


def test_starts_and_ends_are_reported_once_each_with_what_the_stage_recorded(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "sub").mkdir(parents=True)
    folder = root / ".mlops_nb" / "journal"
    journal = Journal(folder, "sqlite:///x.db")
    journal.append({"op": "start", "run": "nb", "exp": "e", "name": "nb", "parent": None, "tags": {}, "t": 900})
    _stage(journal, "s0", "before", str(root / "sub" / "a.ipynb"))
    follower = Follower(folder, root)
    assert follower.poll() == []  # what was there before anyone followed is not news

    _stage(journal, "s1", "train", str(root / "sub" / "a.ipynb"))
    events = follower.poll()
    assert [(e["stage"], e["status"], e["notebook"], e["run_id"]) for e in events] == [
        ("train", "RUNNING", "sub/a.ipynb", None)
    ]
    journal.note({"op": "created", "run": "s1", "run_id": "abc123"})
    journal.append({"op": "metric", "run": "s1", "k": "accuracy", "v": 0.5, "step": 0, "t": 1100, "rollup": "nb"})
    journal.append({"op": "metric", "run": "s1", "k": "accuracy", "v": 0.75, "step": 1, "t": 1200, "rollup": "nb"})
    journal.append({"op": "metric", "run": "s1", "k": "loss", "v": float("nan"), "step": 0, "t": 1200, "rollup": None})
    journal.append({"op": "tag", "run": "s1", "k": "mlops_nb.duration_s", "v": "1.250"})
    assert follower.poll() == []  # nothing to report until it ends
    journal.append({"op": "end", "run": "s1", "status": "FAILED", "t": 2500})
    journal.append({"op": "end", "run": "nb", "status": "FINISHED", "t": 2600})  # not a stage: no event
    [end] = follower.poll()
    assert end == {
        "notebook": "sub/a.ipynb",
        "stage": "train",
        "status": "FAILED",
        "cache_hit": False,
        "duration_s": 1.25,
        "run_id": "abc123",
        "run_key": "s1",
        "parent_key": "nb",
        "metrics": {"accuracy": 0.75},  # NaN has no JSON: left out
        "time": 2500,
    }
    json.dumps(end, allow_nan=False)
    journal.close(remove=False)


def test_a_cache_hit_a_torn_line_a_notebook_outside_the_root_and_a_deleted_journal(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    folder = root / ".mlops_nb" / "journal"
    follower = Follower(folder, root)
    assert follower.poll() == []  # no folder yet
    journal = Journal(folder, "sqlite:///x.db")
    _stage(journal, "s1", "load", str(tmp_path / "elsewhere.ipynb"))
    journal.append({"op": "tag", "run": "s1", "k": "mlops_nb.cache_hit", "v": "true"})
    with journal.path.open("ab") as f:  # half a line: its writer has not finished the write
        f.write(b'{"op":"end","run":"s1",')
    [start] = follower.poll()
    assert start["status"] == "RUNNING" and start["notebook"] is None
    with journal.path.open("ab") as f:
        f.write(b'"status":"FINISHED","t":1400,"seq":9}\n')
    journal.close(remove=True)  # its process sent everything and deleted it: the last lines are still read
    [end] = follower.poll()
    assert (end["status"], end["cache_hit"], end["duration_s"]) == ("FINISHED", True, 0.4)
    assert follower.poll() == [] and not follower._tails
    follower.close()


def test_the_read_side_hides_the_promotion_lock_models_the_registry_takes() -> None:
    from mlops_nb.registry.promote import LOCK_SUFFIX

    assert reading.PROMOTION_LOCK_SUFFIX == LOCK_SUFFIX
