"""Credentials out of everything mlops-nb shows or keeps: ``redact_uri``.

A tracking URI may carry a password (``http://user:pass@host``, ``postgresql://u:pw@host/db``) or a token
(``?token=...``). mlops-nb needs the real URI to connect, and keeps it only in the settings and the
environment of its own processes; every URI it prints, logs, tags, writes into a notebook or a journal, and
every message of its exceptions, goes through ``redact_uri``. The lowest layer (standard library only), so
that ``exceptions`` can use it.
"""

from __future__ import annotations

import logging
import re

# user:password@ (or a lone token@) after a scheme, up to the last @ of the authority
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s?#'\"]+)@")
# a query parameter whose name says it holds a secret
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;][^=&\s#'\"]*(?:pass|pwd|token|secret|key|auth|credential|signature|sig)[^=&\s#'\"]*=)"
    r"[^&;\s#'\"]*",
    re.IGNORECASE,
)


def redact_uri(text: str) -> str:
    """``text`` (a URI, or a message that contains URIs) with the credentials in its URIs replaced by ``***``.

    ``http://user:pass@host`` -> ``http://user:***@host``; ``https://token@host`` -> ``https://***@host``;
    ``?token=...`` / ``&password=...`` (a query key naming a password, token, secret, key, auth or signature)
    -> ``?token=***``. Redacting twice changes nothing.
    """

    def userinfo(match: re.Match[str]) -> str:
        user, sep, _ = match["userinfo"].partition(":")
        return f"{match['scheme']}{user}:***@" if sep else f"{match['scheme']}***@"

    return _SECRET_QUERY.sub(r"\g<key>***", _USERINFO.sub(userinfo, text))


class RedactingFilter(logging.Filter):
    """A logging filter that passes every record with ``redact_uri`` applied to its message (exceptions
    quoted in log lines repeat the tracking URI as given)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_uri(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True
