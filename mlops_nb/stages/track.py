"""The ``%%track`` line, declared once: the magic builds its parser (and help) from ``ARGUMENTS``, and the
stage graph reads the lines of a notebook file with ``parse``."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from typing import Any

from mlops_nb.exceptions import UsageError

# (flags, argparse keyword arguments) of ``%%track``, in the order of its usage line.
ARGUMENTS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("stage",), {"help": "the stage name, e.g. train"}),
    (("--in",), {"dest": "inputs", "help": "inputs: names and file paths, comma-separated (default: inferred)"}),
    (("--out",), {"dest": "outputs", "help": "outputs: names and file paths, comma-separated (default: inferred)"}),
    (("--params",), {"help": "names to record as this stage's parameters, comma-separated"}),
    (("--no-cache",), {"action": "store_true", "help": "always run the cell; do not restore from the cache"}),
    (
        ("--tag",),
        {"action": "append", "default": [], "metavar": "KEY=VALUE", "help": "a tag on the stage run (repeatable)"},
    ),
)


@dataclass(frozen=True)
class TrackLine:
    """What a ``%%track`` line says: None for inputs/outputs the stage infers."""

    stage: str
    inputs: list[str] | None
    outputs: list[str] | None
    params: list[str]
    cache: bool
    tags: list[str]


def names(text: str | None, *, paths: bool = False) -> list[str] | None:
    """Comma-separated Python names (and, with ``paths``, file paths: anything with a '/' or a '.')."""
    if text is None:
        return None
    found = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in found if not n.isidentifier() and not (paths and ("/" in n or "." in n))]
    if bad:
        what = "a Python name or a file path" if paths else "a Python name"
        raise UsageError(f"not {what}: {', '.join(bad)} (separate them by commas: --in df,data/raw.csv)")
    return found


def split(line: str) -> list[str]:
    """The words of a magic's line, quoted as in a shell: ``%%track "a b"`` names stage ``a b``."""
    try:
        return shlex.split(line)
    except ValueError as e:
        raise UsageError(f"{e} in {line!r}: close the quote") from e


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit the process
        raise UsageError(f"%%track: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%%track", add_help=False)
    for flags, kwargs in ARGUMENTS:
        parser.add_argument(*flags, **kwargs)
    return parser


def from_arguments(args: Any) -> TrackLine:
    """A ``TrackLine`` from parsed arguments (the magic's or ``parse``'s); UsageError for bad names."""
    return TrackLine(
        stage=args.stage,
        inputs=names(args.inputs, paths=True),
        outputs=names(args.outputs, paths=True),
        params=names(args.params) or [],
        cache=not args.no_cache,
        tags=list(args.tag),
    )


def parse(line: str) -> TrackLine:
    """The arguments of a ``%%track`` line (without ``%%track``); UsageError naming what is wrong."""
    return from_arguments(_parser().parse_args(split(line)))


def cell_line(cell: str) -> tuple[str, str] | None:
    """``(arguments, body)`` of a cell that starts with ``%%track``, else None."""
    stripped = cell.lstrip()
    first, _, body = stripped.partition("\n")
    if first.split(maxsplit=1)[:1] != ["%%track"]:
        return None
    return first[len("%%track") :].strip(), body
