"""``berry probe``: simulated deep networks, one per rule, their verdicts as a table and a picture."""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

from berry.cli._common import CommandError, emit, note, positive_number
from berry.cli._files import Target, check_target, write_atomically

__all__ = ["DEFAULT_PLOT", "add_arguments", "command"]

#: The picture's default path: berry's own output, replaced on every run (an explicit --plot needs --force).
DEFAULT_PLOT = "berry-probe.png"


def _number_or_auto(text: str) -> float | str:
    """A number, or the word 'auto'."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inits", default=None, metavar="RULES",
                        help="comma-separated rules or structural initializers to compare "
                             "(default: every built-in rule, see berry list)")
    parser.add_argument("--depth", type=int, default=50, help="number of layers")
    parser.add_argument("--width", type=int, default=None, help="units per layer (default 256; conv: 64 channels)")
    parser.add_argument("--activation", default="relu", help="e.g. relu, tanh, selu, gelu, linear (berry list)")
    parser.add_argument("--param", type=float, default=None, help="the activation's slope or alpha, if it has one")
    parser.add_argument("--distribution", default="normal", help="normal, truncated_normal or uniform")
    parser.add_argument("--residual", action="store_true", help="pre-activation residual blocks h + s f(h) W")
    parser.add_argument("--branch-scale", type=_number_or_auto, default=None, metavar="S",
                        help="residual branch scale s: a number, or 'auto' for 1/sqrt(depth) (implies --residual; "
                             "default 1)")
    parser.add_argument("--arch", default="mlp", help="mlp, or conv (3x3 circular convolutions on 8x8 images)")
    parser.add_argument("--batch-size", type=int, default=None, help="inputs per batch (default 128; conv: 8)")
    parser.add_argument("--seed", type=int, default=0, help="the key of every draw, in [0, 2**64)")
    parser.add_argument("--gain", type=_number_or_auto, default=1.0,
                        help="multiplier of every rule's std, or 'auto': the activation's gain (berry gain)")
    parser.add_argument("--dtype", default="float32", help="float32 (as in training) or float64")
    parser.add_argument("--layers", action="store_true", help="also print every layer's statistics")
    parser.add_argument("--max-memory", type=positive_number, default=None, metavar="GIB",
                        help="refuse a probe estimated to need more (default: the memory available now)")
    parser.add_argument("--plot", default=None, metavar="FILE",
                        help=f"where to draw the picture: .png, .svg, .pdf... (default {DEFAULT_PLOT}, replaced on "
                             "every run; an existing FILE needs --force; needs berry[plot])")
    parser.add_argument("--no-plot", action="store_true", help="draw no picture")
    parser.add_argument("--force", action="store_true", help="replace an existing --plot FILE")


def _plot_target(args: argparse.Namespace) -> tuple[Target | None, str | None, str | None]:
    """The picture's checked target and format, or a note saying why the default picture is skipped."""
    if args.no_plot and args.plot is not None:
        raise CommandError("--plot and --no-plot contradict each other; give one")
    if args.no_plot:
        return None, None, None
    explicit = args.plot is not None
    path = args.plot if explicit else DEFAULT_PLOT
    try:
        from berry.probe.plot import supported_formats

        formats = supported_formats()
        file_format = os.path.splitext(path)[1].lower().lstrip(".")
        if file_format not in formats:
            raise CommandError(f"--plot {path!r}: the picture's format comes from its extension, one of "
                               f"{', '.join('.' + f for f in sorted(formats))}")
        return check_target(path, option="--plot", force=args.force, replace_existing=not explicit), file_format, None
    except ImportError as error:
        if explicit:
            raise CommandError(str(error)) from None
        return None, None, f"no plot drawn: {error}"  # the default picture is a bonus; the table still stands
    except CommandError as error:
        if explicit:
            raise
        return None, None, f"no plot drawn: {error}"


def command(args: argparse.Namespace) -> int:
    if "numpy" not in sys.modules:
        # The probe multiplies small matrices, where BLAS threads cost more than they give (and collapse
        # on a busy machine); a user's own setting wins.
        for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(variable, "1")
    from berry import probe

    target, file_format, skipped = _plot_target(args)  # before the work: a bad path fails in a second, not after
    inits = [name.strip() for name in args.inits.split(",") if name.strip()] if args.inits else None
    branch_scale = args.branch_scale
    if branch_scale == "auto":
        branch_scale = 1 / math.sqrt(args.depth) if args.depth > 0 else None
    try:
        report = probe.run(
            inits,
            depth=args.depth,
            width=args.width,
            activation=args.activation,
            param=args.param,
            distribution=args.distribution,
            residual=args.residual or branch_scale is not None,
            branch_scale=branch_scale,
            arch=args.arch,
            batch_size=args.batch_size,
            seed=args.seed,
            gain=args.gain,
            dtype=args.dtype,
            max_memory=None if args.max_memory is None else args.max_memory * 2**30,
        )
    except MemoryError as error:
        raise CommandError(str(error) or "out of memory; lower --width, --batch-size or --depth") from None
    if target is not None:
        figure = report.plot(None)
        write_atomically(target, lambda stream: _save(figure, stream, file_format))
    payload: dict[str, Any] = {**report.to_dict(), "plot": None if target is None else target.path}
    table = report.table(layers=args.layers)
    if target is not None:
        table += f"\nplot: {target.path}"
    emit(args, payload, table)
    if skipped is not None:
        note("probe", skipped)
    return 0


def _save(figure: Any, stream: Any, file_format: str | None) -> None:
    figure.savefig(stream, format=file_format, dpi=150)
