"""What a stage shows, kept with its cache entry and shown again on a hit, as nbformat outputs.

While a stage runs, ``Capture`` records, in order, what the notebook would store for the cell:

- stdout and stderr writes of the thread that runs the cell (a background thread's log lines are not the
  cell's), merged into one stream output per run of writes, as nbformat merges them;
- every display (IPython's display publisher: ``display()``, rich reprs, updates of a display id,
  ``clear_output``), with all its mimetypes;
- the value of the cell's last expression (IPython's display hook), kept as the ``execute_result`` bundle;
- what is published after the cell's code returned and before the cell ends: the figures matplotlib's inline
  backend flushes at ``post_execute``.

Widget views are kept by their text/plain fallback only: the widget's model lives in the kernel that made it,
and a new kernel has none to show. Outputs beyond ``MAX_BYTES`` are not kept; the replay says how many.

``replay`` publishes them again, through the same channels, so a hit looks like a run in JupyterLab, in a
papermill or nbconvert output notebook and in a terminal.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_BYTES = 20 * 1024 * 1024  # outputs kept per stage; past it, what is left out is counted and said
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
CELL, AFTER = "cell", "after"  # published while the cell's code ran / after it returned (figures flushed)


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    """A mimebundle as the notebook stores it: bytes base64-encoded (images), widget views left out."""
    kept: dict[str, Any] = {}
    for mime, value in data.items():
        if mime == WIDGET_VIEW:
            continue
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = base64.b64encode(bytes(value)).decode("ascii")
        elif not isinstance(value, (str, dict, list, int, float, bool)) and value is not None:
            value = str(value)
        kept[mime] = value
    return kept


def _size(output: dict[str, Any]) -> int:
    return len(json.dumps(output, default=str))


class _StreamTee:
    """Stands in for sys.stdout or sys.stderr while a stage's code runs: writes through, and records what the
    cell's own thread writes."""

    def __init__(self, capture: Capture, name: str, stream: Any) -> None:
        self._capture = capture
        self._name = name
        self.stream = stream

    def write(self, text: str) -> int:
        if threading.current_thread() is self._capture.thread and isinstance(text, str):
            self._capture.stream(self._name, text)
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@dataclass
class Captured:
    """What a stage showed: nbformat outputs (each with the phase it was published in), the bundle of its
    last expression's value, and what was left out past the bound."""

    outputs: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    dropped: int = 0
    dropped_bytes: int = 0

    @property
    def stdout(self) -> str:
        return "".join(o["text"] for o in self.outputs if o["output_type"] == "stream" and o["name"] == "stdout")

    def to_json(self) -> dict[str, Any]:
        return {"outputs": self.outputs, "result": self.result, "dropped": self.dropped, "bytes": self.dropped_bytes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Captured:
        return cls(data.get("outputs", []), data.get("result"), data.get("dropped", 0), data.get("bytes", 0))

    def nbformat(self, execution_count: int | None = None) -> list[dict[str, Any]]:
        """The outputs as a notebook stores them (for the run's ``stage/outputs.json`` artifact)."""
        found = [
            {k: v for k, v in o.items() if k not in ("phase", "display_id")}
            for o in self.outputs
            if o["output_type"] != "update_display_data"
        ]
        if self.result is not None:
            after = next((i for i, o in enumerate(self.outputs) if o.get("phase") == AFTER), len(found))
            found.insert(
                min(after, len(found)),
                {"output_type": "execute_result", "execution_count": execution_count, **self.result},
            )
        return found


class Capture:
    """Records what a stage shows while it runs (``start`` ... ``end_cell`` ... ``stop``)."""

    def __init__(self, shell: Any, limit: int = MAX_BYTES) -> None:
        self.shell = shell
        self.limit = limit
        self.thread = threading.current_thread()
        self.captured = Captured()
        self._bytes = 0
        self._full = False  # once one output is over the bound, the later ones are left out too
        self._phase = CELL
        self._clear_pending = False
        self._ids: dict[str, int] = {}
        self._undo: list[Callable[[], None]] = []
        self._streams: list[tuple[str, _StreamTee]] = []

    # --- installing and removing the taps ---------------------------------------------------------
    def start(self) -> Capture:
        for name in ("stdout", "stderr"):
            tee = _StreamTee(self, name, getattr(sys, name))
            setattr(sys, name, tee)
            self._streams.append((name, tee))
        publisher = getattr(self.shell, "display_pub", None)
        if publisher is not None:
            self._wrap(publisher, "publish", self._published)
            self._wrap(publisher, "clear_output", self._cleared)
        hook = getattr(self.shell, "displayhook", None)
        if hook is not None and hasattr(hook, "write_format_data"):
            self._wrap(hook, "write_format_data", self._result)
        return self

    def _wrap(self, owner: Any, method: str, observe: Callable[..., None]) -> None:
        original = getattr(owner, method)
        had_own = method in vars(owner)

        def tapped(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is self.thread:
                try:
                    observe(*args, **kwargs)
                except Exception:  # noqa: BLE001 - recording an output must never break showing it
                    self.captured.dropped += 1
            return original(*args, **kwargs)

        setattr(owner, method, tapped)
        self._undo.append(lambda: setattr(owner, method, original) if had_own else delattr(owner, method))

    def end_cell(self) -> None:
        """The cell's code returned: streams go back to the kernel's; displays are still recorded (figures)."""
        for name, tee in reversed(self._streams):
            if getattr(sys, name) is tee:
                setattr(sys, name, tee.stream)
        self._streams.clear()
        self._phase = AFTER

    def stop(self) -> Captured:
        self.end_cell()
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        return self.captured

    # --- what is recorded ----------------------------------------------------------------------------
    def _fits(self, size: int) -> bool:
        if self._full or self._bytes + size > self.limit:
            self._full = True
            self.captured.dropped += 1
            self.captured.dropped_bytes += size
            return False
        self._bytes += size
        return True

    def _add(self, output: dict[str, Any]) -> bool:
        if self._clear_pending:
            self._clear()
        if not self._fits(_size(output)):
            return False
        output["phase"] = self._phase
        self.captured.outputs.append(output)
        return True

    def stream(self, name: str, text: str) -> None:
        if not text:
            return
        outputs = self.captured.outputs
        if self._clear_pending:
            self._clear()
        last = outputs[-1] if outputs else None
        if last is not None and last["output_type"] == "stream" and last["name"] == name:
            if self._fits(len(text)):
                last["text"] += text
            return
        self._add({"output_type": "stream", "name": name, "text": text})

    def _published(self, *args: Any, **kwargs: Any) -> None:
        data = kwargs["data"] if "data" in kwargs else args[0]
        metadata = kwargs.get("metadata", args[1] if len(args) > 1 else None) or {}
        display_id = (kwargs.get("transient") or {}).get("display_id")
        bundle = _jsonable(dict(data))
        if not bundle:
            return
        output: dict[str, Any] = {"output_type": "display_data", "data": bundle, "metadata": dict(metadata)}
        if kwargs.get("update"):
            index = self._ids.get(display_id) if display_id else None
            if index is not None:  # an update of this cell's own display: the notebook keeps the new data
                self.captured.outputs[index].update(data=bundle, metadata=dict(metadata))
                return
            output["output_type"] = "update_display_data"  # another cell's display: sent again on a replay
        if display_id:
            output["display_id"] = display_id
        if self._add(output) and display_id and output["output_type"] == "display_data":
            self._ids[display_id] = len(self.captured.outputs) - 1

    def _cleared(self, wait: bool = False) -> None:
        if wait:
            self._clear_pending = True
        else:
            self._clear()

    def _clear(self) -> None:
        self._clear_pending = False
        self.captured.outputs = [o for o in self.captured.outputs if o["output_type"] == "update_display_data"]
        self._ids.clear()
        self._bytes = sum(_size(o) for o in self.captured.outputs)

    def _result(self, format_dict: dict[str, Any], md_dict: dict[str, Any] | None = None) -> None:
        bundle = {"data": _jsonable(dict(format_dict)), "metadata": dict(md_dict or {})}
        if self._fits(_size(bundle)):
            self.captured.result = bundle


class Replayed:
    """The value of a restored cell's last expression, shown as the run showed it (its stored mimebundle)."""

    def __init__(self, bundle: dict[str, Any]) -> None:
        self._bundle = bundle

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        return dict(self._bundle.get("data", {})), dict(self._bundle.get("metadata", {}))

    def __repr__(self) -> str:
        return str(self._bundle.get("data", {}).get("text/plain", ""))


def show_as(shell: Any, value: Any, bundle: dict[str, Any]) -> Callable[[], None]:
    """Have the shell's display hook show ``value``, a restored cell's last expression, as the run showed it
    (``bundle``): ``_`` and Out[n] get the value itself, but what it looks like now may differ (a matplotlib
    label's position once its figure was drawn). Returns the undo, for a cell that did not display it."""
    hook = getattr(shell, "displayhook", None)
    if hook is None or not hasattr(hook, "compute_format_data"):
        return lambda: None
    had_own = "compute_format_data" in vars(hook)
    original = hook.compute_format_data

    def undo() -> None:
        if vars(hook).get("compute_format_data") is shown:
            if had_own:
                hook.compute_format_data = original
            else:
                del hook.compute_format_data

    def shown(result: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        if result is not value:
            return original(result)
        undo()
        return dict(bundle.get("data", {})), dict(bundle.get("metadata", {}))

    hook.compute_format_data = shown
    return undo


def _publish(output: dict[str, Any]) -> None:
    from IPython.display import publish_display_data

    transient = {"display_id": output["display_id"]} if output.get("display_id") else None
    kwargs: dict[str, Any] = {"transient": transient} if transient else {}
    if output["output_type"] == "update_display_data":
        kwargs["update"] = True
    publish_display_data(output["data"], output.get("metadata") or {}, **kwargs)


def replay(captured: Captured, phase: str) -> None:
    """Show again what the stage showed in ``phase`` (CELL while the magic runs, AFTER once the cell's code
    returned), through the channels it came by."""
    for output in captured.outputs:
        if output.get("phase", CELL) != phase:
            continue
        if output["output_type"] == "stream":
            stream = sys.stderr if output["name"] == "stderr" else sys.stdout
            stream.write(output["text"])
        else:
            _publish(output)
    if phase == AFTER and captured.dropped:
        sys.stderr.write(
            f"mlops-nb: {captured.dropped} output(s) of this stage ({captured.dropped_bytes / 1e6:.1f} MB) were "
            f"over the {MAX_BYTES // (1024 * 1024)} MB the cache keeps per stage and are not shown again\n"
        )
