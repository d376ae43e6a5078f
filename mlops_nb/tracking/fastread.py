"""A page of runs read straight from an embedded (SQLite) store's tables: the fast path of ``list_runs``.

Why not MLflow's client: ``search_runs`` builds ORM objects for every tag, param and metric row of every run
of the page (about 0.35 ms a run here), and the runs table and the JupyterLab sidebar ask for pages all the
time. MLflow has no lighter public query. So for SQLite stores we read the same tables that its search reads
(``runs``, ``tags``, ``params``, ``latest_metrics``, ``experiments``), read-only, with four indexed queries,
and give the same answer — same filter, same order (start time, newest first, then run id), same page tokens
(MLflow's base64 ``{"offset": N}``). Anything unexpected (another schema, a locked file) raises
``Unavailable`` and the caller uses MLflow's search; a test compares both on the same store.

A process keeps one read-only connection per database and the pages it answered: a page asked again is
answered from memory while SQLite's ``PRAGMA data_version`` says no other connection has committed anything
since (the JupyterLab server asks for the same pages over and over; a one-shot command never benefits).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlops_nb.tracking import tags as tag_names
from mlops_nb.tracking.records import RunPage, RunSummary


class Unavailable(Exception):
    """This store cannot be read directly: use MLflow's search."""


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, or None for any other store."""
    parts = urlsplit(tracking_uri)
    if parts.scheme != "sqlite" or parts.netloc or parts.query:
        return None
    path = unquote(parts.path)
    return Path(path[1:] if path.startswith("//") else path) if path not in ("", "/", "/:memory:") else None


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.b64decode(token))["offset"]
    except (ValueError, KeyError, TypeError) as e:
        raise Unavailable(f"not a page token of this store: {token!r}") from e
    if not isinstance(offset, int) or offset < 0:
        raise Unavailable(f"not a page token of this store: {token!r}")
    return offset


def encode_token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_runs(
    db: Path,
    *,
    experiment: str | None,
    kind: str | None,
    notebook: str | None,
    max_results: int,
    page_token: str | None,
) -> RunPage | None:
    """A page of top-level runs, as ``reading.list_runs`` defines it; None when ``experiment`` does not exist."""
    offset = decode_token(page_token)
    try:
        stat = db.stat()
    except OSError as e:
        raise Unavailable("no database file yet") from e
    key = (str(db), experiment, kind, notebook, max_results, offset)
    with _lock:
        try:
            con = _connection(db, (stat.st_dev, stat.st_ino))
            version = con.execute("PRAGMA data_version").fetchone()[0]
            cached = _pages.get(key)
            if cached is not None and cached[0] == (stat.st_dev, stat.st_ino, version):
                return _copy(cached[1])
            page = _page(con, experiment, kind, notebook, max_results, offset)
        except sqlite3.Error as e:
            _close(str(db))
            raise Unavailable(str(e)) from e
        if page is not None:
            if len(_pages) >= _MAX_PAGES:
                _pages.clear()
            _pages[key] = ((stat.st_dev, stat.st_ino, version), page)
        return _copy(page)


_lock = threading.Lock()
_connections: dict[str, tuple[tuple[int, int], sqlite3.Connection]] = {}  # db -> (its file's identity, connection)
_pages: dict[tuple, tuple[tuple[int, int, int], RunPage]] = {}  # query -> (file identity + data_version, page)
_MAX_PAGES = 256


def _connection(db: Path, identity: tuple[int, int]) -> sqlite3.Connection:
    """This process's read-only connection to ``db`` (a new one when the file was replaced)."""
    known = _connections.get(str(db))
    if known is not None and known[0] == identity:
        return known[1]
    _close(str(db))
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5, check_same_thread=False)
    _connections[str(db)] = (identity, con)
    return con


def _close(db: str) -> None:
    known = _connections.pop(db, None)
    if known is not None:
        known[1].close()


def _copy(page: RunPage | None) -> RunPage | None:
    """A page the caller may change without changing the one kept."""
    if page is None:
        return None
    runs = [RunSummary(**{**r, "params": dict(r["params"]), "metrics": dict(r["metrics"])}) for r in page["runs"]]
    return RunPage(runs=runs, next_page_token=page["next_page_token"])


def _page(
    con: sqlite3.Connection, experiment: str | None, kind: str | None, notebook: str | None, limit: int, offset: int
) -> RunPage | None:
    if experiment is None:
        experiments = [
            r[0] for r in con.execute("SELECT experiment_id FROM experiments WHERE lifecycle_stage = 'active'")
        ]
    else:
        experiments = [
            r[0]
            for r in con.execute(
                "SELECT experiment_id FROM experiments WHERE name = ? AND lifecycle_stage = 'active'", (experiment,)
            )
        ]
        if not experiments:
            return None
    if not experiments:
        return RunPage(runs=[], next_page_token=None)
    where = [f"r.experiment_id IN ({','.join('?' * len(experiments))})", "r.lifecycle_stage = 'active'"]
    args: list[object] = list(experiments)
    kind_test = "t.value = ?" if kind else "t.value != 'stage'"
    where.append(f"EXISTS (SELECT 1 FROM tags t WHERE t.run_uuid = r.run_uuid AND t.key = ? AND {kind_test})")
    args.append(tag_names.KIND)
    if kind:
        args.append(kind)
    if notebook:
        where.append(
            "EXISTS (SELECT 1 FROM tags n WHERE n.run_uuid = r.run_uuid AND n.key = ? AND n.value LIKE ? ESCAPE '\\')"
        )
        args.extend([tag_names.NOTEBOOK, "%" + _like(notebook)])
    rows = con.execute(
        "SELECT r.run_uuid, r.name, r.experiment_id, r.status, r.start_time, r.end_time FROM runs r "
        f"WHERE {' AND '.join(where)} ORDER BY r.start_time DESC, r.run_uuid ASC LIMIT ? OFFSET ?",
        (*args, limit + 1, offset),
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    ids = [r[0] for r in rows]
    marks = ",".join("?" * len(ids))
    params: dict[str, dict[str, str]] = {i: {} for i in ids}
    metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
    tags: dict[str, dict[str, str]] = {i: {} for i in ids}
    if ids:
        for run, key, value in con.execute(f"SELECT run_uuid, key, value FROM params WHERE run_uuid IN ({marks})", ids):
            params[run][key] = value
        query = f"SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE run_uuid IN ({marks})"
        for run, key, value, is_nan in con.execute(query, ids):
            metrics[run][key] = float("nan") if is_nan else float(value)
        query = (
            f"SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({marks}) "
            "AND key IN ('mlops_nb.kind', 'mlops_nb.notebook')"
        )
        for run, key, value in con.execute(query, ids):
            tags[run][key] = value
    runs = [
        RunSummary(
            run_id=run_id,
            name=name,
            experiment_id=str(experiment_id),
            kind=tags[run_id].get(tag_names.KIND),
            status=status,
            start_time=start,
            end_time=end or None,
            duration_s=round((end - start) / 1000, 3) if end else None,
            notebook=tags[run_id].get(tag_names.NOTEBOOK),
            params=params[run_id],
            metrics=metrics[run_id],
        )
        for run_id, name, experiment_id, status, start, end in rows
    ]
    return RunPage(runs=runs, next_page_token=encode_token(offset + limit) if more else None)
