"""From berry's NumPy sampler to torch tensor memory: dtypes, devices, views and shards.

Everything that touches a tensor's storage lives here, so the initializers in
:mod:`berry.torch._nn_init` and :mod:`berry.torch._model` only say *which*
values a tensor gets, never *how* they reach it.

How values reach a tensor
-------------------------
* CPU, contiguous, float16/float32/float64: :func:`berry.sample` writes straight
  into the tensor's memory through a NumPy view (``out=``), so no full-size
  copy is ever made.
* CPU, contiguous, bfloat16: the same, through a ``uint16`` view re-read as
  ``ml_dtypes.bfloat16`` (values are computed at higher precision and rounded once).
  Without ml_dtypes the values are sampled in float32 and converted by torch,
  which rounds twice (float64 -> float32 -> bfloat16) and needs a float32
  buffer the size of the tensor.
* CUDA, elementwise laws and constants: berry's Triton kernel writes them on
  the device, the same bits as the host (:mod:`berry.torch._device`, which
  also says when it falls back to the next path).
* Non-contiguous views, other devices (and CUDA without Triton, or for the
  structural initializers) and integer tensors (for the deterministic
  initializers): the values are made in a host buffer of the tensor's size and
  copied in with ``Tensor.copy_``. On CUDA that costs one host buffer (the
  largest single tensor, not the model) plus a host-to-device copy at PCIe
  speed, about 0.05-0.1 s per GB.
* Meta tensors have no storage: every initializer is a no-op on them.
* DTensors (``torch.distributed.tensor``, also FSDP2's ``fully_shard``
  parameters): each process writes its local shard with exactly its slice of
  the global tensor, computed from the placements and the mesh coordinate;
  nothing is communicated.

Writes happen under ``torch.no_grad()`` and bump the tensor's version counter,
as an in-place torch op would, so autograd records no history and still
detects a tensor changed after it was saved for backward.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

import berry.torch._device as _device  # a module object, so tests can replace its functions
from berry._validation import check_key, resolve_dtype

if TYPE_CHECKING:
    from berry.sampling import InitSpec

Region = tuple[slice, ...]

_MASK64 = (1 << 64) - 1

#: torch dtypes NumPy can share memory with, and their NumPy twins.
_SHARED_DTYPES: dict[torch.dtype, type] = {
    torch.float16: np.float16,
    torch.float32: np.float32,
    torch.float64: np.float64,
}

def bfloat16_numpy_dtype() -> np.dtype | None:
    """``ml_dtypes.bfloat16`` if ml_dtypes is installed, else ``None``."""
    try:
        return resolve_dtype("bfloat16")
    except ImportError:
        return None


# --------------------------------------------------------------------------- keys
def draw_seed(generator: torch.Generator | None, device: torch.device) -> int:
    """A 64-bit berry seed drawn from a torch generator (or the device's default one).

    Drawing advances the generator, so successive calls get fresh values and
    ``torch.manual_seed(s)`` followed by a call equals a generator seeded with
    ``s``, exactly as for torch's own initializers.
    """
    if generator is not None:
        draw = torch.empty((), dtype=torch.int64, device=generator.device)
        return int(draw.random_(-(2**63), None, generator=generator).item()) & _MASK64
    on = device if device.type not in ("meta", "cpu") else torch.device("cpu")
    draw = torch.empty((), dtype=torch.int64, device=on)
    return int(draw.random_(-(2**63), None).item()) & _MASK64


def resolve_key(
    tensor: torch.Tensor, generator: torch.Generator | None, seed: int | None, name: str | None, *, keyed: bool = True
) -> tuple[int, str]:
    """``(seed, name)`` for :func:`berry.sample`: berry's keyed stream or a draw from torch's generator.

    With neither ``seed`` nor ``name`` the seed is drawn from torch's generator
    (fresh values per call, as torch's own initializers). With ``seed`` the
    values come from berry's keyed stream, which needs a ``name`` for random
    values (:func:`berry._validation.check_key` says why); ``name`` alone means seed 0.
    """
    if seed is None and name is None:
        return draw_seed(generator, tensor.device), ""
    if generator is not None:
        raise ValueError(
            f"give either generator= (torch's random state) or seed=/name= (berry's keyed stream), "
            f"not both; got generator={generator!r}, seed={seed!r}, name={name!r}"
        )
    return check_key(0 if seed is None else seed, name, keyed=keyed, what=f"berry.torch with seed={seed!r}")


# ------------------------------------------------------------------------ shards
def is_dtensor(tensor: Any) -> bool:
    """Whether ``tensor`` is a ``torch.distributed.tensor.DTensor`` (FSDP2 parameters are)."""
    # No DTensor can exist before its module is imported, and importing it here would cost every user.
    module = sys.modules.get("torch.distributed.tensor")
    dtensor = getattr(module, "DTensor", None)
    return dtensor is not None and isinstance(tensor, dtensor)


@dataclasses.dataclass(frozen=True)
class Placement:
    """The part of a (possibly sharded) global tensor that this process holds."""

    local: torch.Tensor  #: a plain tensor with this process's values
    global_shape: tuple[int, ...]
    start: tuple[int, ...]  #: global index of ``local[0, ..., 0]``

    @property
    def region(self) -> Region:
        return tuple(slice(s, s + n) for s, n in zip(self.start, self.local.shape, strict=True))

    @property
    def is_whole(self) -> bool:
        return tuple(self.local.shape) == self.global_shape


def locate(tensor: torch.Tensor) -> Placement:
    """Where ``tensor``'s local values sit in its global tensor (the whole of it unless a DTensor)."""
    if not is_dtensor(tensor):
        return Placement(tensor, tuple(tensor.shape), (0,) * tensor.dim())
    sharded: Any = tensor
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    placements = sharded.placements
    for placement in placements:
        # _StridedShard subclasses Shard but holds non-contiguous rows; Partial holds summands.
        if not (type(placement) is Shard or isinstance(placement, Replicate)):
            raise NotImplementedError(
                f"placements={tuple(placements)!r}: berry fills DTensors placed with Shard(dim) and "
                "Replicate(); redistribute to those placements first"
            )
    local = sharded._local_tensor  # the storage this rank owns (to_local() would add an autograd view)
    global_shape = tuple(tensor.shape)
    local_shape, offset = compute_local_shape_and_global_offset(global_shape, sharded.device_mesh, placements)
    if tuple(local.shape) != tuple(local_shape):  # pragma: no cover - would be a torch inconsistency
        raise RuntimeError(f"local shard shape {tuple(local.shape)} differs from the expected {local_shape}")
    if not offset:  # this rank is not in the mesh: nothing to write
        offset = (0,) * len(global_shape)
    return Placement(local, global_shape, tuple(int(o) for o in offset))


# ------------------------------------------------------------------------ memory
def numpy_dtype_for(tensor: torch.Tensor, *, floating_only: bool) -> np.dtype:
    """The NumPy dtype berry computes ``tensor``'s values in."""
    if tensor.dtype in _SHARED_DTYPES:
        return np.dtype(_SHARED_DTYPES[tensor.dtype])
    if tensor.dtype == torch.bfloat16:
        return bfloat16_numpy_dtype() or np.dtype(np.float32)
    if floating_only:
        raise TypeError(
            f"tensor has dtype {tensor.dtype}; random initializers fill floating tensors "
            "(torch.float16, torch.bfloat16, torch.float32, torch.float64)"
        )
    return np.dtype(np.float64)  # exact for the 0/1 values of the deterministic initializers


def _shares_memory_with_numpy(tensor: torch.Tensor, dtype: np.dtype) -> bool:
    if tensor.device.type != "cpu" or not tensor.is_contiguous():
        return False
    return tensor.dtype in _SHARED_DTYPES or (tensor.dtype == torch.bfloat16 and dtype.itemsize == 2)


@contextlib.contextmanager
def writable_array(tensor: torch.Tensor, *, floating_only: bool = True) -> Iterator[np.ndarray]:
    """A NumPy array of ``tensor``'s shape; what is written to it ends up in ``tensor``.

    It is the tensor's own memory when NumPy can share it, else a host buffer
    copied into the tensor when the block exits.
    """
    dtype = numpy_dtype_for(tensor, floating_only=floating_only)
    with torch.no_grad():
        if _shares_memory_with_numpy(tensor, dtype):
            plain = tensor.detach()
            if tensor.dtype == torch.bfloat16:
                yield plain.view(torch.uint16).numpy().view(dtype)
            else:
                yield plain.numpy()
            torch.autograd.graph.increment_version(tensor)
            return
        buffer = np.empty(tuple(tensor.shape), dtype=dtype)
        yield buffer
        if dtype.name == "bfloat16":  # torch cannot read ml_dtypes arrays; hand it the bits
            source = torch.from_numpy(buffer.view(np.uint16)).view(torch.bfloat16)
        else:
            source = torch.from_numpy(buffer)
        tensor.copy_(source)


# ------------------------------------------------------------------------ blocks
@dataclasses.dataclass(frozen=True)
class Block:
    """Rows ``[start, stop)`` along dim 0 of a parameter that get their own fans (a gate, q/k/v)."""

    start: int
    stop: int
    label: str | None = None  #: names the block's own stream for whole-matrix initializers
    fans: tuple[int, int] | None = None  #: (fan_in, fan_out) for the block's scale rule


def _intersect(a: Region, b: Region) -> Region | None:
    out = []
    for x, y in zip(a, b, strict=True):
        lo, hi = max(x.start, y.start), min(x.stop, y.stop)
        if lo >= hi:
            return None
        out.append(slice(lo, hi))
    return tuple(out)


def _shift(region: Region, origin: Sequence[int]) -> Region:
    return tuple(slice(s.start - o, s.stop - o) for s, o in zip(region, origin, strict=True))


def fill_from_sampler(
    tensor: torch.Tensor,
    spec: InitSpec,
    *,
    seed: int,
    name: str,
    blocks: Sequence[Block] | None = None,
) -> None:
    """Fill ``tensor`` in place with ``spec``'s values for its global shape (:class:`berry.InitSpec`).

    With ``blocks``, each block of rows gets its own fans (for a scale rule
    without an explicit ``std``); element-wise initializers still read one
    stream over the whole tensor, keyed by ``name``, while whole-matrix ones
    (orthogonal, eye, ...) make each block from its own stream, keyed by
    ``name[label]``, so each gate is orthogonal on its own.

    CUDA tensors get the elementwise laws and constants from berry's Triton
    kernel when it is available (:mod:`berry.torch._device`), the same bits
    as the host path below.
    """
    if tensor.is_meta:
        return
    where = locate(tensor)
    if where.local.numel() == 0:
        return
    jobs = list(_block_jobs(spec, where, name, blocks))
    mode = _device.kernel_mode(where.local, spec)
    if mode is not None:
        written = False
        for block_spec, shape, block_name, region, local in jobs:
            target = where.local[local] if local else where.local
            if not _device.fill_block(
                target, block_spec, shape=shape, seed=seed, name=block_name, region=region, mode=mode
            ):
                break  # the kernel is unavailable after all: the host path below rewrites every block
            written = True
        else:
            torch.autograd.graph.increment_version(where.local)  # a raw kernel write bumps no version
            return
        if written:
            torch.autograd.graph.increment_version(where.local)

    with writable_array(where.local, floating_only=not spec.init_kind.exact) as array:
        for block_spec, shape, block_name, region, local in jobs:
            out = array[local] if local else array  # a 0-d array indexed by () would give a scalar
            block_spec(shape, seed=seed, name=block_name, region=region, out=out)


def _block_jobs(
    spec: InitSpec, where: Placement, name: str, blocks: Sequence[Block] | None
) -> Iterator[tuple[InitSpec, tuple[int, ...], str, Region, Region]]:
    """``(spec, global shape, name, region of that shape, region of where.local)`` for each block to fill."""
    shape = where.global_shape
    if not shape:  # a 0-d tensor is one element
        yield spec, (), name, (), ()
        return
    per_block = spec.init_kind.whole_matrix  # what berry.kinds says about this kind of initializer
    # The layer's fans go to a scale rule, unless the spec fixes its scale (or a fan) itself.
    takes_fans = spec.takes_fans
    if not blocks:
        blocks = [Block(0, shape[0])]
    for block in blocks:
        block_spec = spec
        if takes_fans and block.fans is not None:
            fan_in = block.fans[0] if spec.fan_in is None else spec.fan_in
            fan_out = block.fans[1] if spec.fan_out is None else spec.fan_out
            block_spec = dataclasses.replace(spec, fan_in=fan_in, fan_out=fan_out)
        block_region = (slice(block.start, block.stop), *(slice(0, n) for n in shape[1:]))
        part = _intersect(where.region, block_region)
        if part is None:
            continue
        local = _shift(part, where.start)
        if not per_block or (block.start, block.stop) == (0, shape[0]):
            yield block_spec, shape, name, part, local
        else:
            block_shape = (block.stop - block.start, *shape[1:])
            block_name = name if block.label is None else f"{name}[{block.label}]"
            in_block = _shift(part, (block.start,) + (0,) * (len(shape) - 1))
            yield block_spec, block_shape, block_name, in_block, local


# ------------------------------------------------------------------------ whole-model writes
# What init_model's parametrized weights and the schemes write besides a sampler's values.
#: Elements per chunk when a deterministic fill computes its values in float64 (8 MiB of them).
_CHUNK_ELEMENTS = 1 << 20


def copy_values(tensor: torch.Tensor, values: torch.Tensor) -> None:
    """Write ``values`` (the whole global tensor) into ``tensor`` in place; a DTensor takes its own slice."""
    if tensor.is_meta:
        return
    where = locate(tensor)
    if tuple(values.shape) != where.global_shape:
        raise ValueError(f"values of shape {tuple(values.shape)} cannot fill a tensor of shape {where.global_shape}")
    with torch.no_grad():
        where.local.copy_(values[where.region])


def scale_blocks(tensor: torch.Tensor, factors: Sequence[float], axis: int = 0) -> None:
    """Multiply the i-th of ``len(factors)`` equal blocks along ``axis`` by ``factors[i]``, in place.

    A DTensor scales the parts of its shard that fall in each block.
    """
    if tensor.is_meta or not factors:
        return
    where = locate(tensor)
    size = where.global_shape[axis] // len(factors)
    start, length = where.start[axis], where.local.shape[axis]
    with torch.no_grad():
        for i, factor in enumerate(factors):
            low, high = max(i * size, start), min((i + 1) * size, start + length)
            if low < high:
                where.local.narrow(axis, low - start, high - low).mul_(factor)


def divide_(tensor: torch.Tensor, divisor: float) -> None:
    """Divide ``tensor`` by ``divisor`` in place (a DTensor: its shard)."""
    if tensor.is_meta:
        return
    with torch.no_grad():
        locate(tensor).local.div_(divisor)


def fill_from_function(tensor: torch.Tensor, values_of: Callable[[Region], np.ndarray]) -> None:
    """Fill ``tensor`` in place with ``values_of(region)``, the values of a region of the global tensor.

    For deterministic initializers that can compute any block of their
    output on its own: each process computes only its shard, in chunks of
    rows, so the cost and the memory scale with the tensor, never more.
    """
    if tensor.is_meta:
        return
    where = locate(tensor)
    if where.local.numel() == 0:
        return
    with writable_array(where.local, floating_only=False) as array:
        if not where.global_shape:
            array[...] = values_of(())
            return
        rows = where.region[0]
        per_row = max(1, math.prod(array.shape[1:]))
        step = max(1, _CHUNK_ELEMENTS // per_row)
        for first in range(rows.start, rows.stop, step):
            last = min(first + step, rows.stop)
            array[first - rows.start : last - rows.start] = values_of((slice(first, last), *where.region[1:]))


def zero_rows(tensor: torch.Tensor, start: int, stop: int) -> None:
    """Zero rows ``[start, stop)`` along dim 0 in place (a DTensor: those in its shard)."""
    if tensor.is_meta:
        return
    where = locate(tensor)
    low, high = max(start, where.start[0]), min(stop, where.start[0] + where.local.shape[0])
    if low < high:
        with torch.no_grad():
            where.local[low - where.start[0] : high - where.start[0]].zero_()
