"""Device kernels: the stream's elementwise laws on a GPU, the same bits as the host.

The kernel itself is Triton source (:mod:`berry._device._kernel`); this module plans its launches and
loads it, and imports neither Triton nor any framework until a kernel is asked for. Framework adapters
(:mod:`berry.torch._device`) turn a tensor into an output pointer and call :func:`launches` and
:func:`kernel`.

Two flavours of the same source, side by side in one process:

- ``kernel(interpret=False)``: the ``triton.jit`` kernel, compiled for the GPU on first launch;
- ``kernel(interpret=True)``: the same functions under Triton's interpreter (what ``TRITON_INTERPRET=1``
  gives), which runs on CPU tensors with NumPy and is how the bits are checked on machines without a GPU.

Triton decides between them when a function is decorated, so each flavour is its own copy of the module,
loaded with Triton's ``interpret`` switch set accordingly (the environment is left as it was).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
import os
import struct
import sys
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from berry import _recipe
from berry._stream_numpy import KernelParams, Layout

__all__ = ["MAX_OUTER_AXES", "Launch", "kernel", "launches", "triton_available"]

MAX_OUTER_AXES = 4  # outer axes the kernel decomposes itself; more are looped over on the host
DEFAULT_BLOCK = 1024  # values per program
MIN_BLOCK = 64
MAX_PROGRAMS = 2**31 - 1  # CUDA's limit on a grid's x dimension

_KERNEL_SOURCE = os.path.join(os.path.dirname(__file__), "_kernel.py")
_LOAD_LOCK = threading.Lock()


@functools.cache
def triton_available() -> bool:
    """Whether Triton is installed (found without importing it)."""
    return importlib.util.find_spec("triton") is not None


@functools.cache
def _kernel_module(interpret: bool) -> ModuleType:
    """A copy of :mod:`berry._device._kernel` decorated for the interpreter or for compilation."""
    from triton import knobs

    name = f"berry._device._kernel_{'interpreted' if interpret else 'compiled'}"
    spec = importlib.util.spec_from_file_location(name, _KERNEL_SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with _LOAD_LOCK:
        saved = os.environ.get("TRITON_INTERPRET")
        knobs.runtime.interpret = interpret  # read by triton.jit as the module's functions are decorated
        try:
            sys.modules[name] = module  # the interpreter and the compiler read the functions' source
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        finally:
            del knobs.runtime.interpret
            if saved is None:
                os.environ.pop("TRITON_INTERPRET", None)
            else:
                os.environ["TRITON_INTERPRET"] = saved
    return module


def kernel(*, interpret: bool) -> Any:
    """The Triton fill kernel: compiled for the GPU, or run by Triton's interpreter on CPU tensors.

    Raises ``ImportError`` when Triton is not installed.
    """
    return _kernel_module(bool(interpret)).fill_kernel


@dataclasses.dataclass(frozen=True)
class Launch:
    """One launch of the fill kernel: ``programs`` programs writing from output position ``out_offset``."""

    programs: int
    out_offset: int  # flat position in the region's output where this launch's rows begin
    args: tuple[int, ...]  # the kernel's scalar arguments after the output pointer, in order
    constants: dict[str, int]  # its constexpr arguments


def _bits(value: float) -> int:
    """The IEEE bits of a float64 as a signed 64-bit integer (how float parameters reach the kernel)."""
    return int(struct.unpack("<q", struct.pack("<d", float(value)))[0])


def _block_size(run: int, words: int, block: int | None) -> int:
    if block is not None:
        if block < words or block & (block - 1):
            raise ValueError(f"block must be a power of two >= {words}, got {block!r}")
        return block
    # A row needs at most run + words - 1 positions (its start rounded down to a Philox block).
    return max(MIN_BLOCK, min(DEFAULT_BLOCK, 1 << max(0, (run + words - 2).bit_length())))


def launches(
    params: KernelParams, *, dtype: str, key: int, layout: Layout, block: int | None = None
) -> Iterator[Launch]:
    """The launches that fill a region (``layout``) of the keyed tensor ``key`` with ``params``' law.

    ``params`` and ``layout`` are what :func:`berry.stream.fill` gives its kernels for the same law,
    dtype and region, so the device writes what the host would. Regions with more than
    :data:`MAX_OUTER_AXES` outer axes take one launch per index of the extra outermost axes; grids
    beyond :data:`MAX_PROGRAMS` programs are split.
    """
    words = 4 if params.transform == _recipe.TRANSFORM_F32 else 2
    block = _block_size(layout.run, words, block)
    chunks = -(-(layout.run + words - 1) // block)
    extra = len(layout.counts) - MAX_OUTER_AXES
    looped_counts, looped_strides = layout.counts[: max(extra, 0)], layout.strides[: max(extra, 0)]
    inner_counts, inner_strides = layout.counts[max(extra, 0) :], layout.strides[max(extra, 0) :]
    rows = math.prod(inner_counts)
    # The kernel takes the innermost outer axis first; unused slots are (1, 0).
    outer: list[int] = []
    for count, stride in [*zip(reversed(inner_counts), reversed(inner_strides), strict=True)]:
        outer += [count, stride]
    outer += [1, 0] * (MAX_OUTER_AXES - len(inner_counts))
    law_args = [
        _bits(params.offset), _bits(params.factor), _bits(params.low), _bits(params.high),
        _bits(params.pa), _bits(params.width), _bits(params.qb),
        _bits(params.lower_base), _bits(params.lower_step), _bits(params.upper_base), _bits(params.upper_step),
    ]  # fmt: skip
    constants = {
        "DTYPE": _recipe.DTYPE_CODES[dtype],
        "LAW": params.law,
        "TRANSFORM": params.transform,
        "AFFINE32": params.affine32,
        "COMPLEMENT": params.complement,
        "UPPER_POSITIVE": int(params.upper_sign > 0),
        "N_OUTER": len(inner_counts),
        "WORDS": words,
        "BLOCK": block,
    }
    programs = rows * chunks
    for looped in _indices(looped_counts):
        base = layout.base + sum(i * s for i, s in zip(looped, looped_strides, strict=True))
        out_offset = _flat(looped, looped_counts) * rows * layout.run
        for pid_base in range(0, programs, MAX_PROGRAMS):
            args = (pid_base, base, layout.run, chunks, *outer, key & 0xFFFFFFFF, key >> 32, *law_args)
            yield Launch(min(MAX_PROGRAMS, programs - pid_base), out_offset, args, constants)


def _indices(counts: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    """Every index tuple of a box of ``counts`` (one empty tuple when there are no axes), in C order."""
    if not counts:
        yield ()
        return
    for first in range(counts[0]):
        for rest in _indices(counts[1:]):
            yield (first, *rest)


def _flat(index: tuple[int, ...], counts: tuple[int, ...]) -> int:
    flat = 0
    for i, count in zip(index, counts, strict=True):
        flat = flat * count + i
    return flat
