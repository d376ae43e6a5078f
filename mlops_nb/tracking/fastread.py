"""A page of runs, and one run with its stages, read straight from an embedded (SQLite) store's tables: the
fast path of ``list_runs`` and ``run_detail``.

Why not MLflow's client: ``search_runs`` builds ORM objects for every tag, param and metric row of every run
of the page (about 0.35 ms a run here), and the runs table and the JupyterLab sidebar ask for pages all the
time. MLflow has no lighter public query. So for SQLite stores we read the same tables that its search reads
(``runs``, ``tags``, ``params``, ``latest_metrics``, ``experiments``), read-only, with a few indexed queries,
and give the same answer — same filter, same order (start time, newest first, then run id), same page tokens
(MLflow's base64 ``{"offset": N}``). Anything unexpected (another schema, a locked file) raises
``Unavailable`` and the caller uses MLflow's search; a test compares both on the same store.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlops_nb.tracking import tags as tag_names
from mlops_nb.tracking.records import RunDetail, RunPage, RunSummary, StageSummary


class Unavailable(Exception):
    """This store cannot be read directly: use MLflow's search."""


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, or None for any other store."""
    parts = urlsplit(tracking_uri)
    if parts.scheme != "sqlite" or parts.netloc or parts.query:
        return None
    path = unquote(parts.path)
    return Path(path[1:] if path.startswith("//") else path) if path not in ("", "/", "/:memory:") else None


def stamp(db: Path, settle: float = 1.0) -> tuple | None:
    """A value that changes with every committed write to the database (its file, WAL and rollback journal:
    times and sizes), for callers that keep answers until the store changes. None when there is no database, or
    it changed within the last ``settle`` seconds: a file system with coarse times could hide a second write."""
    import time

    parts = []
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-journal")):
        try:
            st = path.stat()
        except OSError:
            parts.append(None)
            continue
        if time.time() - st.st_mtime < settle:
            return None
        parts.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(parts) if parts[0] is not None else None


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


def _connect(db: Path) -> sqlite3.Connection:
    if not db.is_file():
        raise Unavailable("no database file yet")
    try:
        return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as e:
        raise Unavailable(str(e)) from e


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
    con = _connect(db)
    try:
        return _page(con, experiment, kind, notebook, max_results, offset)
    except sqlite3.Error as e:
        raise Unavailable(str(e)) from e
    finally:
        con.close()


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
    where.append(
        f"EXISTS (SELECT 1 FROM tags t WHERE t.run_uuid = r.run_uuid AND t.key = 'mlops_nb.kind' AND {kind_test})"
    )
    if kind:
        args.append(kind)
    if notebook:
        where.append(
            "EXISTS (SELECT 1 FROM tags n WHERE n.run_uuid = r.run_uuid AND n.key = 'mlops_nb.notebook'"
            " AND n.value LIKE ? ESCAPE '\\')"
        )
        args.append("%" + _like(notebook))
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
            kind=tags[run_id].get("mlops_nb.kind"),
            status=status,
            start_time=start,
            end_time=end or None,
            duration_s=round((end - start) / 1000, 3) if end else None,
            notebook=tags[run_id].get("mlops_nb.notebook"),
            params=params[run_id],
            metrics=metrics[run_id],
        )
        for run_id, name, experiment_id, status, start, end in rows
    ]
    return RunPage(runs=runs, next_page_token=encode_token(offset + limit) if more else None)


def run_detail(db: Path, run_id: str) -> RunDetail | None:
    """One run with its tags and stages, as ``reading.run_detail`` defines it; None when there is no such run
    (MLflow's client then says so in its own words)."""
    con = _connect(db)
    try:
        return _detail(con, run_id)
    except sqlite3.Error as e:
        raise Unavailable(str(e)) from e
    finally:
        con.close()


def _values(con: sqlite3.Connection, table: str, ids: list[str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {i: {} for i in ids}
    marks = ",".join("?" * len(ids))
    for run, key, value in con.execute(f"SELECT run_uuid, key, value FROM {table} WHERE run_uuid IN ({marks})", ids):
        found[run][key] = value
    return found


def _metrics(con: sqlite3.Connection, ids: list[str]) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {i: {} for i in ids}
    marks = ",".join("?" * len(ids))
    query = f"SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE run_uuid IN ({marks})"
    for run, key, value, is_nan in con.execute(query, ids):
        found[run][key] = float("nan") if is_nan else float(value)
    return found


def _prefixed(values: dict[str, str], prefix: str) -> dict[str, str]:
    return {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}


def _detail(con: sqlite3.Connection, run_id: str) -> RunDetail | None:
    row = con.execute(
        "SELECT r.run_uuid, r.name, r.experiment_id, r.status, r.start_time, r.end_time, e.name FROM runs r "
        "JOIN experiments e ON e.experiment_id = r.experiment_id WHERE r.run_uuid = ?",
        (run_id,),
    ).fetchone()
    if row is None:
        return None
    _, name, experiment_id, status, start, end, experiment = row
    # The stages: what MLflow's search for them answers (active runs, start time then run id).
    stages = con.execute(
        "SELECT r.run_uuid, r.name, r.status, r.start_time FROM runs r "
        "JOIN tags p ON p.run_uuid = r.run_uuid AND p.key = ? AND p.value = ? "
        "JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = ? AND k.value = 'stage' "
        "WHERE r.experiment_id = ? AND r.lifecycle_stage = 'active' ORDER BY r.start_time ASC, r.run_uuid ASC",
        (tag_names.PARENT, run_id, tag_names.KIND, experiment_id),
    ).fetchall()
    ids = [run_id] + [s[0] for s in stages]
    tags, params, metrics = _values(con, "tags", ids), _values(con, "params", ids), _metrics(con, ids)
    own = tags[run_id]
    summaries = []
    for stage_id, stage_name, stage_status, stage_start in stages:
        t = tags[stage_id]
        duration = t.get(tag_names.DURATION)
        summaries.append(
            StageSummary(
                run_id=stage_id,
                stage=t.get(tag_names.STAGE, stage_name or ""),
                status=stage_status,
                start_time=stage_start,
                duration_s=float(duration) if duration else None,
                cache_hit=t.get(tag_names.CACHE_HIT) == "true",
                cache_key=t.get(tag_names.CACHE_KEY),
                cache_source_run=t.get(tag_names.CACHE_SOURCE),
                cache_miss_reason=t.get(tag_names.CACHE_MISS),
                code_hash=t.get(tag_names.CODE_HASH),
                params=params[stage_id],
                metrics=metrics[stage_id],
                inputs=_prefixed(t, tag_names.INPUT_PREFIX),
                files=_prefixed(t, tag_names.FILE_PREFIX),
                modules=_prefixed(t, tag_names.MODULE_PREFIX),
                outputs=_prefixed(t, tag_names.OUTPUT_PREFIX),
            )
        )
    return RunDetail(
        run_id=run_id,
        name=name,
        experiment_id=str(experiment_id),
        kind=own.get(tag_names.KIND),
        status=status,
        start_time=start,
        end_time=end or None,
        duration_s=round((end - start) / 1000, 3) if end else None,
        notebook=own.get(tag_names.NOTEBOOK),
        params=params[run_id],
        metrics=metrics[run_id],
        experiment=experiment,
        tags=own,
        stages=summaries,
    )
