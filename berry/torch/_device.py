"""berry's Triton kernel for torch tensors: CUDA tensors filled on the device, the same bits as the host.

Which path fills a tensor (:func:`kernel_mode`), chosen per call from the tensor and the environment
variable ``BERRY_TORCH_KERNEL``:

- ``auto`` (default): CUDA tensors (NVIDIA) go through the kernel when Triton is installed; without
  Triton, or if the kernel cannot be compiled, they are sampled on the host and copied (a one-time
  :class:`HostFallbackWarning` names the cost). CPU tensors use the host kernels.
- ``host``: always the host path (no warning).
- ``triton``: the kernel is required. CUDA tensors (ROCm included, unverified) go through it and any
  failure raises; CPU tensors go through it under Triton's interpreter, which needs
  ``TRITON_INTERPRET=1`` too, so that ``berry.torch.normal_(t, std=..., seed=..., name=...)`` on a CPU
  tensor runs the device source and equals :func:`berry.sample` bit for bit (how the kernel is tested
  without a GPU; the interpreter is slow, for tests only).

What the kernel fills: the elementwise laws (normal, truncated normal, uniform, every scale rule with
them) and constants (``zeros``, ``ones``, ``constant``: the value is rounded once on the host, then
``Tensor.fill_`` writes it). Structural initializers (orthogonal, delta-orthogonal, eye, dirac, sparse)
stay on the host (docs/torch.md).

Importing this module imports neither Triton nor CUDA; the kernel is loaded on the first launch.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from berry import _device, distributions, kinds, stream
from berry._lowp import resolve_dtype
from berry.distributions import store

if TYPE_CHECKING:
    from berry.sampling import InitSpec

__all__ = ["KERNEL_ENV", "HostFallbackWarning", "fill_block", "kernel_mode"]

KERNEL_ENV = "BERRY_TORCH_KERNEL"
_MODES = ("auto", "host", "triton")
_KERNEL_DTYPES = {
    torch.float64: "float64",
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
}
_FALLBACK_COST = (
    "berry then samples CUDA tensors on the host and copies them to the device: host sampling at a few "
    "GB/s plus a PCIe copy, about 100x slower than on-device sampling for a large model (the values are "
    "the same)"
)


class HostFallbackWarning(UserWarning):
    """CUDA tensors are being filled on the host (slow, same values): the device kernel is unavailable."""


_warned: set[str] = set()
_disabled_reason: str | None = None  # set when the kernel failed in auto mode: the host path from then on
_lock = threading.Lock()


def _warn_once(reason: str) -> None:
    with _lock:
        if reason in _warned:
            return
        _warned.add(reason)
    warnings.warn(
        f"{reason}; {_FALLBACK_COST}. Install Triton (`pip install triton`; PyTorch's CUDA wheels bring it) "
        f"for on-device sampling, or set {KERNEL_ENV}=host to silence this warning.",
        HostFallbackWarning,
        stacklevel=5,
    )


def _requested() -> str:
    mode = os.environ.get(KERNEL_ENV, "auto").strip().lower() or "auto"
    if mode not in _MODES:
        raise ValueError(f"{KERNEL_ENV}={mode!r} is not supported; supported: {', '.join(_MODES)}")
    return mode


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "on", "yes")


def kernel_mode(tensor: torch.Tensor, spec: InitSpec) -> str | None:
    """``"compiled"``, ``"interpreted"`` or ``None`` (the host path) for filling ``tensor`` with ``spec``.

    Raises when ``BERRY_TORCH_KERNEL=triton`` asks for the kernel where it cannot run.
    """
    requested = _requested()
    on_device = spec.init_kind is kinds.RULE or spec.init_kind.fill_value is not None  # elementwise laws, constants
    if requested == "host" or not on_device or tensor.device.type not in ("cuda", "cpu"):
        if requested == "triton" and tensor.device.type not in ("cuda", "cpu"):
            raise RuntimeError(
                f"{KERNEL_ENV}=triton: berry's kernel fills CUDA tensors (and CPU tensors under TRITON_INTERPRET=1), "
                f"got a tensor on {tensor.device}; unset {KERNEL_ENV} to sample it on the host"
            )
        return None
    if tensor.dtype not in _KERNEL_DTYPES and not spec.init_kind.exact:
        return None  # the host path gives the error (or handles integer tensors for exact kinds)
    if tensor.dtype == torch.bfloat16 and _bfloat16_unavailable():
        return None  # the host path rounds through float32 and says so in its docs
    if tensor.device.type == "cpu":
        if requested != "triton":
            return None
        if not _interpreting():
            raise RuntimeError(
                f"{KERNEL_ENV}=triton routes CPU tensors through berry's Triton kernel under Triton's interpreter, "
                "which needs TRITON_INTERPRET=1 as well; set it, or unset "
                f"{KERNEL_ENV} to use the host kernels"
            )
        _require_triton()
        return "interpreted"
    if requested == "triton":
        _require_triton()
        return "compiled"
    if getattr(torch.version, "hip", None):
        return None  # ROCm: the kernel's bits are verified on NVIDIA only; BERRY_TORCH_KERNEL=triton forces it
    if not _device.triton_available():
        _warn_once("Triton is not installed")
        return None
    if _disabled_reason is not None:
        return None
    return "compiled"


def _require_triton() -> None:
    if not _device.triton_available():
        raise ImportError(f"{KERNEL_ENV}=triton needs Triton: pip install triton")


def _bfloat16_unavailable() -> bool:
    try:
        resolve_dtype("bfloat16")
    except ImportError:
        return True
    return False


def fill_block(
    target: torch.Tensor,
    spec: InitSpec,
    *,
    shape: tuple[int, ...],
    seed: int,
    name: str,
    region: tuple[slice, ...],
    mode: str,
) -> bool:
    """Write ``spec``'s values for ``region`` of the global ``shape`` into ``target`` (that region's tensor).

    Returns False, having written nothing, when the kernel failed to compile or launch in ``auto`` mode
    (the caller then takes the host path); argument errors are raised as on the host.
    """
    with torch.no_grad():
        fill_value = spec.init_kind.fill_value
        if fill_value is not None:
            _fill_constant(target, fill_value(spec))
            return True
        law = _law(spec, shape)
        constant = distributions.constant_value(law)
        if constant is not None:  # a constant: the host path does the same (fill_elementwise)
            _fill_constant(target, constant)
            return True
        if target.numel() == 0:
            return True
        start = tuple(piece.start for piece in region)
        plan = _plan(law, _KERNEL_DTYPES[target.dtype], stream.key_for(seed, name), shape, start, tuple(target.shape))
        dense = target if target.is_contiguous() else torch.empty(target.shape, dtype=target.dtype, device=target.device)
        try:
            _launch(dense, plan, interpret=mode == "interpreted")
        except Exception as error:
            if mode != "compiled" or _requested() == "triton":
                raise
            _disable(error)
            return False
        if dense is not target:
            target.copy_(dense)
        return True


def _disable(error: BaseException) -> None:
    global _disabled_reason
    with _lock:
        _disabled_reason = f"berry's Triton kernel failed ({type(error).__name__}: {error})"
    _warn_once(_disabled_reason)


@functools.lru_cache(maxsize=1024)
def _cached_law(spec: InitSpec, shape: tuple[int, ...]) -> stream.Law:
    return spec.law(shape)  # the host's own law for this spec and shape (berry.sampling)


def _law(spec: InitSpec, shape: tuple[int, ...]) -> stream.Law:
    """The stream law of an elementwise ``spec`` for ``shape``, cached (a spec's fields are all hashable)."""
    try:
        return _cached_law(spec, shape)
    except TypeError:  # pragma: no cover - an unhashable rule callable
        return spec.law(shape)


@functools.lru_cache(maxsize=1024)
def _plan(
    law: stream.Law,
    dtype_name: str,
    key: int,
    shape: tuple[int, ...],
    start: tuple[int, ...],
    region_shape: tuple[int, ...],
) -> tuple[_device.Launch, ...]:
    """The kernel launches for one law, dtype, key and region (cached: a model re-initialized, a benchmark)."""
    params = stream.kernel_params(law, resolve_dtype(dtype_name))  # validates the law for the dtype, as on the host
    layout = stream.region_layout(shape, start, region_shape)
    return tuple(_device.launches(params, dtype=dtype_name, key=key, layout=layout))


def _launch(dense: torch.Tensor, plan: tuple[_device.Launch, ...], *, interpret: bool) -> None:
    """Run the launches into the contiguous ``dense`` (16-bit outputs as their int16 bits)."""
    flat = dense.reshape(-1)
    if flat.element_size() == 2:
        flat = flat.view(torch.int16)
    kernel = _device.kernel(interpret=interpret)
    guard = torch.cuda.device(flat.device) if flat.device.type == "cuda" else contextlib.nullcontext()
    with guard:  # Triton launches on the current device
        for launch in plan:
            kernel[(launch.programs,)](
                flat[launch.out_offset :], *launch.args, **launch.constants, enable_fp_fusion=False
            )


def _fill_constant(target: torch.Tensor, value: Any) -> None:
    """``value`` rounded once to the tensor's dtype on the host (as the host path does), then ``fill_``."""
    if target.dtype in _KERNEL_DTYPES:
        one = np.empty(1, dtype=resolve_dtype(_KERNEL_DTYPES[target.dtype]))
        store(one, np.float64(value))
        value = float(one.astype(np.float64)[0])  # exactly representable in the dtype, so fill_ is exact
    target.fill_(value)
