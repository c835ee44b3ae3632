"""What every subcommand shares: the error type, output (table or JSON), argument parsers, help text."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

__all__ = ["CommandError", "HelpFormatter", "emit", "parse_shape", "plain_text", "positive_number", "size_text"]


class CommandError(Exception):
    """A user error: printed as one line on stderr (``berry COMMAND: error: ...``), then ``status``."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def emit(args: argparse.Namespace, payload: Any, table: str) -> None:
    """Print ``payload`` as JSON with ``--json``, else the readable ``table``."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, sort_keys=True))
    else:
        print(table)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, with ``(default: X)`` after every option whose default means something.

    An option whose default lives elsewhere (``berry sample``'s InitSpec fields) carries a
    ``default_from`` callable, read only when help is shown: building the parser imports nothing.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default_from = getattr(action, "default_from", None)
        if default_from is not None:
            shown = default_from()
            return text if shown is None else f"{text} (default: {shown})"
        default = action.default
        if ("%(default)" in text or "default" in text.lower() or not action.option_strings
                or any(default is nothing for nothing in (None, False, argparse.SUPPRESS))):
            return text
        return f"{text} (default: %(default)s)"


def parse_shape(text: str) -> tuple[int, ...]:
    """'1500,500', '1500x500' or '[1500, 500]' -> (1500, 500); '()' is a scalar; every dimension >= 0."""
    cleaned = text.strip()
    if cleaned in ("()", "[]"):
        return ()
    parts = [part.strip() for part in cleaned.strip("[]()").replace("x", ",").replace("X", ",").split(",")]
    if not cleaned or not all(parts):
        raise argparse.ArgumentTypeError(
            f"shape must be integers separated by ',' or 'x' (e.g. 1500,500; '()' for a scalar), got {text!r}"
        )
    try:
        dims = tuple(int(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"shape must be integers separated by ',' or 'x' (e.g. 1500,500), got {text!r}"
        ) from None
    negative = [dim for dim in dims if dim < 0]
    if negative:
        raise argparse.ArgumentTypeError(f"shape {text!r} has a negative dimension ({negative[0]}); "
                                         "dimensions must be >= 0")
    return dims


def positive_number(text: str) -> float:
    """A finite number > 0 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain_text(text: str) -> str:
    """reStructuredText inline markup as plain text: ``x`` -> x, :func:`berry.he` -> berry.he."""
    return _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text))


def size_text(count: float) -> str:
    """Bytes as KiB, MiB or GiB with three significant digits."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{int(count)} bytes"


def note(command: str, message: str) -> None:
    """A remark on stderr that is not an error."""
    print(f"berry {command}: note: {message}", file=sys.stderr)
