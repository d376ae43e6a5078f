"""The background sender: turns journaled records into batched MLflow calls (planned and made by executor.py).

Records arrive in sequence order. The sender gathers them for up to ``flush_interval`` seconds (or until a
flush is asked for), plans the batch into steps (create run, ``log_batch`` per run within MLflow's limits,
upload artifact, end run), executes the steps in order, retrying transient failures with backoff from the
step that failed, and then acknowledges the batch in the journal. Replay of a dead process's journal goes
through the same planner and executor. Only ``tracking/`` imports MLflow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_nb.exceptions import StoreError
from mlops_nb.redaction import redact_uri
from mlops_nb.tracking import journal as journal_mod
from mlops_nb.tracking.executor import BACKOFF, Executor, log, plan
from mlops_nb.tracking.provenance import Provenance
from mlops_nb.tracking.store import Store


class Sender(threading.Thread):
    """The daemon thread of one process: connects lazily, replays dead journals, then sends batches."""

    def __init__(
        self,
        journal: journal_mod.Journal,
        *,
        tracking_uri: str,
        home: Path,
        artifact_root: Path | None,
        flush_interval: float,
        connect_after: float = 0.0,
    ) -> None:
        """``connect_after``: wait up to this long (or until ``connect_now``, a flush or a stop) before loading
        MLflow, so its import (seconds of CPU) does not compete with a notebook's first cells."""
        super().__init__(name="mlops-nb-sender", daemon=True)
        self.journal = journal
        self.tracking_uri = tracking_uri
        self._home = home
        self._artifact_root = artifact_root
        self._interval = flush_interval
        self._provenance = Provenance()
        self._cond = threading.Condition()
        self._queue: list[dict[str, Any]] = []
        self._submitted = 0  # highest seq handed to us
        self._done = 0  # highest seq acknowledged (sent, or refused by MLflow)
        self._hurry = 0  # flushes waiting
        # Passes over the journal folder for dead processes' journals: asked for at start and by each flush
        # (a forked child's journal is replayed by its parent), and done.
        self._scans_asked = 1
        self._scans_done = 0
        self._stopping = False
        self._go = threading.Event()
        self._connect_after = connect_after
        if connect_after <= 0:
            self._go.set()
        self.run_ids: dict[str, str] = {}
        self.last_error: str | None = None
        self.executor: Executor | None = None

    # --- caller side -------------------------------------------------------------------------------
    def connect_now(self) -> None:
        """Load MLflow and start sending now, if it was waiting (``connect_after``)."""
        self._go.set()

    def submit(self, record: dict[str, Any]) -> None:
        with self._cond:
            self._queue.append(record)
            self._submitted = record["seq"]
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        """Records handed over but not yet acknowledged."""
        with self._cond:
            return self._submitted - self._done

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record submitted so far, and every journal left by a process that has exited (a
        forked child's, say), is in MLflow. False when ``timeout`` ran out first."""
        self._go.set()
        with self._cond:
            target = self._submitted
            self._scans_asked += 1
            scan = self._scans_asked
            self._hurry += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._scans_done >= scan and self._done >= target, timeout)
            finally:
                self._hurry -= 1

    def scan_soon(self) -> None:
        """Send the journals of processes that have exited (a job's worker and kernel) soon, without waiting."""
        self._go.set()
        with self._cond:
            self._scans_asked += 1
            self._cond.notify_all()

    def run_id(self, key: str, timeout: float | None) -> str | None:
        """The MLflow run id of local run ``key``, waiting for its creation."""
        self.flush(timeout)
        if self.executor and key in self.executor.rejected:
            raise StoreError(f"MLflow refused to create the run: {self.executor.rejected[key]}")
        return self.run_ids.get(key)

    def stop(self) -> None:
        self._go.set()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    # --- sender thread ------------------------------------------------------------------------------
    def run(self) -> None:
        self._go.wait(self._connect_after)
        store = self._connect()
        if store is None:
            return
        self.executor = Executor(store, self.run_ids, self._provenance, self._note_created, self.journal.path.name)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping or self._scans_done < self._scans_asked)
                scan = self._scans_asked
                batch: list[dict[str, Any]] = []
                if self._queue:
                    deadline = time.monotonic() + self._interval
                    while not self._hurry and not self._stopping and time.monotonic() < deadline:
                        self._cond.wait(max(0.0, deadline - time.monotonic()))
                    batch, self._queue = self._queue, []
            if batch:
                if not self.executor.run_all(plan(batch), self._should_stop, self._remember):
                    return
                self.journal.note({"op": "ack", "upto": batch[-1]["seq"]})
                with self._cond:
                    self._done = batch[-1]["seq"]
                    self.last_error = None
                    self._cond.notify_all()
            # Dead processes' journals after our own records: a job's kernel records into the job's run,
            # which this process creates.
            if self._scans_done < scan:
                folder = self.journal.path.parent
                replay_all(
                    folder, store, self._provenance, self._should_stop, self._remember, self.journal.path, self.run_ids
                )
                with self._cond:
                    self._scans_done = scan
                    self._cond.notify_all()
            with self._cond:
                if self._stopping and not self._queue:
                    return

    def _should_stop(self) -> bool:
        return self._stopping

    def _remember(self, error: BaseException) -> None:
        self.last_error = redact_uri(f"{type(error).__name__}: {error}")

    def _note_created(self, key: str, run_id: str) -> None:
        self.journal.note({"op": "created", "run": key, "run_id": run_id})

    def _connect(self) -> Store | None:
        attempt = 0
        while not self._stopping:
            try:
                return Store(self.tracking_uri, self._home, self._artifact_root)
            except Exception as e:  # noqa: BLE001 - an unreachable store is retried until exit
                self._remember(e)
                if attempt == 0:
                    log.warning(
                        "mlops-nb: cannot reach MLflow at %s yet (%s); records wait in %s",
                        self.tracking_uri,
                        e,
                        self.journal.path,
                    )
                time.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
                attempt += 1
        return None


def replay_all(
    folder: Path,
    store: Store,
    provenance: Provenance,
    give_up: Callable[[], bool],
    on_error: Callable[[BaseException], None],
    exclude: Path | None = None,
    run_ids: dict[str, str] | None = None,
) -> None:
    """Replay every journal in ``folder`` whose process is dead. ``run_ids`` (key -> MLflow id) are the runs
    the caller knows; the replays add theirs."""
    for orphan in journal_mod.orphans(folder, exclude=exclude):
        replay_orphan(orphan, store, provenance, give_up, on_error, run_ids)


def _foreign_runs(records: list[dict[str, Any]]) -> set[str]:
    """Runs that records refer to (as their run or their parent) but that they do not start themselves."""
    started = {r["run"] for r in records if r["op"] == "start"}
    referred = {r["run"] for r in records} | {r["parent"] for r in records if r["op"] == "start" and r.get("parent")}
    referred |= {r["rollup"] for r in records if r.get("rollup")}
    return referred - started


def replay_orphan(
    orphan: journal_mod.Orphan,
    store: Store,
    provenance: Provenance,
    give_up: Callable[[], bool],
    on_error: Callable[[BaseException], None],
    run_ids: dict[str, str] | None = None,
) -> bool:
    """Send what a dead process journaled and end its unfinished runs KILLED, then release the journal
    (deleted when everything arrived). True when done."""
    done = False
    try:
        # A journal for another store is left for a process that uses that one.
        # (Headers keep the URI without its credentials: the store's own URI supplies them.)
        if journal_mod.header(orphan.path).get("tracking_uri") == redact_uri(store.tracking_uri):
            state = journal_mod.read(orphan.path)
            records = state.pending
            if not state.deferred:  # a crashed process's runs: they may exist already, and carry its provenance
                records = [{**r, "replay": True} if r["op"] == "start" else r for r in records]
            now = int(time.time() * 1000)
            reason = (
                f"process {state.pid} on {state.host} ended without ending this run "
                f"(killed or crashed); recorded from its journal {orphan.path.name}"
            )
            for key in state.open_runs:
                records.append({"op": "tag", "run": key, "k": "mlops_nb.end_reason", "v": reason})
                records.append({"op": "end", "run": key, "status": "KILLED", "t": now})
            note = lambda key, run_id: orphan.note({"op": "created", "run": key, "run_id": run_id})  # noqa: E731
            known = run_ids if run_ids is not None else {}
            known.update(state.run_ids)
            executor = Executor(store, known, provenance, note, orphan.path.name)
            waiting = [key for key in _foreign_runs(records) if executor.resolve(key) is None]
            if waiting:
                # It records into a run that another journal, not sent yet, creates (a job's kernel whose job
                # is still running elsewhere): keep it for a later pass rather than drop its records.
                log.debug("mlops-nb: %s waits for runs %s", orphan.path.name, waiting)
            else:
                done = executor.run_all(plan(records), give_up, on_error)
    except Exception as e:  # noqa: BLE001 - a damaged journal must not stop this process's records
        log.warning("mlops-nb: could not replay %s: %r; it is kept", orphan.path, e)
    orphan.finish(remove=done)
    return done
