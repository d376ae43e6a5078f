"""Finishing the sending of a kernel that has to exit before it could send everything.

A Jupyter kernel gets about 2.5 s between the shutdown request and SIGTERM; loading MLflow and opening a
store, or sending to a busy one, can take longer. When a kernel's sender has not finished (and has not
failed) after a second of its exit flush, the kernel starts this detached helper
(``python -m mlops_nb.tracking.handoff``), which loads MLflow at once, waits until the kernel releases its
journal, and replays what is left in it like the journal of any dead process. If the kernel manages on its
own, it deletes the journal and the helper has nothing to do. The helper covers slowness, not outages: at
the first error it stops and leaves the journal for the next process that records.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from mlops_nb.redaction import redact_uri
from mlops_nb.tracking import journal
from mlops_nb.tracking.provenance import Provenance
from mlops_nb.tracking.sender import replay_orphan
from mlops_nb.tracking.store import Store


def spawn(journal_path: Path, tracking_uri: str, home: Path, artifact_root: Path | None, deadline: float) -> int:
    """Start the helper in its own session (a kernel manager's kill of the kernel does not reach it)."""
    args = [
        sys.executable,
        "-m",
        "mlops_nb.tracking.handoff",
        str(journal_path),
        str(home),
        "--deadline",
        str(deadline),
    ]
    if artifact_root is not None:
        args += ["--artifact-root", str(artifact_root)]
    log = (home / "handoff.log").open("ab")
    with log:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            # Not on the command line, which every user of the machine can read (ps): it may hold credentials.
            env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        )
    return proc.pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_nb.tracking.handoff", description=__doc__)
    parser.add_argument("journal", type=Path)
    parser.add_argument("home", type=Path)
    parser.add_argument("--artifact-root", type=Path)
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds to keep trying (default 600)")
    args = parser.parse_args(argv)
    give_up_at = time.monotonic() + args.deadline
    store = Store(os.environ["MLFLOW_TRACKING_URI"], args.home, args.artifact_root)
    orphan = None
    while orphan is None:  # until its process has exited (or flushed on its own and deleted the journal)
        if time.monotonic() > give_up_at or not args.journal.exists():
            return 0
        orphan = journal.take(args.journal)
        time.sleep(0.05)
    errors: list[BaseException] = []
    done = replay_orphan(orphan, store, Provenance(), lambda: bool(errors), errors.append)
    if errors:
        print(redact_uri(f"mlops-nb handoff: stopped at {errors[0]!r}"), flush=True)
    print(f"mlops-nb handoff (pid {os.getpid()}): {args.journal.name} {'sent' if done else 'kept'}", flush=True)
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
