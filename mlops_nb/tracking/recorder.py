"""The recorder: one per process. Validates a record, journals it, hands it to the sender, returns.

The caller pays for a ``json.dumps`` and one ``write(2)`` per record (a run's end is fsynced by the journal's
group commit, within 50 ms, not by the caller); MLflow is imported and called only by the sender thread. At
exit the recorder waits up to ``flush_timeout`` for the sender, then deletes the journal if everything
arrived, or keeps it and says so.
"""

from __future__ import annotations

import atexit
import dataclasses
import itertools
import json
import os
import posixpath
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_nb.config import Settings, load_settings
from mlops_nb.exceptions import InvalidRecordError, StoreError, TrackingError
from mlops_nb.redaction import redact_uri
from mlops_nb.tracking.validation import check_key, check_metric, check_text, escaped, tag_value

if TYPE_CHECKING:
    from mlops_nb.tracking.journal import Journal
    from mlops_nb.tracking.sender import Sender

HANDOFF_AFTER = 1.0  # seconds of exit flush before a helper process is started to finish (see handoff.py)
INLINE_TEXT = 64 * 1024  # characters of a text artifact kept inside its journal line
# Set by the jobs engine for the kernel it starts: only journal; the engine sends the journal when the kernel
# has exited (the kernel never loads MLflow, the engine's process has it loaded already).
JOURNAL_ONLY_ENV = "MLOPS_NB_JOURNAL_ONLY"
CACHE_ONLY_ENV = "MLOPS_NB_CACHE_ONLY"  # the stages a job's kernel must serve from the cache (run --no-upstream)
JOB_RUN_ENV = "MLOPS_NB_JOB_RUN"  # the mlops-nb key of the job run a kernel records into (see runs.py)
# The key a job's kernel names in its journal's header (default: JOB_RUN_ENV's): a pipeline task records into
# the DAG run's job run, which tasks running at once share, but holds and sends only its own kernel's journals.
JOB_JOURNAL_ENV = "MLOPS_NB_JOB_JOURNAL"
# The stages a job's kernel records (a JSON list; unset: all). A pipeline task records only its own stage: the
# upstream stages it restores are recorded by their own tasks.
RECORD_ONLY_ENV = "MLOPS_NB_RECORD_ONLY"


def now_ms() -> int:
    return int(time.time() * 1000)


_id_prefix = os.urandom(8).hex()
_id_counter = itertools.count()


def unique_id() -> str:
    """32 hex digits, unique across processes (random prefix) and within one (a counter): cheaper than uuid4,
    which reads the OS's randomness every time."""
    return f"{_id_prefix}{next(_id_counter):016x}"


class Recorder:
    """This process's journal plus its sender thread.

    A process forked from one that was recording only journals (``send=False``): it inherits a sender thread
    that does not exist and may inherit half-imported modules and database connections, so it leaves the
    sending to its parent, which replays the journals of exited children whenever it flushes. A kernel
    started by the jobs engine only journals too (``JOURNAL_ONLY_ENV``); ``job`` names its job run in the
    journal's header, so the engine can tell when the kernel's records have all been sent.
    """

    def __init__(
        self, settings: Settings, *, send: bool = True, job: str | None = None, connect_after: float = 0.0
    ) -> None:
        # Loaded here, not at import: ``import mlops_nb`` stays cheap.
        # MLflow's import registers a thread-pool exit hook, which Python refuses once shutdown has begun; a
        # script that exits before the sender finished importing MLflow must still be able to flush.
        import concurrent.futures.thread  # noqa: F401

        from mlops_nb.tracking.journal import Journal
        from mlops_nb.tracking.sender import Sender

        self.settings = settings
        self.journal: Journal = Journal(settings.journal_dir, settings.tracking_uri, job=job, deferred=not send)
        self._order = threading.Lock()
        self.sender: Sender | None = None
        if send:
            self.sender = Sender(
                self.journal,
                tracking_uri=settings.tracking_uri,
                home=settings.home,
                artifact_root=settings.artifact_root if settings.embedded else None,
                flush_interval=settings.flush_interval,
                connect_after=connect_after,
            )
            self.sender.start()

    def _emit(self, record: dict[str, Any], *, sync: bool = False) -> None:
        # One lock around both, so the sender sees records in sequence order even from several threads:
        # its "everything up to seq N is sent" acknowledgements depend on it.
        with self._order:
            self.journal.append(record, sync=sync)
            if self.sender is not None:
                self.sender.submit(record)

    def start_run(
        self, key: str, *, experiment: str, name: str | None, parent: str | None, tags: dict[str, str]
    ) -> None:
        """Names and tag values are partly made of file names (the notebook's): a lone surrogate in them is
        written as its escape, so that the run can be made; a tag name MLflow refuses fails here."""
        tags = {check_key("tag", k): escaped(v) for k, v in tags.items()}
        name = escaped(name) if name is not None else None
        record = {"op": "start", "run": key, "exp": escaped(experiment), "name": name, "parent": parent, "tags": tags}
        self._emit({**record, "t": now_ms()})  # fsynced with everything after it once the run ends

    def end_run(self, key: str, status: str) -> None:
        self._emit({"op": "end", "run": key, "status": status, "t": now_ms()}, sync=True)

    def log_param(self, run: str, key: str, value: str) -> None:
        self._emit({"op": "param", "run": run, "k": key, "v": value})

    def log_metric(self, run: str, key: str, value: Any, step: int, timestamp: int | None, rollup: str | None) -> None:
        value, step = check_metric(key, value, step)
        self._emit(
            {
                "op": "metric",
                "run": run,
                "k": key,
                "v": value,
                "step": step,
                "t": now_ms() if timestamp is None else int(timestamp),
                "rollup": rollup,
            }
        )

    def set_tag(self, run: str, key: str, value: Any) -> None:
        self._emit({"op": "tag", "run": run, "k": key, "v": tag_value(key, value)})

    def log_artifact(self, run: str, path: Path, dest: str | None) -> None:
        if not path.exists():
            raise InvalidRecordError(f"Cannot log artifact {path}: no such file or folder.")
        check_text(f"The artifact name {path.name!r}", path.name)
        if dest is not None:
            check_text(f"The artifact path {dest!r}", dest)
        copy = self.journal.copy_into_spool(path, unique_id())
        if path.is_dir():  # a folder is kept whole, under its own name
            dest = posixpath.join(dest or "", path.name)
        self._emit({"op": "artifact", "run": run, "path": str(copy), "dest": dest})

    def log_model(
        self,
        run: str,
        name: str,
        model: Any,
        example: Any,
        profile: dict[str, Any] | None,
        tables: dict[str, Any] | None = None,
    ) -> None:
        """Spool a pickled model (and example, profile, Arrow ``tables`` saved as Parquet files under their
        names); the sender saves it into MLflow in the background."""
        import joblib

        from mlops_nb.tracking.models import EXAMPLE_FILE, MODEL_FILE, PROFILE_FILE, REFERENCE_FILES

        check_key("model", name)
        folder = self.journal.spool_path(unique_id(), name)
        with self.journal.spooling():
            folder.mkdir()
            joblib.dump(model, folder / MODEL_FILE)
            if example is not None:
                joblib.dump(example, folder / EXAMPLE_FILE)
            if profile is not None:
                (folder / PROFILE_FILE).write_text(json.dumps(profile))
            if tables:
                import pyarrow.parquet as pq

                for file, table in tables.items():
                    if file not in REFERENCE_FILES:
                        raise InvalidRecordError(f"{file!r} is not one of the model's reference files.")
                    pq.write_table(table, folder / file)
        self._emit({"op": "model", "run": run, "path": str(folder), "name": name}, sync=True)

    def link(self, run: str, key: str, ref: str) -> None:
        """Set tag ``key`` of ``run`` to the MLflow id of the run whose mlops-nb key is ``ref``."""
        check_key("tag", key)
        self._emit({"op": "link", "run": run, "k": key, "ref": ref})

    def log_text(self, run: str, text: str, artifact_file: str) -> None:
        check_key("artifact", artifact_file)
        text = escaped(text)  # a traceback or a notebook naming an undecodable file: kept, the byte escaped
        if len(text) <= INLINE_TEXT:  # small texts travel inside the journal line: no file to write
            self._emit({"op": "text", "run": run, "text": text, "file": artifact_file})
            return
        dest, name = posixpath.split(artifact_file)
        copy = self.journal.spool_path(unique_id(), name)
        with self.journal.spooling():
            copy.write_text(text, encoding="utf-8")
        self._emit({"op": "artifact", "run": run, "path": str(copy), "dest": dest or None})

    def connect_now(self) -> None:
        """Let a sender that waits before loading MLflow (``defer_connection``) start now."""
        if self.sender is not None:
            self.sender.connect_now()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything recorded is in MLflow; always False in a forked child (its parent sends)."""
        return self.sender.flush(timeout) if self.sender is not None else False

    def send_soon(self) -> None:
        """Have the sender send the journals of exited processes (a job's worker and kernel) now, in the
        background: unlike ``flush`` the caller does not wait for MLflow."""
        if self.sender is not None:
            self.sender.scan_soon()

    def known_run_id(self, key: str) -> str | None:
        """The MLflow id of run ``key`` if this process's sender created or replayed it (never waits)."""
        return self.sender.run_ids.get(key) if self.sender is not None else None

    def run_id(self, key: str) -> str:
        """The MLflow run id of local run ``key``, waiting up to ``flush_timeout`` for its creation."""
        if self.sender is None:
            raise TrackingError(
                "This process only journals (a process forked from a recording one, or a kernel run by "
                "mlops-nb run / the papermill engine): its runs reach MLflow when the process that started it "
                "sends its journal, so their ids are not known here. Read them from MLflow afterwards."
            )
        run_id = self.sender.run_id(key, self.settings.flush_timeout)
        if run_id is None:
            raise StoreError(
                f"The run is recorded in the journal but MLflow at {self.settings.tracking_uri} has not answered "
                f"yet (last error: {self.sender.last_error}). It will be sent when it answers."
            )
        return run_id

    def shutdown(self, timeout: float | None = None) -> bool:
        """Send what is pending (up to ``timeout``), stop the sender, delete the journal if all arrived."""
        timeout = self.settings.flush_timeout if timeout is None else timeout
        if self.journal.closed:
            return True
        if self.sender is None:  # a forked child: the journal is durable, the parent sends it
            self.journal.close(remove=False)
            return True
        sent = self.sender.flush(min(timeout, HANDOFF_AFTER))
        helper = None
        from mlops_nb.tracking.provenance import in_kernel

        progressing = self.sender.last_error is None  # loading MLflow, or sending: not failing
        if not sent and progressing and in_kernel() and timeout > HANDOFF_AFTER:
            # Jupyter SIGTERMs a kernel a few seconds after asking it to shut down, whether MLflow is still
            # loading or a busy store is slow: a detached helper takes the journal over the moment this process
            # releases it (if anything is left in it then).
            from mlops_nb.tracking import handoff

            s = self.settings
            artifact_root = s.artifact_root if s.embedded else None
            helper = handoff.spawn(self.journal.path, s.tracking_uri, s.home, artifact_root, max(timeout, 60.0))
        if not sent:
            sent = self.sender.flush(max(0.0, timeout - HANDOFF_AFTER))
        self.sender.stop()
        self.journal.close(remove=sent)
        if not sent:
            then = (
                f"a helper process (pid {helper}) is sending them now"
                if helper
                else "they will be sent the next time mlops-nb starts with this tracking URI"
            )
            message = (
                f"mlops-nb: {self.sender.pending} records did not reach MLflow at {self.settings.tracking_uri} "
                f"within {timeout:g} s (last error: {self.sender.last_error or 'none yet, still trying'}). "
                f"They are kept in {self.journal.path}; {then}."
            )
            print(redact_uri(message), file=sys.stderr)
        return sent


_lock = threading.Lock()
_recorder: Recorder | None = None


_forked = False  # forked from a process that was recording
_connect_after = 0.0  # how long the next recorder's sender may wait before loading MLflow (defer_connection)
_overrides: dict[str, Any] = {}  # settings given in code (configure(), which %mlops init calls)


def get_recorder() -> Recorder:
    """This process's recorder, created on first use from the settings in force then."""
    global _recorder, _connect_after
    if _recorder is None:
        with _lock:
            if _recorder is None:
                journal_only = _forked or bool(os.environ.get(JOURNAL_ONLY_ENV))
                job = os.environ.get(JOB_JOURNAL_ENV) or os.environ.get(JOB_RUN_ENV) or None
                _recorder = Recorder(
                    load_settings(**_overrides), send=not journal_only, job=job, connect_after=_connect_after
                )
                _connect_after = 0.0
    return _recorder


def defer_connection(seconds: float) -> None:
    """The recorder created next waits up to ``seconds`` before loading MLflow, unless told to start earlier
    (``Recorder.connect_now``; a flush does too). Records meanwhile go to the journal as always. The magics
    use it so that MLflow's import does not slow the notebook's first cells (it halves a first cache hit)."""
    global _connect_after
    _connect_after = seconds


def configure(**settings: Any) -> Settings:
    """Set settings for this process (highest priority). The running recorder takes a new experiment as it is;
    any other change starts a new recorder (its journal and sender are built from the settings).

    Returns the settings now in force. Raises ConfigError for a bad value (nothing changes then).
    """
    given = {k: v for k, v in settings.items() if v is not None}
    resolved = load_settings(**{**_overrides, **given})  # validates before anything changes
    _overrides.update(given)
    current = _recorder
    if current is not None and current.settings != resolved:
        if dataclasses.replace(current.settings, experiment=resolved.experiment) == resolved:
            current.settings = resolved  # read when the next run starts
        else:
            shutdown()
    return resolved


def current_recorder() -> Recorder | None:
    return _recorder


def waiting_records(settings: Settings | None = None) -> int:
    """How many records processes that have ended (a killed kernel, say) left unsent in this store's
    journals; the next flush of any process that records into the store sends them."""
    from mlops_nb.tracking import journal as journal_mod

    s = settings or load_settings()
    uri = redact_uri(s.tracking_uri)
    count = 0
    for orphan in journal_mod.orphans(s.journal_dir, exclude=_recorder.journal.path if _recorder else None):
        try:
            if journal_mod.header(orphan.path).get("tracking_uri") == uri:
                count += len(journal_mod.read(orphan.path).pending)
        except OSError:
            pass  # replayed and deleted meanwhile
        finally:
            orphan.finish(remove=False)
    return count


def send_waiting() -> None:
    """Send the ``waiting_records`` now (with this process's recorder, within its flush timeout).

    Raises:
        StoreError: they could not all be sent; they stay in the journals.
    """
    recorder = get_recorder()
    if not recorder.flush(recorder.settings.flush_timeout):
        cause = (recorder.sender.last_error if recorder.sender else None) or "timed out"
        raise StoreError(
            f"Could not send the records waiting in {recorder.settings.journal_dir}: {cause}. They stay there; "
            "the next process that records into this store sends them."
        )


def shutdown(timeout: float | None = None) -> bool:
    """Flush and stop this process's recorder; the next record starts a new one with fresh settings."""
    global _recorder
    with _lock:
        recorder, _recorder = _recorder, None
    return recorder.shutdown(timeout) if recorder is not None else True


def _forget_in_child() -> None:
    # A forked child must not write into its parent's journal nor wait on a thread it does not have.
    global _recorder, _lock, _forked, _id_prefix
    _id_prefix = os.urandom(8).hex()  # the child must not repeat its parent's ids
    if _recorder is not None:
        _recorder.journal.abandon()
        _recorder = None
        _forked = True
    _lock = threading.Lock()


atexit.register(shutdown)
os.register_at_fork(after_in_child=_forget_in_child)
