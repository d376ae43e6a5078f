"""The monitor's webhook step against real HTTP servers on 127.0.0.1: bounded as a whole, basic auth from the
URL, secrets never shown."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mlops_nb.watch import webhook
from mlops_nb.watch.webhook import WebhookError, post


@pytest.fixture
def receiver() -> Iterator[Callable[[Callable[[Any], None]], tuple[str, list[dict[str, Any]]]]]:
    """``receiver(answer)``: a server whose every POST is answered by ``answer(handler)``; (its URL, requests)."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(answer: Callable[[Any], None]) -> tuple[str, list[dict[str, Any]]]:
        seen: list[dict[str, Any]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
                answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}", seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def answer(status: int, **headers: str) -> Callable[[Any], None]:
    def reply(handler: Any) -> None:
        handler.send_response(status)
        for k, v in headers.items():
            handler.send_header(k, v)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"ok")

    return reply


def trickle(handler: Any) -> None:
    """Answer a byte every 0.3 s, for ever: each read is quick, the answer never ends."""
    try:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        while True:
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.3)
    except OSError:
        pass


def test_basic_auth_in_the_url_is_sent_as_a_header_and_never_shown(receiver) -> None:
    base, seen = receiver(answer(200))
    url = base.replace("http://", "http://bot:p%40ss%3Aword@") + "/services/T0KEN?token=abc"
    assert post(url, {"model": "churn"}) == 200
    (request,) = seen
    assert request["headers"]["Authorization"] == "Basic Ym90OnBAc3M6d29yZA=="  # bot:p@ss:word
    assert request["path"] == "/services/T0KEN?token=abc" and request["body"] == {"model": "churn"}

    refused, _ = receiver(answer(401))
    url = refused.replace("http://", "http://bot:s3cret@") + "/services/T0KEN"
    with pytest.raises(WebhookError, match="answered HTTP 401") as caught:
        post(url, {}, timeout=1)
    assert "s3cret" not in str(caught.value) and "bot" not in str(caught.value) and "T0KEN" not in str(caught.value)


def test_a_retry_after_beyond_the_budget_is_not_slept(receiver) -> None:
    base, seen = receiver(answer(503, **{"Retry-After": "3600"}))
    started = time.monotonic()
    with pytest.raises(WebhookError, match="asked to retry after 3600 s"):
        post(base, {}, timeout=1, retries=2)
    assert time.monotonic() - started < webhook.budget(1, 2) + 5  # not an hour
    assert len(seen) == 1

    again, seen = receiver(answer(503, **{"Retry-After": "0"}))
    with pytest.raises(WebhookError, match="answered HTTP 503"):
        post(again, {}, timeout=1, retries=2)
    assert len(seen) == 3  # a short Retry-After is obeyed: every retry happens


def test_a_receiver_that_trickles_its_answer_costs_one_timeout_per_attempt(receiver) -> None:
    base, seen = receiver(trickle)
    started = time.monotonic()
    with pytest.raises(WebhookError, match="did not answer after 2 attempts"):
        post(base, {}, timeout=1, retries=1)
    assert time.monotonic() - started < webhook.budget(1, 1) + 5  # the step is bounded, not 118 s
    assert len(seen) == 2


def test_a_receiver_that_never_answers_is_given_up_within_the_budget() -> None:
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        with pytest.raises(WebhookError, match="did not answer"):
            post(f"http://127.0.0.1:{silent.getsockname()[1]}/", {}, timeout=0.5, retries=1)
    finally:
        silent.close()
