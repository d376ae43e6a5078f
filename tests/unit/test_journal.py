from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_nb.exceptions import JournalError
from mlops_nb.tracking import journal


def test_records_are_in_the_file_before_append_returns(tmp_path: Path) -> None:
    j = journal.Journal(tmp_path / "journal", "sqlite:///x.db")
    seq = j.append({"op": "start", "run": "r1", "exp": "e", "t": 1}, sync=True)
    j.append({"op": "metric", "run": "r1", "k": "loss", "v": 0.5, "t": 2, "step": 0})
    lines = [json.loads(line) for line in j.path.read_text().splitlines()]
    assert lines[0]["op"] == "open" and lines[0]["tracking_uri"] == "sqlite:///x.db"
    assert [r["seq"] for r in lines[1:]] == [seq, seq + 1]
    j.close(remove=True)
    assert not j.path.exists()


def test_read_returns_unacknowledged_records_and_unfinished_runs(tmp_path: Path) -> None:
    j = journal.Journal(tmp_path, "sqlite:///x.db")
    j.append({"op": "start", "run": "a", "t": 1})
    j.note({"op": "created", "run": "a", "run_id": "RUN_A"})
    j.append({"op": "metric", "run": "a", "k": "m", "v": 1.0, "t": 1, "step": 0})
    j.note({"op": "ack", "upto": 2})
    j.append({"op": "end", "run": "a", "status": "FINISHED", "t": 3})
    j.append({"op": "start", "run": "b", "t": 4})
    j.append({"op": "param", "run": "b", "k": "p", "v": "1"})
    j.close(remove=False)
    with j.path.open("a") as f:
        f.write('{"op": "metric", "run": "b", "k"')  # a torn last line: its call never returned
    state = journal.read(j.path)
    assert [r["seq"] for r in state.pending] == [3, 4, 5]
    assert state.run_ids == {"a": "RUN_A"}
    assert list(state.open_runs) == ["b"]
    assert state.pid == os.getpid()


def test_orphans_skips_journals_of_live_processes(tmp_path: Path) -> None:
    live = journal.Journal(tmp_path, "sqlite:///x.db")  # this process holds its lock
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from mlops_nb.tracking.journal import Journal;"
            "j = Journal(Path(sys.argv[1]), 'sqlite:///x.db'); j.append({'op': 'start', 'run': 'z', 't': 0});"
            "print(j.path)",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = Path(child.stdout.strip())
    found = list(journal.orphans(tmp_path))
    assert [o.path for o in found] == [dead]
    # While we hold the dead journal, nobody else can take it.
    assert list(journal.orphans(tmp_path)) == []
    found[0].finish(remove=True)
    assert not dead.exists() and live.path.exists()
    live.close(remove=True)


def test_unwritable_journal_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(JournalError, match="MLOPS_NB_HOME"):
        journal.Journal(blocker / "journal", "sqlite:///x.db")
