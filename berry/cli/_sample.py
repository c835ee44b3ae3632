"""``berry sample``: validate everything, then stream a tensor to .npy or .safetensors, then report it.

Three steps, each its own function: :func:`validate` checks every argument,
the output path and the free space, and computes the first block of values
(which checks the initializer against the shape) before the disk is touched;
:func:`write` streams the tensor to a temporary file region by region and
moves it into place (see :mod:`berry.cli._files`); :func:`report` prints what
was written. Elementwise initializers are generated in regions of at most
32 MiB whatever the tensor's size; the whole-matrix initializers
(orthogonal, delta-orthogonal: see :mod:`berry.distributions`) are computed
once, whole, and written out in the same regions.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from berry._format import format_table
from berry.cli._common import CommandError, emit
from berry.cli._files import Target, check_target, write_atomically

if TYPE_CHECKING:  # NumPy is imported when a command runs: `berry probe` sets BLAS threads first
    import numpy as np

__all__ = ["add_arguments", "command", "report", "validate", "write"]

# Bytes of output generated per region: bounds the memory whatever the tensor's size.
CHUNK_BYTES = 32 * 2**20
FORMATS = {".npy": "npy", ".safetensors": "safetensors"}
SAFETENSORS_DTYPES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64"}
# The header key safetensors reserves for the file's metadata: a tensor cannot be stored under it.
SAFETENSORS_METADATA = "__metadata__"
# berry.distributions' whole-matrix family: a region of them costs the whole matrix, so compute it once.
WHOLE_MATRIX_KINDS = ("orthogonal", "delta_orthogonal")
# Initializers whose values come from the keyed stream (the others are deterministic: eye, zeros, ...).
DRAWN_KINDS = ("rule", "orthogonal", "delta_orthogonal", "sparse")
# Options that fill InitSpec fields: (field, flags, argparse keywords, help). Defaults come from InitSpec.
_SPEC_OPTIONS: tuple[tuple[str, str, dict[str, Any], str], ...] = (
    ("init", "--init", {}, "a rule (xavier, he, lecun, ...; see berry list) or a structural initializer: "
                           "orthogonal, delta_orthogonal, eye, dirac, sparse, zeros, ones, constant"),
    ("distribution", "--distribution", {}, "normal, truncated_normal or uniform (+-sqrt(3) std)"),
    ("dtype", "--dtype", {}, "float32, float64, float16 or bfloat16 (bfloat16: .safetensors only)"),
    ("gain", "--gain", {"type": float}, "multiplier of the rule's std (or of orthogonal, eye, dirac values)"),
    ("std", "--std", {"type": float}, "a std that replaces the rule's (e.g. --std 0.02); default: the rule's"),
    ("mean", "--mean", {"type": float}, "location of the normal, truncated normal or uniform"),
    ("fan_in", "--fan-in", {"type": int}, "the rule's fan-in; default: from the shape and --layout"),
    ("fan_out", "--fan-out", {"type": int}, "the rule's fan-out; default: from the shape and --layout"),
    ("layout", "--layout", {}, "channels_last (..., in, out) or torch (out, in, *kernel): where the fans and "
                               "the structural initializers' axes are"),
    ("groups", "--groups", {"type": int}, "convolution groups (fans and dirac)"),
    ("bounds", "--bounds", {"type": lambda text: _pair(text, "--bounds")},
     "truncation bounds A,B in units of the std, for truncated_normal (write --bounds=-3,3)"),
    ("correct_variance", "--no-correct-variance", {"action": "store_const", "const": False},
     "truncated_normal: the parent normal has the rule's std (as torch's trunc_normal_), not the samples"),
    ("low", "--low", {"type": float}, "absolute lower bound of the uniform (with --high; replaces the rule)"),
    ("high", "--high", {"type": float}, "absolute upper bound of the uniform (with --low)"),
    ("sparsity", "--sparsity", {"type": float}, "init sparse: the fraction of zeros in each column"),
    ("value", "--value", {"type": float}, "init constant: the fill value"),
)


def _pair(text: str, option: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        low, high = (float(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{option} needs two numbers A,B (e.g. -2,2 or -inf,3), got {text!r}") from None
    return low, high


def _spec_default(field: str) -> Any:
    from berry.sampling import InitSpec

    value = {f.name: f.default for f in dataclasses.fields(InitSpec)}[field]
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" for v in value)
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``berry sample``'s options; every :class:`berry.InitSpec` field has one, with InitSpec's default."""
    parser.add_argument("shape", type=_shape_argument, help="the tensor's shape, e.g. 4096,4096 or 4096x4096")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="FILE.npy or FILE.safetensors; through a symbolic link, the file it points to")
    parser.add_argument("--force", action="store_true", help="replace FILE if it exists")
    parser.add_argument("--seed", type=int, default=0, help="the key's seed, in [0, 2**64)")
    parser.add_argument("--name", default=None,
                        help="the parameter's name, part of the key (and the .safetensors key); required when "
                             "values are drawn, so that two tensors never share a stream by accident")
    for field, flag, keywords, text in _SPEC_OPTIONS:
        action = parser.add_argument(flag, dest=field, default=None, help=text, **keywords)
        if field != "correct_variance":  # a switch: its help says what it does
            action.default_from = functools.partial(_spec_default, field)  # type: ignore[attr-defined]


def _shape_argument(text: str) -> tuple[int, ...]:
    from berry.cli._common import parse_shape

    return parse_shape(text)


@dataclass(frozen=True)
class SampleJob:
    """A validated ``berry sample`` request: everything :func:`write` needs, and nothing left to check."""

    target: Target
    file_format: str
    shape: tuple[int, ...]
    spec: Any  # berry.InitSpec
    dtype: np.dtype
    seed: int
    name: str
    key: str | None  # the tensor's key in a .safetensors file
    header: bytes
    first_block: np.ndarray | None  # the first region's values (or the whole tensor for whole-matrix kinds)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def dtype_name(self) -> str:
        return "bfloat16" if self.dtype.name == "bfloat16" else self.dtype.name

    @property
    def whole(self) -> bool:
        return self.spec.kind in WHOLE_MATRIX_KINDS


def regions(shape: tuple[int, ...], itemsize: int, budget: int) -> Iterator[tuple[slice, ...]]:
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


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _safetensors_header(key: str, shape: tuple[int, ...], dtype_name: str, nbytes: int,
                        metadata: dict[str, str]) -> bytes:
    """The safetensors preamble: 8-byte little-endian length, then the JSON header padded to 8 bytes."""
    entry = {"dtype": SAFETENSORS_DTYPES[dtype_name], "shape": list(shape), "data_offsets": [0, nbytes]}
    text = json.dumps({SAFETENSORS_METADATA: metadata, key: entry}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


def _build_spec(args: argparse.Namespace) -> Any:
    from berry.sampling import InitSpec

    given = {field: getattr(args, field) for field, *_ in _SPEC_OPTIONS if getattr(args, field) is not None}
    if str(given.get("init", "")).lower() in ("normal", "truncated_normal", "uniform"):
        raise CommandError(
            f"--init {given['init']} names a distribution, not an initializer: use --distribution "
            f"{given['init']} (normal is the default) with a rule (--init he) or a fixed --std, "
            "e.g. berry sample 768,768 --std 0.02 --name w --out w.npy"
        )
    try:
        return InitSpec(**given)
    except ImportError as error:  # an optional extra (ml_dtypes for bfloat16): the message names it
        raise CommandError(str(error)) from None


def _check_name(name: str | None, kind: str, file_format: str) -> tuple[str, str | None]:
    """The stream name, and the .safetensors key (the name, or 'weight' without one)."""
    if name is None:
        if kind in DRAWN_KINDS:
            raise CommandError(
                "--name is required: the values are keyed by (seed, name), so two tensors sampled without a "
                "name would be identical; give the parameter's name (e.g. --name layer1.weight), or "
                "--name '' to use the empty name on purpose"
            )
        name = ""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise CommandError(f"--name {name!r} is not valid UTF-8 text; names are hashed and stored as UTF-8") from None
    if file_format != "safetensors":
        return name, None
    key = name or "weight"
    if key == SAFETENSORS_METADATA:
        raise CommandError(f"--name {key!r} is the key safetensors reserves for a file's metadata; "
                           "a tensor cannot be stored under it: choose another name")
    return name, key


def validate(args: argparse.Namespace) -> SampleJob:
    """Check every argument, the output path and the free space, and compute the first values; write nothing."""
    import numpy as np

    from berry import stream

    path = args.out
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FORMATS:
        raise CommandError(f"--out {path!r} must end in .npy or .safetensors (the format comes from the extension)")
    file_format = FORMATS[suffix]
    spec = _build_spec(args)
    dtype = np.dtype(spec.dtype) if spec.dtype != "bfloat16" else _bfloat16()
    if file_format == "npy" and spec.dtype == "bfloat16":
        raise CommandError("--dtype bfloat16 cannot be stored in .npy (NumPy has no bfloat16); use a .safetensors file")
    name, key = _check_name(args.name, spec.kind, file_format)
    stream.key_for(args.seed, name)  # the seed's range is checked even where nothing is drawn
    shape = args.shape
    nbytes = math.prod(shape) * dtype.itemsize
    dtype_name = "bfloat16" if dtype.name == "bfloat16" else dtype.name
    if file_format == "npy":
        header = _npy_header(shape, dtype)
    else:
        assert key is not None
        metadata = {"format": "pt", "berry.spec": spec.to_json(), "berry.seed": str(args.seed), "berry.name": name}
        header = _safetensors_header(key, shape, dtype_name, nbytes, metadata)
    target = check_target(path, option="--out", force=args.force, needs_bytes=len(header) + nbytes)
    # The first values: they check the initializer against the shape (rank, channels) before any writing.
    if spec.kind in WHOLE_MATRIX_KINDS or 0 in shape:
        first = spec(shape, seed=args.seed, name=name)
    else:
        first = spec(shape, seed=args.seed, name=name, region=next(regions(shape, dtype.itemsize, CHUNK_BYTES)))
    return SampleJob(target, file_format, shape, spec, dtype, args.seed, name, key, header, first)


def _bfloat16() -> np.dtype:
    import ml_dtypes
    import numpy as np

    return np.dtype(ml_dtypes.bfloat16)


class Progress:
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


def _blocks(job: SampleJob) -> Iterator[np.ndarray]:
    """The tensor's values in C order, region by region (the first region was computed by validate)."""
    boxes = regions(job.shape, job.dtype.itemsize, CHUNK_BYTES)
    if job.whole:
        assert job.first_block is not None
        for box in boxes:
            yield job.first_block[box]
        return
    for index, box in enumerate(boxes):
        if index == 0 and job.first_block is not None:
            yield job.first_block
        else:
            yield job.spec(job.shape, seed=job.seed, name=job.name, region=box or None)


def write(job: SampleJob) -> str:
    """Stream the tensor to a temporary file and move it onto the target; the data's SHA-256."""
    import numpy as np

    digest = hashlib.sha256()
    progress = Progress(job.nbytes, f"berry sample {os.path.basename(job.target.path)}")

    def fill(stream: BinaryIO) -> None:
        stream.write(job.header)
        for block in _blocks(job):
            if sys.byteorder != "little":  # both formats store little-endian data
                block = block.byteswap()
            data = np.ascontiguousarray(block).reshape(-1).view(np.uint8).data
            stream.write(data)
            digest.update(data)
            progress.update(len(data))

    try:
        write_atomically(job.target, fill)
    finally:
        progress.close()
    return digest.hexdigest()


def report(args: argparse.Namespace, job: SampleJob, sha256: str) -> None:
    """Print what was written: a table of the file's facts, or JSON with ``--json``."""
    kind = job.spec.kind
    spec_dict = job.spec.to_dict()
    absolute = job.spec.low is not None and job.spec.distribution == "uniform"
    has_scale = kind in ("rule", "sparse") and 0 not in job.shape and not absolute
    payload = {
        "path": job.target.path,
        "file": job.target.real if job.target.through_link else None,
        "format": job.file_format,
        "shape": list(job.shape),
        "dtype": job.dtype_name,
        "init": spec_dict["init"],
        "distribution": job.spec.distribution if kind in ("rule", "sparse") else None,
        "seed": job.seed,
        "name": job.name,
        "key": job.key,
        "std": job.spec.scale(job.shape) if has_scale else None,
        "value": job.spec.value if kind == "constant" else None,
        "low": job.spec.low if absolute else None,
        "high": job.spec.high if absolute else None,
        "bytes": len(job.header) + job.nbytes,
        "data_sha256": sha256,
    }
    cells = dict(payload, name=repr(job.name))  # '' shows as '' rather than as nothing
    if kind == "rule" and job.spec.std is not None:
        cells["init"] = f"{payload['init']}, its std replaced by --std"
    labels = {"file": "written to (the link's target)", "key": "safetensors key"}
    rows = [(labels.get(field, field), value) for field, value in cells.items() if value is not None]
    emit(args, payload, format_table(rows, ("quantity", "value")))


def command(args: argparse.Namespace) -> int:
    job = validate(args)
    sha256 = write(job)
    report(args, job, sha256)
    return 0
