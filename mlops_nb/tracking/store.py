"""The connection to MLflow: store initialisation and experiments that are safe under many processes.

MLflow alone loses runs when processes share a fresh store: they race on the SQLite schema migration, and
``set_experiment`` races file runs under experiment 0. Here an inter-process lock serialises schema creation
and get-or-create of experiments for stores on this machine (SQLite, or a database URI), SQLite runs in WAL
mode, and ``RESOURCE_ALREADY_EXISTS`` from a concurrent creator (e.g. through an ``mlflow server``) is
answered by reading the winner's experiment. Called only from the sender thread: MLflow loads lazily.

A new SQLite store is created whole in a file beside it and renamed into place: MLflow's schema migration
takes seconds and dozens of steps, and a process killed in the middle of it used to leave a store that every
later process failed to open. A half-made store that holds no data (left by an older mlops-nb, or by plain
MLflow) is removed and created again; the journals still hold every record that was meant for it. The schema
of a new store is copied from an empty one kept in the user's cache folder (``schema_template``), made by
MLflow's own migration the first time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from mlops_nb.exceptions import StoreError

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("mlops_nb")

# MLflow error codes that mean "try again later", plus the messages of lost connections and busy SQLite.
_TRANSIENT_CODES = {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "INTERNAL_ERROR", "ABORTED"}
_TRANSIENT_TEXT = ("database is locked", "failed with exception", "readonly database", "unable to open database")
_LOCK_TIMEOUT = 300.0
_DATABASE_SCHEMES = {"sqlite", "postgresql", "mysql", "mssql"}


# Threads importing MLflow at once (the server extension's reads, on first use) see its modules half-initialised
# ("cannot import name 'Run' from partially initialized module"): one thread at a time imports it.
_importing = threading.Lock()
_imported = threading.Event()  # set once an import finished (its modules in sys.modules may be half-made before)


def import_mlflow() -> None:
    """Import MLflow in one thread at a time (a no-op once it is imported); call it before a thread of a pool
    first reads or records through tracking/."""
    if _imported.is_set():
        return
    with _importing:
        import mlflow  # noqa: F401 - the import is the point

        _imported.set()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for other stores.

    As SQLAlchemy reads it: ``sqlite:///rel/x.db`` is relative to the working directory, ``sqlite:////abs/x.db``
    absolute; a query string (``?timeout=20``) is not part of the path.
    """
    if not uri.startswith("sqlite:"):
        return None
    path = unquote(urlparse(uri).path)
    if path.startswith("//"):
        path = path[1:]  # sqlite:////abs
    elif path.startswith("/"):
        path = path[1:]  # sqlite:///relative
    return Path(path).absolute() if path and path != ":memory:" else None


def is_transient(error: BaseException) -> bool:
    """True when retrying later may succeed (connection lost, server busy, database locked)."""
    if isinstance(error, OSError):
        return True
    code = getattr(error, "error_code", None)
    text = str(error)
    return code in _TRANSIENT_CODES or any(t in text for t in _TRANSIENT_TEXT)


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Only warnings from these loggers: MLflow's "Creating initial MLflow database tables" INFO lines would
    land in whatever notebook cell is running when the background sender creates a store."""
    import logging

    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in loggers]
    for logger, _ in saved:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def quiet_console() -> None:
    """In mlops-nb's own processes (the CLI's, the papermill engine's): MLflow's INFO lines (alembic's schema
    checks among them) and download bars stay off the console, and a server that is gone is said so in
    seconds, not minutes. Read when MLflow loads; the user's own MLFLOW_* settings win."""
    import os

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    http_defaults()


def http_defaults() -> None:
    """MLflow's HTTP settings in every mlops-nb process that talks to a store (its commands, the papermill
    engine, the Jupyter server extension); the user's own MLFLOW_* settings win.

    MLflow's 7 retries with doubling backoff wait 4 minutes before saying a server is gone; 3 say so in about
    13 s. (The sender retries on its own, keeping the records in the journal meanwhile.)
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")


class Store:
    """An MLflow client for one tracking URI, plus concurrency-safe initialisation and experiments."""

    def __init__(self, tracking_uri: str, home: Path, artifact_root: Path | None) -> None:
        """Connect, creating the schema when the store is new.

        Args:
            tracking_uri: the MLflow tracking URI.
            home: the mlops-nb home (its ``locks/`` folder guards stores without a local file).
            artifact_root: artifact root for a store we create (the embedded store); None keeps MLflow's.
        """
        self.tracking_uri = tracking_uri
        self.home = home
        self._experiments: dict[str, str] = {}
        self._db = sqlite_path(tracking_uri)
        self._local = urlparse(tracking_uri).scheme.split("+")[0] in _DATABASE_SCHEMES
        if self._db is not None:
            self._lock_path = self._db.with_name(self._db.name + ".lock")
        else:
            digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
            self._lock_path = home / "locks" / f"{digest}.lock"
        self._sql_store: Any = None
        if self._local:
            with self.lock(), _quiet("mlflow.store.db.utils", "alembic"):
                from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
                from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

                # Experiments created through this store (Default included) keep their artifacts under
                # ``artifact_root``.
                root = str(artifact_root) if artifact_root else DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
                if self._db is not None:
                    self._db.parent.mkdir(parents=True, exist_ok=True)
                    _prepare_sqlite(self._db, root)
                # Creates the schema (a database server's store), or verifies it.
                self._sql_store = SqlAlchemyStore(tracking_uri, root)
                if self._db is not None:
                    with contextlib.closing(sqlite3.connect(self._db, timeout=60)) as db:
                        db.execute("PRAGMA journal_mode=WAL")
        from mlflow import MlflowClient

        # The client's own store checks the schema when it is created: alembic's INFO lines, shown on the
        # console wherever the root logger takes INFO (papermill's CLI). Created here, inside the quiet block.
        with _quiet("alembic"):
            self.client: MlflowClient = MlflowClient(tracking_uri)
            getattr(getattr(self.client, "_tracking_client", None), "store", None)
        # Ending a run on an mlflow server, MLflow writes "View run ... at <the URI, credentials and all>" to
        # stdout (TrackingServiceClient._log_url): stdout is our caller's (mlops-nb run's is the run id; a
        # notebook keeps what a cell prints). This client never prints it; a user's own MLflow calls still do.
        tracking = getattr(self.client, "_tracking_client", None)
        if tracking is not None and hasattr(tracking, "_log_url"):
            tracking._log_url = lambda run_id: None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the inter-process lock of this store (a no-op for ``mlflow server`` URIs)."""
        if not self._local:
            yield
            return
        from filelock import FileLock, Timeout

        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(self._lock_path, timeout=_LOCK_TIMEOUT):
                yield
        except Timeout as e:
            raise StoreError(
                f"Waited {_LOCK_TIMEOUT:.0f} s for the lock {self._lock_path} of the MLflow store. A process "
                "holding it may hang; stop it, or delete the lock file if no mlops-nb process is running."
            ) from e

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created if missing; safe when many processes do it at once."""
        if name in self._experiments:
            return self._experiments[name]
        from mlflow.exceptions import MlflowException

        with self.lock():
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                try:
                    creator = self._sql_store or self.client
                    exp_id = creator.create_experiment(name)
                except MlflowException as e:
                    if e.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    exp = self.client.get_experiment_by_name(name)
                else:
                    exp = self.client.get_experiment(exp_id)
        if exp is None:
            raise StoreError(f"Experiment {name!r} vanished while it was being created in {self.tracking_uri}.")
        if exp.lifecycle_stage == "deleted":
            raise StoreError(
                f"Experiment {name!r} (id {exp.experiment_id}) is deleted in {self.tracking_uri}. Restore it "
                f"(mlflow experiments restore --experiment-id {exp.experiment_id}) or use another name."
            )
        self._experiments[name] = exp.experiment_id
        return exp.experiment_id


_SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")
_BEHIND = "its schema version is behind this MLflow's"
# Tables whose rows are a user's data: a store with any of them is never removed (experiment 0 is Default).
_DATA_QUERIES = (
    "SELECT 1 FROM runs LIMIT 1",
    "SELECT 1 FROM experiments WHERE experiment_id != 0 LIMIT 1",
    "SELECT 1 FROM registered_models LIMIT 1",
    "SELECT 1 FROM logged_models LIMIT 1",
    "SELECT 1 FROM trace_info LIMIT 1",
)


def _prepare_sqlite(db: Path, artifact_root: str) -> None:
    """Make ``db`` a complete MLflow store (called under the store's lock).

    Raises:
        StoreError: ``db`` is half-made and holds data: it is never replaced; the message says how to repair it.
    """
    _remove_sqlite(_creating(db))  # left by a creator that was killed: we hold the lock, so it is nobody's now
    if db.exists():
        problem, has_data = _half_made(db)
        if problem == _BEHIND and has_data:
            return  # a store of an older MLflow: MLflow's own error says to run `mlflow db upgrade`
        if problem and has_data:
            raise StoreError(
                f"The MLflow store {db} is incomplete ({problem}): a process died while it was being created or "
                "upgraded. It holds runs, so mlops-nb leaves it as it is. Back the file up, then run "
                f"'mlflow db upgrade sqlite:///{db}'; if that stops at '_alembic_tmp_<table> already exists', "
                "drop that table when <table> exists too (else rename it to <table>) and run it again. New "
                "records wait in the journal until the store opens."
            )
        if problem:
            log.warning("mlops-nb: %s was left incomplete (%s) and held no runs: creating it again", db, problem)
            _remove_sqlite(db)
    if not db.exists():
        _create_sqlite(db, artifact_root)


def _half_made(db: Path) -> tuple[str | None, bool]:
    """What is wrong with a store whose schema creation or upgrade never finished (None: nothing), and
    whether it holds data (runs, experiments besides Default, models, traces).

    Half-made: no tables at all, no ``alembic_version``, alembic's ``_alembic_tmp_*`` tables of an interrupted
    table rebuild, or a schema version behind this MLflow's head. A version this MLflow does not know (a newer
    MLflow's) is not ours to judge, nor is a file that is not a database: MLflow's own errors say more.
    """
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config, _get_latest_schema_revision

    try:
        with contextlib.closing(sqlite3.connect(db, timeout=60)) as con:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                return "no tables", False
            version = None
            if "alembic_version" in tables:
                row = con.execute("SELECT version_num FROM alembic_version").fetchone()
                version = row[0] if row else None
            scratch = sorted(name for name in tables if name.startswith("_alembic_tmp_"))
            if scratch:
                problem: str | None = f"alembic's scratch tables {', '.join(scratch)} are left"
            elif version is None:
                problem = "no schema version"
            elif version == _get_latest_schema_revision():
                problem = None
            else:
                try:
                    known = ScriptDirectory.from_config(_get_alembic_config(db_url="")).get_revision(version)
                except Exception:  # noqa: BLE001 - alembic raises several types for an unknown revision
                    known = None
                problem = _BEHIND if known is not None else None
            if problem is None:
                return None, True
            has_data = False
            for query in _DATA_QUERIES:
                with contextlib.suppress(sqlite3.OperationalError):  # that table was not created yet
                    has_data = has_data or con.execute(query).fetchone() is not None
            return problem, has_data
    except sqlite3.DatabaseError:
        return None, True


def _create_sqlite(db: Path, artifact_root: str) -> None:
    """Create the store's schema in a file beside ``db``, then rename it into place (atomic on POSIX).

    The schema comes from this machine's copy of an empty store of this MLflow (``schema_template``) when
    there is one: MLflow's migration takes a second or more, a copy milliseconds. MLflow itself then adds the
    Default experiment, under ``artifact_root``, as it does in a store it created.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    new = _creating(db)
    template = schema_template()
    copied = _copy_template(template, new)
    uri = f"sqlite:///{new}"
    store = SqlAlchemyStore(uri, artifact_root)
    store.engine.dispose()  # every connection closed: nothing of the new file stays in -wal/-journal
    getattr(SqlAlchemyStore, "_engine_map", {}).pop(uri, None)  # MLflow caches engines by URI
    if not copied:
        _save_template(new, template)
    with contextlib.closing(sqlite3.connect(new, timeout=60)) as con:
        con.execute("PRAGMA journal_mode=WAL")  # kept in the file's header
    _fsync(new)
    new.replace(db)
    _fsync(db.parent)


def schema_template() -> Path:
    """Where an empty store of the installed MLflow (its schema at its head revision) is kept on this machine:
    ``mlops-nb/mlflow-schema/`` in the user's cache folder (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    import mlflow
    from mlflow.store.db.utils import _get_latest_schema_revision

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "mlops-nb" / "mlflow-schema" / f"{mlflow.__version__}-{_get_latest_schema_revision()}.db"


def _copy_template(template: Path, new: Path) -> bool:
    """Copy the schema template to ``new``; False (and ``new`` absent) when there is none or it is unfit:
    not a database, not at this MLflow's head revision, or holding any experiment."""
    import shutil

    head = template.stem.rsplit("-", 1)[-1]  # the template's name holds the head revision it must be at
    try:
        shutil.copyfile(template, new)
        with contextlib.closing(sqlite3.connect(new, timeout=60)) as con:
            (version,) = con.execute("SELECT version_num FROM alembic_version").fetchone()
            (experiments,) = con.execute("SELECT count(*) FROM experiments").fetchone()
        if version == head and experiments == 0:
            return True
        log.warning("mlops-nb: the MLflow schema template %s is unfit: making a new one", template)
    except (FileNotFoundError, NotADirectoryError):
        pass  # none yet, or no cache folder to keep one in
    except (OSError, sqlite3.Error, TypeError) as e:  # TypeError: no alembic_version row to unpack
        log.warning("mlops-nb: the MLflow schema template %s is unreadable (%s): making a new one", template, e)
    _remove_sqlite(new)
    return False


def _save_template(store: Path, template: Path) -> None:
    """Keep a copy of the new ``store``, without its Default experiment, as the schema template (best effort:
    a cache folder that cannot be written only means the next store is migrated too)."""
    import shutil

    scratch = template.with_name(f"{template.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(store, scratch)
        with contextlib.closing(sqlite3.connect(scratch, timeout=60)) as con, con:
            con.execute("DELETE FROM experiments")
        scratch.replace(template)  # atomic: a reader copies a whole template or none
    except (OSError, sqlite3.Error) as e:
        log.debug("mlops-nb: could not keep the MLflow schema template at %s: %s", template, e)
        with contextlib.suppress(OSError):
            scratch.unlink(missing_ok=True)


def _creating(db: Path) -> Path:
    return db.with_name(db.name + ".creating")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_sqlite(db: Path) -> None:
    for suffix in _SQLITE_COMPANIONS:
        db.with_name(db.name + suffix).unlink(missing_ok=True)
