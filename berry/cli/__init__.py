"""The ``berry`` command.

Each subcommand lives in its own module and registers its options here in
:func:`build_parser`; every one prints an aligned table by default and JSON
with ``--json``. Exit status: 0 on success, 2 for a bad argument (one line
on stderr, ``berry COMMAND: error: ...``, and the subcommand's usage for an
unknown option), 1 when a file cannot be written, 128 + N when signal N
(SIGINT 130, SIGTERM 143, SIGHUP 129) interrupts a write (nothing is left
behind), and 141 when the reader of the output goes away (``| head``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from berry.cli import _lookup, _probe, _sample
from berry.cli._common import CommandError, HelpFormatter
from berry.cli._files import Interrupted

__all__ = ["build_parser", "main"]


class _VersionAction(argparse.Action):
    """``--version``: berry's version, the stream backend and its SIMD path (computed only when asked)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: str | None = None) -> None:
        print(_lookup.version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="berry",
        description="Weight initialization for deep networks: scale rules, gains, keyed sampling, diagnostics.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction,
                        help="print berry's version, the stream backend (C kernel and SIMD path, or NumPy) and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        return sub

    _lookup.add_list(command("list", "list the scale rules, structural initializers and activations"))
    _lookup.add_std(command("std", "standard deviation a rule gives for a shape or explicit fans"))
    _lookup.add_gain(command("gain", "variance-preserving gain of an activation (and torch's table value)"))
    probe = command("probe", "watch the signal and its gradient explode or vanish through a deep network, per rule, "
                             "or through your model before and after auto_init (--model)")
    _probe.add_arguments(probe)
    probe.set_defaults(handler=_probe.command)
    sample = command("sample", "sample a tensor reproducibly and write it to .npy or .safetensors, streaming")
    _sample.add_arguments(sample)
    sample.set_defaults(handler=_sample.command)
    _lookup.add_info(command("info", "berry's version, stream backend, SIMD path, threads and installed extras"))
    parser.set_defaults(subparsers=commands.choices)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; an unknown option is reported with the usage of the subcommand it was given to."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        target = args.subparsers.get(args.command, parser) if args.command else parser
        target.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so that the interpreter's final flush is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = _parse(parser, argv)
        if args.command is None:
            parser.print_help()
            return 0
        try:
            return int(args.handler(args))
        except (ValueError, TypeError, CommandError) as error:
            print(f"berry {args.command}: error: {error}", file=sys.stderr)
            return error.status if isinstance(error, CommandError) else 2
        except Interrupted as interrupt:
            target = f" to {args.out}" if getattr(args, "out", None) else ""
            print(f"berry {args.command}: interrupted by {interrupt.name}; nothing was written{target}",
                  file=sys.stderr)
            return interrupt.status
        except KeyboardInterrupt:  # Ctrl-C before any file was opened
            print(f"berry {args.command}: interrupted", file=sys.stderr)
            return 130
        finally:
            sys.stdout.flush()  # inside the try: a reader that went away shows here, not at exit
    except BrokenPipeError:
        _silence_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a command whose reader went away


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
