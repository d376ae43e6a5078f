"""Runs read straight from an embedded (SQLite) store's tables: the fast path of ``list_runs`` and
``run_detail``.

Why not MLflow's client: ``search_runs`` builds ORM objects for every tag, param and metric row of every run
of the page (about 0.35 ms a run here), and the runs table and the JupyterLab sidebar ask for pages all the
time. MLflow has no lighter public query. So for SQLite stores we read the same tables that its search reads
(``runs``, ``tags``, ``params``, ``latest_metrics``, ``experiments``), read-only, with a few indexed queries,
and give the same answer — same filter, same order (start time, newest first, then run id), same page tokens
(MLflow's base64 ``{"offset": N}``). Anything unexpected (another schema, a locked file) raises
``Unavailable`` and the caller uses MLflow's own reads; a test compares both on the same store.

A process keeps one read-only connection per database and the pages it answered: a page asked again is
answered from memory while SQLite's ``PRAGMA data_version`` says no other connection has committed anything
since (the JupyterLab server asks for the same pages over and over; a one-shot command never benefits).
"""

from __future__ import annotations

import base64
import copy
import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mlops_nb.tracking import tags as tag_names
from mlops_nb.tracking.records import RunDetail, RunPage, RunSummary, stage_record, summary_record


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
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < 2**63:  # SQLite's integers
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
    page = _cached(
        db,
        ("page", experiment, kind, notebook, max_results, offset),
        lambda con: _page(con, experiment, kind, notebook, max_results, offset),
    )
    return _copy_page(page) if page is not None else None


def run_detail(db: Path, run_id: str) -> RunDetail | None:
    """One run with its tags and stages, as ``reading.run_detail`` defines it; None when the store has no
    such run (MLflow's own read then says why)."""
    detail = _cached(db, ("detail", run_id), lambda con: _detail(con, run_id))
    return copy.deepcopy(detail) if detail is not None else None


def _cached(db: Path, key: tuple, read: Callable[[sqlite3.Connection], Any]) -> Any:
    """``read(connection)``, or what it answered last time for ``key`` if nothing was committed since."""
    try:
        stat = db.stat()
    except OSError as e:
        raise Unavailable("no database file yet") from e
    key = (str(db), *key)
    with _lock:
        try:
            con = _connection(db, (stat.st_dev, stat.st_ino))
            state = (stat.st_dev, stat.st_ino, con.execute("PRAGMA data_version").fetchone()[0])
            cached = _answers.get(key)
            if cached is not None and cached[0] == state:
                return cached[1]
            answer = read(con)
        except sqlite3.Error as e:
            _close(str(db))
            raise Unavailable(str(e)) from e
        if answer is not None:
            if len(_answers) >= _MAX_ANSWERS:
                _answers.clear()
            _answers[key] = (state, answer)
        return answer


_lock = threading.Lock()
_connections: dict[str, tuple[tuple[int, int], sqlite3.Connection]] = {}  # db -> (its file's identity, connection)
_answers: dict[tuple, tuple[tuple[int, int, int], Any]] = {}  # query -> (file identity + data_version, answer)
_MAX_ANSWERS = 256


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


def _copy_page(page: RunPage) -> RunPage:
    """A page the caller may change without changing the one kept."""
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
    params, metrics, tags = _values(con, ids, tag_keys=(tag_names.KIND, tag_names.NOTEBOOK))
    runs = [
        summary_record(run_id, name, experiment_id, status, start, end, tags[run_id], params[run_id], metrics[run_id])
        for run_id, name, experiment_id, status, start, end in rows
    ]
    return RunPage(runs=runs, next_page_token=encode_token(offset + limit) if more else None)


def _values(
    con: sqlite3.Connection, ids: list[str], tag_keys: tuple[str, ...] | None = None
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, float]], dict[str, dict[str, str]]]:
    """The params, latest metrics and tags (all, or only ``tag_keys``) of runs ``ids``: three queries."""
    params: dict[str, dict[str, str]] = {i: {} for i in ids}
    metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
    tags: dict[str, dict[str, str]] = {i: {} for i in ids}
    if not ids:
        return params, metrics, tags
    marks = ",".join("?" * len(ids))
    for run, key, value in con.execute(f"SELECT run_uuid, key, value FROM params WHERE run_uuid IN ({marks})", ids):
        params[run][key] = value
    query = f"SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE run_uuid IN ({marks})"
    for run, key, value, is_nan in con.execute(query, ids):
        metrics[run][key] = float("nan") if is_nan else float(value)
    query = f"SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({marks})"
    args: list[object] = list(ids)
    if tag_keys is not None:
        query += f" AND key IN ({','.join('?' * len(tag_keys))})"
        args.extend(tag_keys)
    for run, key, value in con.execute(query, args):
        tags[run][key] = value
    return params, metrics, tags


def _detail(con: sqlite3.Connection, run_id: str) -> RunDetail | None:
    row = con.execute(
        "SELECT r.run_uuid, r.name, r.experiment_id, r.status, r.start_time, r.end_time, e.name, r.lifecycle_stage "
        "FROM runs r "
        "JOIN experiments e ON e.experiment_id = r.experiment_id WHERE r.run_uuid = ?",
        (run_id,),
    ).fetchone()
    if row is None:
        return None
    # its stages, as reading's MLflow search finds them: active runs of its experiment, oldest first
    children = con.execute(
        "SELECT r.run_uuid, r.name, r.status, r.start_time FROM tags p JOIN runs r ON r.run_uuid = p.run_uuid "
        "WHERE p.key = ? AND p.value = ? AND r.experiment_id = ? AND r.lifecycle_stage = 'active' "
        "AND EXISTS (SELECT 1 FROM tags k WHERE k.run_uuid = r.run_uuid AND k.key = ? AND k.value = 'stage') "
        "ORDER BY r.start_time ASC, r.run_uuid ASC",
        (tag_names.PARENT, run_id, row[2], tag_names.KIND),
    ).fetchall()
    params, metrics, tags = _values(con, [run_id, *(c[0] for c in children)])
    summary = summary_record(*row[:6], tags[run_id], params[run_id], metrics[run_id])
    stages = [
        stage_record(c, name, status, start, tags[c], params[c], metrics[c]) for c, name, status, start in children
    ]
    return RunDetail(**summary, tags=tags[run_id], experiment=row[6], stages=stages, deleted=row[7] == "deleted")
