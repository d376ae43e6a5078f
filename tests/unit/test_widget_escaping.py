"""Values that reach the widgets' HTML from a tracking server are escaped like every other value."""

from __future__ import annotations

import html.parser

import pytest

from mlops_nb.tracking import recorder
from mlops_nb.widgets.stages import _run_link

HOSTILE = '"><img src=x onerror=alert(1)><script>alert(2)</script>'


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text += data


@pytest.mark.parametrize("tracking_uri", [None, "http://mlflow.example:5000"])
def test_a_run_id_from_the_server_is_text_and_a_link_never_markup(
    tracking_uri: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if tracking_uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    recorder.shutdown()
    parsed = _Tags()
    parsed.feed(_run_link(HOSTILE))
    assert {tag for tag, _ in parsed.tags} <= {"a", "code"}
    assert parsed.text == HOSTILE  # shown as the text it is
    if tracking_uri:
        ((_, link), _) = parsed.tags
        assert link["href"].startswith("http://mlflow.example:5000/#/runs/") and '"' not in link["href"]
