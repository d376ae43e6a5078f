"""The REST routes under ``/mlops-nb/api/``: thin handlers over the read API, promotion and jobs.

Every handler parses its input, calls one plain function off the event loop (MLflow's calls block), and
answers the function's record as JSON (shapes in ``mlops_nb/tracking/records.py``). Errors are
``{"error": ..., "message": ...}``: 400 bad input, 404 an unknown id, 409 a refused promotion, 503 a store
that cannot answer. Every route needs the server's token (403 without it); notebook paths must lie inside
the server's root_dir.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import json
import math
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler

from mlops_nb.config import Settings
from mlops_nb.exceptions import ConfigError, MlopsNbError, StoreError, UsageError
from mlops_nb.redaction import redact_uri
from mlops_nb.server.paths import confine
from mlops_nb.tracking import reading
from mlops_nb.tracking.records import (
    STAGE_EVENT_SCHEMA,
    ArtifactRecord,
    NotebookRuns,
    PromotionResult,
    RunView,
    ServerStatus,
)

if TYPE_CHECKING:
    from mlops_nb.server.jobs import Jobs
    from mlops_nb.server.reads import StoreGuard

API = "mlops-nb/api"
T = TypeVar("T")


ENDED_RUNS_KEPT = 512  # runs whose artifact listing the server keeps


@dataclasses.dataclass
class Context:
    """What the handlers share: the server's root, mlops-nb's settings for it, the jobs, the thread pool that
    MLflow's blocking calls run on, the guard that bounds the reads of the store (``reads.py``), a pool for
    walks of artifact stores (they can take seconds and must not hold up the quick reads), and the artifact
    listings of runs that ended (they do not change)."""

    root: Path
    settings: Settings | None
    problem: str | None  # why the settings could not be resolved
    jobs: Jobs | None
    executor: Executor
    reads: StoreGuard
    slow_executor: ThreadPoolExecutor = dataclasses.field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlops-nb-artifacts")
    )
    ended_artifacts: collections.OrderedDict[str, list[ArtifactRecord]] = dataclasses.field(
        default_factory=collections.OrderedDict
    )

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.slow_executor.shutdown(wait=False, cancel_futures=True)


class NotFound(Exception):
    """An id in the URL names nothing (404)."""


class Conflict(Exception):
    """The request was understood and refused (409); ``body`` says why."""

    def __init__(self, message: str, body: dict[str, Any]) -> None:
        super().__init__(message)
        self.body = body


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they travel as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class Base(APIHandler):
    """JSON errors for our exception tree, and MLflow calls on a thread pool."""

    def initialize(self) -> None:
        # A JSON answer larger than a TCP segment otherwise waits for the client's delayed ACK (Nagle): ~40 ms.
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.set_nodelay(True)

    @property
    def context(self) -> Context:
        return self.settings["mlops_nb"]

    @property
    def mlops_settings(self) -> Settings:
        context = self.context
        if context.settings is None:
            raise ConfigError(context.problem or "mlops-nb's settings could not be resolved.")
        return context.settings

    async def blocking(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A read of the store off the event loop, bounded (503 when the store cannot answer in time)."""
        return await self.context.reads.read(func, *args, **kwargs)

    async def store_write(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A write to the store (a promotion) on the store's threads: not cut short by the read deadline."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.context.executor, functools.partial(func, *args, **kwargs))

    async def slow(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``blocking``, on the pool of slow calls (artifact walks)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.context.slow_executor, functools.partial(func, *args, **kwargs))

    async def off_loop(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Short work that needs no store (parsing a body) off the event loop, on asyncio's own threads: never
        behind reads waiting on a store that hangs."""
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(func, *args, **kwargs))

    def answer(self, record: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(_finite(record)))

    def argument(self, name: str) -> str | None:
        value = self.get_query_argument(name, None)
        return value if value else None

    def names(self, name: str) -> list[str] | None:
        """``name=a,b`` or ``name=a&name=b`` as ``[a, b]``; None when absent (``name=`` alone: no names). MLflow
        keys hold no comma, so a comma only ever separates two."""
        values = self.get_query_arguments(name)
        if not values:
            return None
        return [n.strip() for v in values for n in v.split(",") if n.strip()]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Tornado's own errors (403 without a token, 405) in our JSON shape; ours go through ``fail``.
        reason = self._reason or "error"
        self.set_header("Content-Type", "application/json")
        error = {403: "forbidden", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            status_code, "internal"
        )
        self.finish(json.dumps({"error": error, "message": reason}))

    def fail(self, error: BaseException) -> None:
        if isinstance(error, NotFound):
            status, code = 404, "not_found"
        elif isinstance(error, Conflict):
            self.set_status(409)
            self.finish(json.dumps(_finite({"error": "conflict", "message": str(error), **error.body})))
            return
        elif isinstance(error, UsageError):
            status, code = 400, "bad_request"
        elif isinstance(error, StoreError):
            status, code = 503, "store_unavailable"
        elif isinstance(error, ConfigError):
            status, code = 500, "config"
        else:
            status, code = 500, "internal"
            self.log.error("mlops-nb: %s", redact_uri(repr(error)), exc_info=error)
        message = str(error) if isinstance(error, (MlopsNbError, NotFound)) else "Internal error; see the server log."
        self.set_status(status)
        self.finish(json.dumps({"error": code, "message": redact_uri(message)}))

    async def serve(self, work: Callable[[], Any]) -> None:
        """Answer ``work()``'s record (the read API keeps what it read of an embedded store until it changes)."""
        try:
            record = await work()
        except Exception as e:  # noqa: BLE001 - every error answers as JSON (MLflow's unknown ones as 500)
            self.fail(e)
            return
        self.finish(json.dumps(_finite(record)))


MAX_BODY = 1024 * 1024  # bytes of a POST body (a job's parameters, a promotion's gates); more answers 413


def parse_body(data: bytes) -> dict[str, Any]:
    """A request body as a JSON object, or a UsageError (400) saying what is wrong with it."""
    try:
        body = json.loads(data or b"{}")
    except ValueError as e:
        raise UsageError(f"The request body is not JSON: {e}.") from e
    except RecursionError:
        raise UsageError("The request body is not JSON this server reads: it is nested too deeply.") from None
    if not isinstance(body, dict):
        raise UsageError("The request body must be a JSON object.")
    return body


@tornado.web.stream_request_body
class BodyHandler(Base):
    """A POST whose body is bounded (413 before it is read when it is larger than ``MAX_BODY``) and parsed
    off the event loop: a large body never stalls the server's other requests."""

    async def prepare(self) -> None:
        await super().prepare()
        self._chunks: list[bytes] = []
        length = self.request.headers.get("Content-Length")
        if length is not None and (not length.strip().isdigit() or int(length) > MAX_BODY):
            raise tornado.web.HTTPError(413, reason=f"The request body is larger than {MAX_BODY} bytes")
        connection = self.request.connection
        if hasattr(connection, "set_max_body_size"):  # a chunked body is cut off there too
            connection.set_max_body_size(MAX_BODY)

    def data_received(self, chunk: bytes) -> None:
        self._chunks.append(chunk)

    async def body(self) -> dict[str, Any]:
        return await self.off_loop(parse_body, b"".join(self._chunks))


def _not_found(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func``'s UsageError (its id names nothing) as NotFound."""
    try:
        return func(*args, **kwargs)
    except UsageError as e:
        raise NotFound(str(e)) from e


@functools.lru_cache(maxsize=1)
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlops-nb")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown"


class Status(Base):
    @tornado.web.authenticated
    async def get(self) -> None:
        async def work() -> ServerStatus:
            s = self.mlops_settings
            return ServerStatus(
                version=_version(),
                experiment=s.experiment,
                tracking_uri=redact_uri(s.tracking_uri),
                event_schema=STAGE_EVENT_SCHEMA,
            )

        await self.serve(work)


class Runs(Base):
    @tornado.web.authenticated
    async def get(self) -> None:
        async def work() -> Any:
            raw = self.get_query_argument("max_results", "100")
            try:
                size = int(raw)
            except ValueError:
                raise UsageError(f"max_results takes a whole number 1 to {reading.MAX_PAGE}, got {raw!r}") from None
            if not 1 <= size <= reading.MAX_PAGE:
                raise UsageError(f"max_results takes 1 to {reading.MAX_PAGE}, got {size}")
            notebook = self.argument("notebook")
            path = str(confine(self.context.root, notebook, "notebook")) if notebook else None
            return await self.blocking(
                reading.list_runs,
                path,
                experiment=self.argument("experiment"),
                kind=self.argument("kind"),
                max_results=size,
                page_token=self.argument("page_token"),
                settings=self.mlops_settings,
            )

        await self.serve(work)


class Run(Base):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        async def work() -> RunView:
            settings, context = self.mlops_settings, self.context
            detail = await self.blocking(_not_found, reading.run_detail, run_id, settings)
            key = detail["run_id"]
            artifacts = context.ended_artifacts.get(key)
            if artifacts is None:
                artifacts = await self.slow(reading.run_artifacts, key, settings)
                if detail["status"] != "RUNNING":  # an ended run's files do not change: walked once
                    context.ended_artifacts[key] = artifacts
                    if len(context.ended_artifacts) > ENDED_RUNS_KEPT:
                        context.ended_artifacts.popitem(last=False)
            else:
                context.ended_artifacts.move_to_end(key)
            return RunView(**detail, artifacts=[ArtifactRecord(**a) for a in artifacts])

        await self.serve(work)


def evaluations(run_id: str, settings: Settings) -> dict[str, Any]:
    """The headlines of the evaluations run ``run_id`` and its stages logged (``evaluation.summary.Headline``)."""
    from mlops_nb.jobs.evaluate import run_evaluations

    run = _not_found(reading.get_run, run_id, settings)
    return {"run_id": run["run_id"], "evaluations": run_evaluations(run["run_id"], settings)}


class Evaluations(Base):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        async def work() -> Any:
            return await self.blocking(evaluations, run_id, self.mlops_settings)

        await self.serve(work)


def report(run_id: str, name: str, settings: Settings) -> dict[str, str]:
    """``{run_id, name, html}``: the HTML report of evaluation ``name`` logged in run ``run_id`` (a stage's run)."""
    from mlops_nb.jobs.evaluate import check_name
    from mlops_nb.tracking.evaluations import read_report

    check_name(name)  # it becomes part of an artifact path
    run = _not_found(reading.get_run, run_id, settings)
    return {"run_id": run["run_id"], "name": name, "html": _not_found(read_report, run["run_id"], name, settings)}


class Report(Base):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        async def work() -> Any:
            name = self.argument("name") or "evaluation"
            return await self.blocking(report, run_id, name, self.mlops_settings)

        await self.serve(work)


def notebook_runs(root: Path, path: str, settings: Settings) -> NotebookRuns:
    """The latest run of the notebook at ``path`` (under ``root``) with its stages."""
    page = reading.list_runs(str(confine(root, path)), max_results=1, settings=settings)
    latest = page["runs"][0]["run_id"] if page["runs"] else None
    return NotebookRuns(path=path, run=reading.run_detail(latest, settings) if latest else None)


class Notebook(Base):
    @tornado.web.authenticated
    async def get(self) -> None:
        async def work() -> Any:
            path = self.argument("path")
            confine(self.context.root, path)  # refused before any thread is used
            return await self.blocking(notebook_runs, self.context.root, path, self.mlops_settings)

        await self.serve(work)


def notebook_graph(root: Path, path: str) -> Any:
    """The stage graph of the notebook at ``path`` (under ``root``), ``path`` echoed as given."""
    from mlops_nb.pipelines.graph import build_graph

    notebook = confine(root, path)
    if not notebook.is_file():
        raise NotFound(f"No notebook {path!r} under the server's root folder.")
    return {**build_graph(notebook).to_json(), "notebook": path}


class NotebookGraph(Base):
    @tornado.web.authenticated
    async def get(self) -> None:
        async def work() -> Any:
            path = self.argument("path")
            confine(self.context.root, path)  # refused before any thread is used
            return await self.off_loop(notebook_graph, self.context.root, path)

        await self.serve(work)


def diff(a: str, b: str, settings: Settings) -> Any:
    from mlops_nb.jobs.evaluate import diff_evaluations
    from mlops_nb.tracking.diff import diff_runs

    first, second = _not_found(reading.run_detail, a, settings), _not_found(reading.run_detail, b, settings)
    found: dict[str, Any] = dict(diff_runs(first, second, functools.partial(reading.stage_code, settings=settings)))
    found["evaluations"] = diff_evaluations(first["run_id"], second["run_id"], settings)
    return found


class Diff(Base):
    @tornado.web.authenticated
    async def get(self) -> None:
        async def work() -> Any:
            a, b = self.argument("a"), self.argument("b")
            if not a or not b:
                raise UsageError("Give the two runs to compare: diff?a=RUN_ID&b=RUN_ID.")
            return await self.blocking(diff, a, b, self.mlops_settings)

        await self.serve(work)


class Compare(Base):
    @tornado.web.authenticated
    async def get(self) -> None:
        async def work() -> Any:
            from mlops_nb.widgets.comparison import compared_ids, compared_runs, comparison_of

            ids = compared_ids(self.get_query_arguments("run"))  # refused (400) before any thread is used
            runs = await self.blocking(_not_found, compared_runs, ids, self.mlops_settings)
            chosen = {"params": self.names("params"), "metrics": self.names("metrics")}
            return await self.blocking(comparison_of, runs, self.mlops_settings, **chosen)  # unknown names: 400

        await self.serve(work)


class Studies(Base):
    @tornado.web.authenticated
    async def get(self) -> None:
        async def work() -> Any:
            from mlops_nb.widgets.study_view import list_studies

            return await self.blocking(list_studies, self.mlops_settings)

        await self.serve(work)


class Study(Base):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        async def work() -> Any:
            from mlops_nb.widgets.study_view import study_view

            return await self.blocking(_not_found, study_view, run_id, self.mlops_settings)

        await self.serve(work)


class Models(Base):
    @tornado.web.authenticated
    async def get(self) -> None:
        async def work() -> Any:
            return await self.blocking(reading.list_models, self.mlops_settings)

        await self.serve(work)


class Model(Base):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        async def work() -> Any:
            return await self.blocking(_not_found, reading.model_detail, name, self.mlops_settings)

        await self.serve(work)


def _text_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f'{key!r} takes a list of strings, e.g. ["accuracy >= 0.9"].')
    return value


def _optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{key!r} takes a string, got {type(value).__name__}.")
    return value


def promote(name: str, body: dict[str, Any], settings: Settings) -> PromotionResult:
    """``mlops-nb promote`` for a request body; Conflict (409) when a gate refused it."""
    from mlops_nb.registry.promote import promote as run_promotion

    run_id = _optional_text(body, "run_id")
    if not run_id:
        raise UsageError('Give the run to promote: {"run_id": "..."} (a job or notebook run id).')
    higher = body.get("higher_is_better", True)
    if not isinstance(higher, bool):
        raise UsageError("'higher_is_better' takes true or false.")
    promotion = run_promotion(
        run_id,
        name,
        alias=_optional_text(body, "alias") or "champion",
        require=_text_list(body, "require"),
        must_beat=_optional_text(body, "must_beat"),
        metric=_optional_text(body, "metric"),
        higher_is_better=higher,
        model=_optional_text(body, "model"),
        settings=settings,
    )
    result = PromotionResult(
        name=promotion.name,
        version=promotion.version,
        alias=promotion.alias,
        promoted=promotion.promoted,
        model=promotion.model.label,
        gates=[{"name": g.name, "ok": g.ok, "message": g.message} for g in promotion.gates],
        previous_version=promotion.previous_version,
        alias_version=promotion.alias_version,
    )
    if not promotion.promoted:
        reasons = "; ".join(g.message for g in promotion.failed)
        raise Conflict(f"Not promoted: {reasons}. The alias @{promotion.alias} did not move.", dict(result))
    return result


class Promote(BodyHandler):
    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        async def work() -> Any:
            body = await self.body()
            return await self.store_write(promote, name, body, self.mlops_settings)

        await self.serve(work)


class Jobs(BodyHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        async def work() -> Any:
            jobs = self.context.jobs
            if jobs is None:
                raise ConfigError(self.context.problem or "mlops-nb's settings could not be resolved.")
            return jobs.start(await self.body())  # on the loop: the jobs table is the loop's

        try:
            record = await work()
        except Exception as e:  # noqa: BLE001 - as in serve()
            self.fail(e)
        else:
            self.answer(record, 202)


class Job(Base):
    @tornado.web.authenticated
    async def get(self, job_id: str) -> None:
        async def work() -> Any:
            jobs = self.context.jobs
            found = jobs.status(job_id) if jobs is not None else None
            if found is None:
                raise NotFound(f"No job {job_id!r} on this server (jobs are kept until the server stops).")
            return found

        await self.serve(work)


_ID = r"([^/]+)"
ROUTES: list[tuple[str, type[Base]]] = [
    (f"/{API}/status", Status),
    (f"/{API}/runs", Runs),
    (f"/{API}/runs/{_ID}", Run),
    (f"/{API}/runs/{_ID}/evaluations", Evaluations),
    (f"/{API}/runs/{_ID}/report", Report),
    (f"/{API}/notebook", Notebook),
    (f"/{API}/graph", NotebookGraph),
    (f"/{API}/diff", Diff),
    (f"/{API}/compare", Compare),
    (f"/{API}/studies", Studies),
    (f"/{API}/studies/{_ID}", Study),
    (f"/{API}/models", Models),
    (f"/{API}/models/{_ID}", Model),
    (f"/{API}/models/{_ID}/promote", Promote),
    (f"/{API}/jobs", Jobs),
    (f"/{API}/jobs/{_ID}", Job),
]
