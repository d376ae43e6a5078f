"""Credentials never leave in what mlops-nb shows or keeps: one redaction for every URI and message."""

from __future__ import annotations

import pytest

from mlops_nb.exceptions import StoreError
from mlops_nb.redaction import redact_uri


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://user:pass@host:5000", "http://user:***@host:5000"),
        ("postgresql+psycopg2://u:pw@db.example/mlflow", "postgresql+psycopg2://u:***@db.example/mlflow"),
        ("https://ghp_token@host/x", "https://***@host/x"),
        ("http://u:p@ss@host/x", "http://u:***@host/x"),  # an unencoded @ in the password
        ("https://h/api?token=abc&x=1", "https://h/api?token=***&x=1"),
        ("mysql://h/db?password=pw;sslmode=require", "mysql://h/db?password=***;sslmode=require"),
        ("http://h/?api_key=k&AccessToken=t", "http://h/?api_key=***&AccessToken=***"),
        ("sqlite:////tmp/p/.mlops_nb/mlflow.db", "sqlite:////tmp/p/.mlops_nb/mlflow.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        (
            "API request to http://a:b@127.0.0.1:5000/api/2.0/mlflow/runs/get failed; mail me@x.org",
            "API request to http://a:***@127.0.0.1:5000/api/2.0/mlflow/runs/get failed; mail me@x.org",
        ),
    ],
)
def test_credentials_in_uris_are_redacted(text: str, shown: str) -> None:
    assert redact_uri(text) == shown
    assert redact_uri(shown) == shown


def test_mlops_nb_errors_never_show_credentials() -> None:
    error = StoreError("MLflow at http://me:hunter2@host:5000 did not answer: for url http://me:hunter2@host/x")
    assert "hunter2" not in str(error) and "me:***@host:5000" in str(error)


def test_mlops_nb_log_lines_never_show_credentials(caplog: pytest.LogCaptureFixture) -> None:
    from mlops_nb.tracking.executor import log

    error = ConnectionError("HTTPConnectionPool: for url http://me:hunter2@host:5000/api/2.0/mlflow/runs/create")
    with caplog.at_level("WARNING", logger="mlops_nb"):
        log.warning("mlops-nb: cannot reach MLflow at %s yet (%r)", "http://me:hunter2@host:5000", error)
    assert "hunter2" not in caplog.text and "me:***@host:5000" in caplog.text
