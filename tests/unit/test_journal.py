from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
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


def _dead_journal(folder: Path, name: str, job: str | None = None) -> Path:
    """A journal whose process is gone: a header and one record, no lock held."""
    path = folder / f"{name}{journal.SUFFIX}"
    head = {
        "op": "open",
        "v": 1,
        "tracking_uri": "sqlite:///x.db",
        "pid": 1,
        "host": "h",
        **({"job": job} if job else {}),
    }
    path.write_text(json.dumps(head) + "\n" + json.dumps({"op": "start", "run": name, "t": 0, "seq": 1}) + "\n")
    return path


def test_orphans_leaves_every_journal_of_a_held_job_alone(tmp_path: Path) -> None:
    # Two journals of one held job side by side: the second used to be skipped by the check and replayed.
    _dead_journal(tmp_path, "a", job="JOB1")
    _dead_journal(tmp_path, "b", job="JOB1")
    hold = journal.JobHold(tmp_path, "JOB1")
    assert list(journal.orphans(tmp_path)) == []
    hold.release()
    found = list(journal.orphans(tmp_path))
    assert [o.path.name for o in found] == ["a.jsonl", "b.jsonl"]
    for o in found:
        o.finish(remove=False)


def test_orphans_after_a_held_journal_are_checked_and_jobs_come_last(tmp_path: Path) -> None:
    # A held job journal, then the orphan of another (dead) job, then a plain one: the dead job's journal
    # must still be recognised as a job journal (replayed after the plain journal that may create its run).
    _dead_journal(tmp_path, "a", job="HELD")
    _dead_journal(tmp_path, "b", job="DEAD")
    _dead_journal(tmp_path, "c")
    hold = journal.JobHold(tmp_path, "HELD")
    found = list(journal.orphans(tmp_path))
    assert [o.path.name for o in found] == ["c.jsonl", "b.jsonl"]
    for o in found:
        o.finish(remove=False)
    hold.release()


def test_journals_are_private_to_their_owner(tmp_path: Path) -> None:
    j = journal.Journal(tmp_path / "journal", "sqlite:///x.db")
    spooled = j.spool_path("k", "f.txt")
    hold = journal.JobHold(tmp_path / "journal", "JOB")
    assert oct(j.path.stat().st_mode & 0o777) == oct(0o600)
    assert oct(hold.path.stat().st_mode & 0o777) == oct(0o600)
    assert oct(j.path.parent.stat().st_mode & 0o777) == oct(0o700)
    assert oct(j.spool.stat().st_mode & 0o777) == oct(0o700)
    assert spooled.parent.is_dir()
    hold.release()
    j.close(remove=True)


_READ_ONLY_SCRIPT = """
import os, sys
from pathlib import Path
import mlops_nb as mnb
from mlops_nb.exceptions import JournalError
from mlops_nb.tracking.recorder import get_recorder

Path("data.bin").write_bytes(b"x" * 10)
from sklearn.dummy import DummyClassifier

model = DummyClassifier().fit([[0], [1]], [0, 1])
with mnb.start_run("x"):
    folder = get_recorder().journal.path.parent
    os.chmod(folder, 0o500)  # before anything was spooled: the journal file itself stays writable
    mnb.log_text("small", "small.txt")
    for name, call in [
        ("text", lambda: mnb.log_text("x" * 70_000, "big.txt")),
        ("artifact", lambda: mnb.log_artifact("data.bin")),
        ("model", lambda: mnb.log_model(model, "m")),
    ]:
        try:
            call()
            print(name, "recorded")
        except JournalError as e:
            print(name, "JournalError", e)
        except Exception as e:
            print(name, type(e).__name__, e)
    os.chmod(folder, 0o700)
    mnb.log_text("after", "after.txt")
    run_id = mnb.active_run().run_id
assert get_recorder().flush(120)
from mlflow import MlflowClient

client = MlflowClient(get_recorder().settings.tracking_uri)
print("artifacts", sorted(a.path for a in client.list_artifacts(run_id)))
"""


def test_a_read_only_journal_folder_is_a_journal_error_naming_it(tmp_path: Path) -> None:
    # Root ignores folder modes: run the script as an unprivileged user then.
    prefix: list[str] = []
    project = tmp_path
    if os.geteuid() == 0:
        import shutil
        import tempfile

        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: folder modes cannot be tested")
        project = Path(tempfile.mkdtemp(prefix="mnb-ro-"))
        os.chown(project, 65534, 65534)
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_NB_"))}
    env["HOME"] = str(project)
    try:
        out = subprocess.run(
            [*prefix, sys.executable, "-c", _READ_ONLY_SCRIPT],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
        folder = project / ".mlops_nb" / "journal"
        for name in ("text", "artifact", "model"):
            assert lines[name].startswith("JournalError"), out.stdout
            assert str(folder) in lines[name] and "writable" in lines[name]
        assert "PermissionError" not in out.stderr
        # Nothing before or after the refused calls is lost; the pip freeze needs no file in the journal.
        assert lines["artifacts"] == "['after.txt', 'environment', 'small.txt']"
    finally:
        if project != tmp_path:
            subprocess.run(["rm", "-rf", str(project)], check=False)


def test_a_half_imported_ipython_means_no_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """A script exiting while MLflow still imports IPython in the sender thread: the exit hook asks for the
    shell and must get None, not an AttributeError (seen once in the full suite)."""
    import types

    from mlops_nb.tracking.provenance import in_kernel, ipython_shell

    monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))  # no get_ipython yet
    assert ipython_shell() is None and not in_kernel()


def test_run_ends_are_fsynced_by_a_group_commit_without_the_caller_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []  # the thread of each fsync
    real_fsync = os.fsync
    monkeypatch.setattr(
        journal.os, "fsync", lambda fd: (real_fsync(fd), synced.append(threading.current_thread().name))
    )
    j = journal.Journal(tmp_path, "sqlite:///x.db")
    for n in range(20):  # twenty runs end, each asking for durability
        j.append({"op": "start", "run": f"r{n}", "t": 1})
        j.append({"op": "end", "run": f"r{n}", "status": "FINISHED", "t": 2}, sync=True)
    deadline = time.monotonic() + 10
    while (not synced or j._unsynced) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert synced and set(synced) == {"mlops-nb-journal"}  # the caller never waited for the disk
    assert len(synced) < 5  # the ends share fsyncs
    j.append({"op": "tag", "run": "r0", "k": "late", "v": "1"})
    j.close(remove=False)  # what no group commit covered yet is fsynced on close
    assert synced[-1] == threading.current_thread().name
    assert [json.loads(line)["op"] for line in j.path.read_text().splitlines()].count("end") == 20


def test_closing_a_synced_journal_does_not_fsync_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = journal.Journal(tmp_path, "sqlite:///x.db")
    j.append({"op": "end", "run": "r", "status": "FINISHED", "t": 2})
    j.sync()
    calls: list[int] = []
    monkeypatch.setattr(journal.os, "fsync", calls.append)
    j.close(remove=False)
    assert calls == []
