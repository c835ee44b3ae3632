"""The ``berry`` command.

Each subcommand is a function ``_cmd_<name>(args) -> int`` registered in
:func:`build_parser`; every one prints an aligned table by default and JSON
with ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from berry._format import format_table
from berry._version import __version__

__all__ = ["build_parser", "main"]


class CommandError(Exception):
    """A user error: printed as one line on stderr, exit status 2."""


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


def _number_or_auto(text: str) -> float | str:
    """A number, or the word 'auto'."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


_DEFAULT_PROBE_PLOT = "berry-probe.png"


def _cmd_probe(args: argparse.Namespace) -> int:
    if "numpy" not in sys.modules:
        # The probe multiplies small matrices, where BLAS threads cost more than they give (and collapse
        # on a busy machine); a user's own setting wins.
        for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(variable, "1")
    from berry import probe

    if args.no_plot and args.plot is not None:
        raise CommandError("--plot and --no-plot contradict each other; give one")
    inits = [name.strip() for name in args.inits.split(",") if name.strip()] if args.inits else None
    branch_scale = args.branch_scale
    if branch_scale == "auto":
        branch_scale = 1 / math.sqrt(args.depth) if args.depth > 0 else None
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
    )
    plot_path = None if args.no_plot else (args.plot or _DEFAULT_PROBE_PLOT)
    note = None
    if plot_path is not None:
        try:
            report.plot(plot_path)
        except ImportError as error:
            if args.plot is not None:
                raise CommandError(str(error)) from None
            note = f"no plot drawn: {error}"  # the default picture is a bonus; the table still stands
            plot_path = None
        except OSError as error:
            raise CommandError(f"cannot write the plot to {plot_path}: {error.strerror or error}") from None
    payload = {**report.to_dict(), "plot": plot_path}
    table = report.table(layers=args.layers)
    if plot_path is not None:
        table += f"\nplot: {plot_path}"
    emit(args, payload, table)
    if note is not None:
        print(f"berry probe: note: {note}", file=sys.stderr)
    return 0


# --- berry sample: stream a tensor to .npy or .safetensors ----------------------------------------

# Bytes of output generated per region: bounds the memory whatever the tensor's size.
_SAMPLE_CHUNK_BYTES = 32 * 2**20
_SAMPLE_FORMATS = {".npy": "npy", ".safetensors": "safetensors"}
_SAFETENSORS_DTYPES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64"}


def _sample_regions(shape: tuple[int, ...], itemsize: int, budget: int) -> Any:
    """Boxes of ``shape`` that tile it in C order, each about ``budget`` bytes at most (one row at least).

    Each box is contiguous in the C-ordered file, so the boxes are written one after another.
    """
    if 0 in shape:
        return
    if not shape:
        yield ()
        return
    # The first axis whose trailing block fits the budget is cut in steps; the axes before it one by one.
    axis = 0
    while axis < len(shape) - 1 and math.prod(shape[axis + 1:]) * itemsize > budget:
        axis += 1
    inner = math.prod(shape[axis + 1:]) * itemsize
    step = max(1, budget // inner)
    for prefix in itertools.product(*(range(n) for n in shape[:axis])):
        for start in range(0, shape[axis], step):
            yield (
                *(slice(i, i + 1) for i in prefix),
                slice(start, min(start + step, shape[axis])),
                *(slice(0, n) for n in shape[axis + 1:]),
            )


class _Progress:
    """A progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int, label: str, stream: Any = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)()) and total > 0
        self.total, self.label, self.done, self.last_draw = total, label, 0, 0.0

    def update(self, count: int) -> None:
        self.done += count
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last_draw < 0.1 and self.done < self.total:
            return
        self.last_draw = now
        fraction = self.done / self.total
        bar = "#" * int(30 * fraction)
        self.stream.write(
            f"\r{self.label} [{bar:<30}] {100 * fraction:5.1f}%  {self.done / 2**20:,.1f}/{self.total / 2**20:,.1f} MiB"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _npy_header(shape: tuple[int, ...], dtype: Any) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _safetensors_header(key: str, shape: tuple[int, ...], dtype_name: str, nbytes: int,
                        metadata: dict[str, str]) -> bytes:
    """The safetensors preamble: 8-byte little-endian length, then the JSON header padded to 8 bytes."""
    entry = {"dtype": _SAFETENSORS_DTYPES[dtype_name], "shape": list(shape), "data_offsets": [0, nbytes]}
    text = json.dumps({"__metadata__": metadata, key: entry}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


def _write_atomically(path: str, write: Any) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then move it onto ``path``.

    An error or an interrupt removes the temporary file, so ``path`` never holds a partial tensor.
    """
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".partial", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 would make the tensor private
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _cmd_sample(args: argparse.Namespace) -> int:
    import hashlib

    import numpy as np

    from berry.sampling import InitSpec

    path = args.out
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _SAMPLE_FORMATS:
        raise CommandError(f"--out={path!r} must end in .npy or .safetensors (the format comes from the extension)")
    file_format = _SAMPLE_FORMATS[suffix]
    if os.path.isdir(path):
        raise CommandError(f"--out={path!r} is a directory; give a file name")
    if os.path.exists(path) and not args.force:
        raise CommandError(f"{path} already exists; pass --force to overwrite it")
    if file_format == "npy" and str(args.dtype).lower() == "bfloat16":
        raise CommandError("--dtype bfloat16 cannot be stored in .npy (NumPy has no bfloat16); use a .safetensors file")
    try:
        spec = InitSpec(args.init, distribution=args.distribution, dtype=args.dtype, gain=args.gain, std=args.std,
                        layout=args.layout)
    except ImportError as error:  # an optional extra (ml_dtypes for bfloat16): the message names it
        raise CommandError(str(error)) from None
    dtype = np.dtype(spec.dtype)
    dtype_name = "bfloat16" if dtype.name == "bfloat16" else dtype.name
    shape = args.shape
    nbytes = math.prod(shape) * dtype.itemsize
    key = args.name or "weight"
    if file_format == "npy":
        header = _npy_header(shape, dtype)
    else:
        metadata = {"format": "pt", "berry.spec": spec.to_json(), "berry.seed": str(args.seed),
                    "berry.name": args.name}
        header = _safetensors_header(key, shape, dtype_name, nbytes, metadata)
    digest = hashlib.sha256()
    progress = _Progress(nbytes, f"berry sample {os.path.basename(path)}")

    def write(stream: Any) -> None:
        stream.write(header)
        for region in _sample_regions(shape, dtype.itemsize, _SAMPLE_CHUNK_BYTES):
            block = spec(shape, seed=args.seed, name=args.name, region=region or None)
            if sys.byteorder != "little":  # both formats store little-endian data
                block = block.byteswap()
            data = np.ascontiguousarray(block).reshape(-1).view(np.uint8).data
            stream.write(data)
            digest.update(data)
            progress.update(len(data))

    try:
        _write_atomically(path, write)
    except KeyboardInterrupt:
        progress.close()
        print(f"berry sample: interrupted; nothing was written to {path}", file=sys.stderr)
        return 130
    progress.close()
    payload = {
        "path": path,
        "format": file_format,
        "shape": list(shape),
        "dtype": dtype_name,
        "init": spec.to_dict()["init"],
        "distribution": spec.distribution,
        "seed": args.seed,
        "name": args.name,
        "key": key if file_format == "safetensors" else None,
        "std": spec.scale(shape) if 0 not in shape else None,
        "bytes": len(header) + nbytes,
        "data_sha256": digest.hexdigest(),
    }
    rows = [(k, "-" if v is None else v) for k, v in payload.items()]
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

    probe = command("probe", "watch the signal and its gradient explode or vanish through a deep network, per rule")
    probe.add_argument("--inits", default=None, help="comma-separated rules to compare (default: every built-in rule)")
    probe.add_argument("--depth", type=int, default=50, help="number of layers (default 50)")
    probe.add_argument("--width", type=int, default=None, help="units per layer (default 256; conv: 64 channels)")
    probe.add_argument("--activation", default="relu", help="e.g. relu, tanh, selu, gelu, linear (default relu)")
    probe.add_argument("--param", type=float, default=None, help="the activation's slope or alpha, if it has one")
    probe.add_argument("--distribution", default="normal", help="normal, truncated_normal or uniform")
    probe.add_argument("--residual", action="store_true", help="residual blocks h + branch_scale * f(h) W")
    probe.add_argument("--branch-scale", type=_number_or_auto, default=None,
                       help="residual branch scale: a number or 'auto' for 1/sqrt(depth) (implies --residual)")
    probe.add_argument("--arch", default="mlp", help="mlp or conv (3x3 circular convolutions on 8x8 images)")
    probe.add_argument("--batch-size", type=int, default=None, help="inputs per batch (default 128; conv: 8)")
    probe.add_argument("--seed", type=int, default=0, help="key of every draw (default 0)")
    probe.add_argument("--gain", type=_number_or_auto, default=1.0,
                       help="multiplier of every rule's std, or 'auto': the activation's gain (default 1)")
    probe.add_argument("--dtype", default="float32", help="float32 (default, as in training) or float64")
    probe.add_argument("--layers", action="store_true", default=None, help="also print every layer's statistics")
    probe.add_argument("--plot", default=None, metavar="FILE.png",
                       help="where to draw the picture (default berry-probe.png; needs berry[plot])")
    probe.add_argument("--no-plot", action="store_true", help="draw no picture")
    probe.set_defaults(handler=_cmd_probe)

    sample = command("sample", "sample a tensor reproducibly and write it to .npy or .safetensors, streaming")
    sample.add_argument("shape", type=_parse_shape, help="the tensor's shape, e.g. 4096,4096 or 4096x4096")
    sample.add_argument("--init", default="xavier", help="rule (xavier, he, ...) or structural initializer (orthogonal, ...)")
    sample.add_argument("--distribution", default="normal", help="normal, truncated_normal or uniform")
    sample.add_argument("--seed", type=int, default=0, help="the key's seed (default 0)")
    sample.add_argument("--name", default="", help="the parameter's name, part of the key (default '')")
    sample.add_argument("--dtype", default="float32", help="float32, float64, float16 or bfloat16 (.safetensors)")
    sample.add_argument("--gain", type=float, default=1.0, help="multiplier of the rule's std")
    sample.add_argument("--std", type=float, default=None, help="a std that replaces the rule's")
    sample.add_argument("--layout", default="channels_last", help="channels_last (..., in, out) or torch (out, in, *k)")
    sample.add_argument("--out", required=True, metavar="FILE", help="FILE.npy or FILE.safetensors")
    sample.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    sample.set_defaults(handler=_cmd_sample)
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
