"""What a stage shows, kept and shown again, in a real IPython shell's display machinery."""

from __future__ import annotations

import sys
import threading

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import HTML, clear_output, display, update_display

from mlops_nb.stages.outputs import AFTER, CELL, Capture, Captured, Replayed, replay


class Published:
    """Records what the shell's display publisher is given (what a kernel would send)."""

    def __init__(self, shell: InteractiveShell) -> None:
        self.items: list[dict] = []
        self._shell = shell

    def __enter__(self) -> Published:
        pub = self._shell.display_pub
        self._saved = pub.publish
        pub.publish = lambda data, metadata=None, **kw: self.items.append({"data": data, **kw})
        return self

    def __exit__(self, *exc) -> None:
        del self._shell.display_pub.publish


@pytest.fixture
def shell() -> InteractiveShell:
    return InteractiveShell.instance()


def test_streams_displays_and_the_last_value_are_kept_in_order(shell, capsys) -> None:
    with Published(shell):
        capture = Capture(shell).start()
        print("one")
        print("two")
        display(HTML("<b>x</b>"))
        print("to stderr", file=sys.stderr)
        threading.Thread(target=print, args=("a background thread's line",)).start()
        capture.end_cell()
        shell.displayhook.write_format_data({"text/plain": "(75, 3)"}, {})
        display(HTML("<i>flushed after the cell</i>"))
        kept = capture.stop()
    outputs = [(o["output_type"], o.get("name"), o.get("text"), o["phase"]) for o in kept.outputs]
    assert outputs == [
        ("stream", "stdout", "one\ntwo\n", CELL),
        ("display_data", None, None, CELL),
        ("stream", "stderr", "to stderr\n", CELL),
        ("display_data", None, None, AFTER),
    ]
    assert kept.outputs[1]["data"]["text/html"] == "<b>x</b>"
    assert kept.result == {"data": {"text/plain": "(75, 3)"}, "metadata": {}}
    assert [o["output_type"] for o in kept.nbformat(7)] == [
        "stream",
        "display_data",
        "stream",
        "execute_result",
        "display_data",
    ]
    assert sys.stdout.__class__.__name__ != "_StreamTee"  # the taps are gone
    assert "publish" not in vars(shell.display_pub)


def test_updates_and_clear_output_leave_what_the_notebook_would_keep(shell) -> None:
    with Published(shell):
        capture = Capture(shell).start()
        display(HTML("old"), display_id="d1")
        update_display(HTML("new"), display_id="d1")
        update_display(HTML("another cell's"), display_id="elsewhere")
        print("progress 1")
        clear_output(wait=True)
        print("progress 2")
        kept = capture.stop()
    kinds = [o["output_type"] for o in kept.outputs]
    assert kinds == ["update_display_data", "stream"]  # the display updated in place was cleared with the rest
    assert kept.outputs[1]["text"].endswith("progress 2\n") and "progress 1" not in kept.outputs[1]["text"]
    with Published(shell) as published:
        replay(Captured.from_json(kept.to_json()), CELL)
    assert published.items[0]["update"] and published.items[0]["transient"] == {"display_id": "elsewhere"}


def test_outputs_past_the_bound_are_counted_and_said_on_a_replay(shell, capsys) -> None:
    with Published(shell):
        capture = Capture(shell, limit=1000).start()
        print("x" * 500)
        display({"text/plain": "y" * 2000}, raw=True)
        print("z" * 600)
        kept = capture.stop()
    capsys.readouterr()
    assert kept.dropped == 3 and kept.stdout == "x" * 500 + "\n"  # the display, and both writes of the print after it
    with Published(shell):
        replay(kept, CELL)
        replay(kept, AFTER)
    out, err = capsys.readouterr()
    assert out == "x" * 500 + "\n"
    assert "3 output(s) of this stage" in err and "not shown again" in err


def test_a_replayed_value_displays_as_the_run_showed_it(shell) -> None:
    value = Replayed({"data": {"text/plain": "Pipeline(...)", "text/html": "<div>diagram</div>"}, "metadata": {}})
    data, _ = shell.display_formatter.format(value)
    assert data["text/html"] == "<div>diagram</div>" and data["text/plain"] == "Pipeline(...)"
    assert repr(value) == "Pipeline(...)"
