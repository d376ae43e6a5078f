"""POSTing a monitor's summary to a webhook (Slack, Teams, an alerting relay, your own service).

The whole step is bounded: each attempt has ``timeout`` seconds from connecting to the last byte of the
answer (a watchdog shuts the socket at its deadline, so a receiver trickling a byte at a time cannot hold
it), connection errors, timeouts and 429/5xx answers are retried ``retries`` times with exponential backoff,
and a ``Retry-After`` is obeyed only within what is left of the step's budget, ``(retries + 1) * timeout``
plus the backoff (about 16.5 s by default). Credentials in the URL (``https://user:pass@host/...``) are sent
as HTTP basic auth. The URL may carry a secret (credentials, a token in the path or query): messages only
ever show its origin.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import http.client
import json
import socket
import threading
import time
import urllib.parse
from typing import Any

from mlops_nb.exceptions import MlopsNbError, UsageError
from mlops_nb.redaction import redact_uri

TIMEOUT = 5.0
RETRIES = 2
BACKOFF = 0.5  # seconds; then 1, 2 ...
RETRY_STATUS = (429, 500, 502, 503, 504)
MAX_ANSWER = 64 * 1024  # bytes of an answer read (and ignored)


class WebhookError(MlopsNbError):
    """The webhook did not take the summary (after the retries)."""


def shown(url: str) -> str:
    """The URL as messages show it: its scheme and host only (paths and queries of webhooks hold tokens)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return redact_uri(f"{parts.scheme}://{host}{port}/...")


def check_url(url: str) -> str:
    """``url`` when it is an http(s) URL with a host; UsageError naming the fix otherwise."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        raise UsageError(f"--webhook: not a URL ({e}). Give http(s)://host/path.") from e
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--webhook {shown(url)}: give an http:// or https:// URL with a host.")
    return url


def budget(timeout: float = TIMEOUT, retries: int = RETRIES) -> float:
    """Seconds the whole webhook step may take: every attempt's ``timeout`` and the backoff between them."""
    return (retries + 1) * timeout + sum(BACKOFF * 2**i for i in range(retries))


def post(url: str, payload: dict[str, Any], *, timeout: float = TIMEOUT, retries: int = RETRIES) -> int:
    """POST ``payload`` as JSON within ``budget(timeout, retries)`` seconds; the HTTP status that took it.

    Raises:
        WebhookError: no 2xx answer in time (the message names the origin only).
    """
    parts = urllib.parse.urlsplit(url)
    headers = {"Content-Type": "application/json", "User-Agent": "mlops-nb monitor"}
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        secret = urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
    body = json.dumps(payload).encode()
    deadline = time.monotonic() + budget(timeout, retries)
    failure = ""
    for attempt in range(retries + 1):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            status, retry_after = _attempt(parts, body, headers, min(timeout, left))
        except (OSError, http.client.HTTPException) as e:
            failure = f"did not answer after {attempt + 1} attempts ({type(e).__name__})"
            retry_after = None
        else:
            if 200 <= status < 300:
                return status
            failure = f"answered HTTP {status}"
            if status not in RETRY_STATUS:
                break
        if attempt == retries:
            break
        wait = max(BACKOFF * 2**attempt, retry_after or 0.0)
        if time.monotonic() + wait >= deadline:
            if retry_after is not None:
                failure += f" and asked to retry after {retry_after:.0f} s, beyond the webhook's budget"
            break
        time.sleep(wait)
    raise WebhookError(f"the webhook at {shown(url)} {failure or 'did not answer in time'}")


def _attempt(
    parts: urllib.parse.SplitResult, body: bytes, headers: dict[str, str], seconds: float
) -> tuple[int, float | None]:
    """One POST, all of it within ``seconds``: (status, Retry-After in seconds or None)."""
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=seconds)
    late = threading.Event()
    watchdog = threading.Timer(seconds, _cut, (connection, late))
    watchdog.daemon = True
    watchdog.start()
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", target, body=body, headers=headers)
        answer = connection.getresponse()
        answer.read(MAX_ANSWER)
        if late.is_set():
            raise TimeoutError("the answer took longer than the attempt's timeout")
        return answer.status, _retry_after(answer.getheader("Retry-After"))
    finally:
        watchdog.cancel()
        connection.close()


def _cut(connection: http.client.HTTPConnection, late: threading.Event) -> None:
    """The attempt's deadline: wake a read blocked on a trickling receiver."""
    late.set()
    if connection.sock is not None:
        with contextlib.suppress(OSError):
            connection.sock.shutdown(socket.SHUT_RDWR)


def _retry_after(value: str | None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
