"""Bounded store reads for the server extension: an MLflow store that cannot answer costs the sidebar seconds
(a 503 with the cause), never minutes, and never keeps a stopping Jupyter server alive.

- Reads run on a few daemon threads (``DaemonPool``). ``ThreadPoolExecutor``'s threads are joined when Python
  exits, so a read stuck in MLflow's HTTP client (7 retries over four minutes by default) kept a server that
  had received SIGTERM running.
- Each read has a deadline (``read_timeout``): past it the request answers 503 ``store_unavailable`` naming
  the cause (connection refused, no answer, ...); a read still waiting for a thread is dropped.
- Once the store could not be reached, its reads answer 503 at once with that cause for ``cool_down``
  seconds; then one read at a time tries again. An unreachable server holds one thread, not the pool, and
  the routes that do not read the store (``status``, ``jobs``) and Jupyter's own stay as fast as ever.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar
from urllib.parse import urlparse

from mlops_nb.exceptions import StoreError
from mlops_nb.redaction import redact_uri
from mlops_nb.tracking.errors import STORE_FIX, short_error
from mlops_nb.tracking.store import import_mlflow, is_transient

T = TypeVar("T")


class DaemonPool(Executor):
    """A fixed number of daemon threads taking work from one queue (a read stuck in a socket does not keep
    the process from exiting)."""

    def __init__(self, workers: int, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((future, functools.partial(fn, *args, **kwargs)))
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue  # its request gave up waiting
            try:
                import_mlflow()  # a read imports MLflow on first use: never in two threads at once
                result = call()
            except BaseException as e:  # noqa: BLE001 - handed to the request that waits for it
                future.set_exception(e)
            else:
                future.set_result(result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


def _cause_of(error: BaseException) -> str | None:
    """Why the store could not be reached (None: it answered, with an error about this request)."""
    cause = error.__cause__
    if isinstance(error, StoreError) and cause is not None and is_transient(cause):
        return short_error(str(cause))
    return None


async def _probe(uri: str) -> str:
    """What a TCP connection to an ``http(s)://`` store's host says, in a few words (at most 2 s)."""
    parts = urlparse(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "no answer"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), 2)
    except ConnectionRefusedError:
        return "no server answers there (connection refused)"
    except socket.gaierror:
        return "its host name does not resolve"
    except (OSError, asyncio.TimeoutError):
        return "its host cannot be reached"
    writer.close()
    return "the server accepts connections but does not answer"


class StoreGuard:
    """Runs the reads of one store on ``pool`` with a deadline, and remembers for ``cool_down`` seconds that
    the store could not be reached."""

    def __init__(self, tracking_uri: str, pool: Executor, read_timeout: float, cool_down: float) -> None:
        self.uri = tracking_uri
        self.pool = pool
        self.read_timeout = read_timeout
        self.cool_down = cool_down
        self._lock = threading.Lock()
        self._cause: str | None = None  # why the store could not be reached; None while it answers
        self._since = 0.0
        self._retry_at = 0.0
        self._trying: Future[Any] | None = None  # the one read that tries again after the cool-down

    def _down(self, message: str) -> StoreError:
        return StoreError(redact_uri(f"MLflow at {self.uri} could not be reached ({message}). {STORE_FIX}"))

    def _admit(self) -> bool:
        """Whether this read may go to the store (raises while the store is known to be down); True when it
        is the read that tries again."""
        with self._lock:
            if self._cause is None:
                return False
            now = time.monotonic()
            if now < self._retry_at or self._trying is not None:
                ago = now - self._since
                raise self._down(f"{self._cause}, for {ago:.0f} s; mlops-nb tries it again every {self.cool_down:g} s")
            return True

    def _failed(self, cause: str) -> None:
        with self._lock:
            if self._cause is None:
                self._since = time.monotonic()
            self._cause = cause
            self._retry_at = time.monotonic() + self.cool_down

    def _answered(self) -> None:
        with self._lock:
            self._cause = None

    def _tried(self, future: Future[Any]) -> None:
        with self._lock:
            if self._trying is future:
                self._trying = None

    async def read(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``func(*args, **kwargs)`` on the pool, within ``read_timeout``; StoreError (503) when the store
        cannot answer in time or is known to be down."""
        trying = self._admit()
        future = self.pool.submit(func, *args, **kwargs)
        if trying:
            with self._lock:
                self._trying = future
            future.add_done_callback(self._tried)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), self.read_timeout)
        except asyncio.TimeoutError:
            cause = await _probe(self.uri)
            self._failed(cause)
            raise self._down(f"{cause}; no answer within {self.read_timeout:g} s") from None
        except StoreError as e:
            cause = _cause_of(e)
            if cause is not None:
                self._failed(cause)
            raise
        self._answered()
        return result
