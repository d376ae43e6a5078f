"""pyplot's state across stages: the figures a stage leaves open, as a run leaves them.

matplotlib keeps open figures in pyplot's registry. A run of a cell under the inline backend shows and closes
the figures it drew when the cell ends; figures it left open (``plt.ioff()``, the object API without drawing)
stay open for later cells to show or save. A figure pickled while open comes back open (and asks to be drawn),
so a restore would show it again under a later cell. So a stage's entry records which of its outputs hold a
figure that was still open when the cell ended; on a restore the others are closed again and pyplot's
"something was drawn" flag is left as it was. A stage that leaves open a figure no output holds is not cached
(a restore could not give it back). pyplot is never imported here: a notebook that does not use it pays nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


def _gcf_registry() -> Any:
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    return getattr(helpers, "Gcf", None)


def _inline_show() -> Any:
    """matplotlib-inline's ``show``, whose ``_draw_called`` makes it show open figures when the cell ends."""
    return getattr(sys.modules.get("matplotlib_inline.backend_inline"), "show", None)


def _open() -> dict[int, Any]:
    """Open figures by number (empty when pyplot is not loaded)."""
    gcf = _gcf_registry()
    if gcf is None:
        return {}
    return {num: manager.canvas.figure for num, manager in list(gcf.figs.items())}


def open_figures() -> set[int]:
    """The identities of the open figures."""
    return {id(fig) for fig in _open().values()}


def _figures_in(value: Any) -> list[Any]:
    """The figures an output holds at its top: a figure, an artist's figure, or those of a list/array of axes."""
    figure_type = getattr(sys.modules.get("matplotlib.figure"), "Figure", None)
    if figure_type is None:
        return []
    items = [value]
    if isinstance(value, (list, tuple)) or (type(value).__name__ == "ndarray" and value.dtype == object):
        items = list(value.flat) if hasattr(value, "flat") else list(value)
    found = []
    for item in items:
        if isinstance(item, figure_type):
            found.append(item)
        elif isinstance(getattr(item, "figure", None), figure_type):
            found.append(item.figure)
    return found


@dataclass
class LeftOpen:
    held: list[str] = field(default_factory=list)  # outputs holding a figure the stage left open
    unheld: int = 0  # figures it left open that no output holds


def left_open(before: set[int], outputs: dict[str, Any]) -> LeftOpen:
    """What the stage that started with the figures ``before`` open leaves open now, its cell ended."""
    new = {id(fig) for fig in _open().values()} - before
    if not new:
        return LeftOpen()
    result = LeftOpen()
    held: set[int] = set()
    for name, value in outputs.items():
        ids = {id(f) for f in _figures_in(value)} & new
        if ids:
            result.held.append(name)
            held |= ids
    result.unheld = len(new - held)
    return result


@contextmanager
def restoring() -> Iterator[list[Any]]:
    """Around a restore: figures that unpickling opens again are closed, unless the run left them open. The
    caller puts the restored outputs that the run left holding open figures into the list it is given.
    Whether pyplot was asked to draw stays as it was."""
    before = set(_open())
    drawn = bool(getattr(_inline_show(), "_draw_called", False))
    held: list[Any] = []
    try:
        yield held
    finally:
        keep = {id(fig) for value in held for fig in _figures_in(value)}
        reopened = [fig for num, fig in _open().items() if num not in before and id(fig) not in keep]
        if reopened:
            import matplotlib.pyplot as plt

            for fig in reopened:
                plt.close(fig)
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None and getattr(pyplot, "_backend_mod", True) is None:
            # the run drew, which loaded pyplot's backend (the inline one registers how figures display);
            # importing pyplot again on a restore does not load it
            pyplot._get_backend_mod()
        show = _inline_show()
        if show is not None:
            show._draw_called = drawn
