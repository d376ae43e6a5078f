"""POSTing a monitor's summary to a webhook (Slack, Teams, an alerting relay, your own service).

urllib3 (which MLflow already brings in, through requests) does the retries: up to ``retries`` more attempts on
connection errors, timeouts and 429/5xx answers, with exponential backoff. Each attempt is bounded by
``timeout`` seconds, so a server that never answers costs at most about ``(retries + 1) * timeout`` plus the
backoff. The URL may carry a secret (a token in the path or query): messages only ever show its origin.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from mlops_nb.exceptions import MlopsNbError, UsageError
from mlops_nb.redaction import redact_uri

TIMEOUT = 5.0
RETRIES = 2
BACKOFF = 0.5  # seconds; then 1, 2 ...
RETRY_STATUS = (429, 500, 502, 503, 504)


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


def post(url: str, payload: dict[str, Any], *, timeout: float = TIMEOUT, retries: int = RETRIES) -> int:
    """POST ``payload`` as JSON; the HTTP status of the answer that took it.

    Raises:
        WebhookError: no 2xx answer after the retries (the message names the origin only).
    """
    import urllib3
    from urllib3.util.retry import Retry

    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        backoff_factor=BACKOFF,
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,  # POST too: a summary sent twice is better than none
        raise_on_status=False,
        redirect=0,
    )
    pool = urllib3.PoolManager(retries=retry, timeout=urllib3.Timeout(connect=timeout, read=timeout))
    body = json.dumps(payload).encode()
    try:
        answer = pool.request(
            "POST", url, body=body, headers={"Content-Type": "application/json", "User-Agent": "mlops-nb monitor"}
        )
    except urllib3.exceptions.HTTPError as e:
        reason = getattr(e, "reason", None) or e
        raise WebhookError(
            f"the webhook at {shown(url)} did not answer after {retries + 1} attempts ({type(reason).__name__})"
        ) from None  # the exception text holds the full URL
    finally:
        pool.clear()
    if not 200 <= answer.status < 300:
        raise WebhookError(f"the webhook at {shown(url)} answered HTTP {answer.status}")
    return answer.status
