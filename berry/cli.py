"""The ``berry`` command.

Each subcommand is a function ``_cmd_<name>(args) -> int`` registered in
:func:`build_parser`; every one prints an aligned table by default and JSON
with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from berry._version import __version__

__all__ = ["build_parser", "main"]


class CommandError(Exception):
    """A user error: printed as one line on stderr, exit status 2."""


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """Rows as a table with columns aligned (numbers right, text left)."""
    cells = [[str(h) for h in header]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_is_number(row[i]) for row in rows) and bool(rows) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def emit(args: argparse.Namespace, payload: Any, table: str) -> None:
    """Print ``payload`` as JSON with ``--json``, else the readable ``table``."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, sort_keys=True))
    else:
        print(table)


def _parse_shape(text: str) -> tuple[int, ...]:
    """'1500,500' or '1500x500' or '[1500, 500]' -> (1500, 500)."""
    cleaned = text.strip().strip("[]()").replace("x", ",").replace("X", ",")
    try:
        return tuple(int(part) for part in cleaned.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"shape must be integers separated by ',' or 'x' (e.g. 1500,500), got {text!r}"
        ) from None


# --- subcommands -------------------------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> int:
    from berry.initializations import aliases_of, list_initializations

    rules = list_initializations(aliases=False)
    rows = []
    for name, rule in sorted(rules.items()):
        summary = (rule.__doc__ or "").strip().splitlines()[0] if rule.__doc__ else ""
        rows.append((name, ", ".join(aliases_of(name)) or "-", summary))
    payload = [{"name": n, "aliases": aliases_of(n), "summary": s} for n, _, s in rows]
    emit(args, payload, format_table(rows, ("rule", "aliases", "summary")))
    return 0


def _cmd_std(args: argparse.Namespace) -> int:
    from berry.fans import fans_for
    from berry.initializations import get_initialization

    rule = get_initialization(args.rule)
    fan_options: dict[str, Any] = {"layout": args.layout, "groups": args.groups}
    fans = fans_for(args.shape, args.fan_in, args.fan_out, **fan_options)
    std = rule(shape=args.shape, fan_in=args.fan_in, fan_out=args.fan_out, gain=args.gain, **fan_options)
    payload = {
        "rule": args.rule,
        "shape": list(args.shape) if args.shape is not None else None,
        "layout": args.layout,
        "fan_in": fans.fan_in,
        "fan_out": fans.fan_out,
        "gain": args.gain,
        "std": std,
    }
    rows = [(k, "-" if v is None else v) for k, v in payload.items()]
    emit(args, payload, format_table(rows, ("quantity", "value")))
    return 0


def _cmd_gain(args: argparse.Namespace) -> int:
    from berry.gains import calculate_gain, gain

    exact = gain(args.activation, args.param)
    try:
        torch_table: float | None = calculate_gain(args.activation, args.param)
    except ValueError:
        torch_table = None  # torch tabulates only a few activations
    payload = {"activation": args.activation, "param": args.param, "gain": exact, "torch_gain": torch_table}
    rows = [
        ("activation", args.activation),
        ("variance-preserving gain", exact),
        ("torch.nn.init.calculate_gain", "not tabulated" if torch_table is None else torch_table),
    ]
    emit(args, payload, format_table(rows, ("quantity", "value")))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="berry",
        description="Weight initialization for deep networks: scale rules, gains, keyed sampling, diagnostics.",
    )
    parser.add_argument("--version", action="version", version=f"berry {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        return sub

    listing = command("list", "list the scale rules and their aliases")
    listing.set_defaults(handler=_cmd_list)

    std = command("std", "standard deviation a rule gives for a shape or explicit fans")
    std.add_argument("rule", help="rule name, e.g. xavier, deepnet, he, lecun")
    std.add_argument("--shape", type=_parse_shape, default=None, help="weight shape, e.g. 1500,500")
    std.add_argument("--fan-in", type=int, default=None)
    std.add_argument("--fan-out", type=int, default=None)
    std.add_argument("--layout", default="channels_last", help="channels_last (..., in, out) or torch (out, in, *k)")
    std.add_argument("--groups", type=int, default=1)
    std.add_argument("--gain", type=float, default=1.0)
    std.set_defaults(handler=_cmd_std)

    gain = command("gain", "variance-preserving gain of an activation (and torch's table value)")
    gain.add_argument("activation", help="e.g. relu, tanh, gelu, silu, selu, leaky_relu")
    gain.add_argument("--param", type=float, default=None, help="slope or alpha, where the activation has one")
    gain.set_defaults(handler=_cmd_gain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.handler(args))
    except (ValueError, TypeError, CommandError) as error:
        print(f"berry {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
