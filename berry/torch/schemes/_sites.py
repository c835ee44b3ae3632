"""What the recipe families (LLM, SSM, LoRA, transfer, mimetic) share beyond roles and reports.

* :func:`fill_computed`: write values given by a formula of the *global*
  tensor into a parameter, each process only its own shard (DTensor), so
  computed initializations (Mamba's ``dt`` bias, PiSSA's factors, mimetic
  SVD factors) agree bit for bit between one process and many;
* :func:`stream_uniform` / :func:`stream_normal`: berry's keyed stream for
  any region of a tensor, in float64, for those formulas;
* :func:`full_values`: a parameter's whole value (gathered if sharded);
* :func:`paired`: which parameter of a second role sits with each one of a
  first role (a LoRA ``A`` with its ``B`` and base weight, a query with its
  key): the one sharing the longest dotted name prefix;
* :func:`layer_index`, :func:`linear_fans`, :func:`norm_rules` (:func:`zero_centered`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

import berry
from berry.torch._tensors import Region, is_dtensor, locate, writable_array
from berry.torch.schemes._report import SchemeRules
from berry.torch.schemes._roles import ModelParameters, PresetError, exact, shown

__all__ = [
    "fill_computed",
    "full_values",
    "layer_index",
    "linear_fans",
    "norm_rules",
    "paired",
    "stream_normal",
    "stream_uniform",
    "zero_centered",
]

#: ``compute(global_shape, region)`` -> the values of that region of the global tensor.
Compute = Callable[[tuple[int, ...], Region], np.ndarray]


def fill_computed(tensor: torch.Tensor, compute: Compute) -> None:
    """Fill ``tensor`` in place with ``compute(global_shape, region)`` for the region this process holds.

    The values are computed in float64 and rounded once to the tensor's
    dtype. Meta tensors are left alone; a DTensor gets exactly its shard.
    """
    if tensor.is_meta:
        return
    where = locate(tensor)
    if where.local.numel() == 0:
        return
    values = np.asarray(compute(where.global_shape, where.region), dtype=np.float64)
    if values.shape != tuple(where.local.shape):  # pragma: no cover - a formula's bug, not a user's
        raise RuntimeError(f"computed values have shape {values.shape}, the region has {tuple(where.local.shape)}")
    with writable_array(where.local) as out:
        out[...] = values


def _whole(shape: tuple[int, ...], region: Region | None) -> Region:
    return tuple(slice(0, n) for n in shape) if region is None else region


def stream_uniform(shape: tuple[int, ...], region: Region | None, *, seed: int, name: str) -> np.ndarray:
    """U[0, 1) from berry's stream keyed by ``(seed, name)``, for ``region`` of a tensor of ``shape`` (float64)."""
    return berry.sample(shape, distribution="uniform", low=0.0, high=1.0, seed=seed, name=name,
                        region=_whole(shape, region), dtype="float64")


def stream_normal(shape: tuple[int, ...], region: Region | None, *, seed: int, name: str) -> np.ndarray:
    """N(0, 1) from berry's stream keyed by ``(seed, name)``, for ``region`` of a tensor of ``shape`` (float64)."""
    return berry.sample(shape, std=1.0, seed=seed, name=name, region=_whole(shape, region), dtype="float64")


def full_values(tensor: torch.Tensor) -> np.ndarray:
    """The whole (global) value of ``tensor`` in float64; a DTensor is gathered (a collective call)."""
    with torch.no_grad():
        value = tensor.full_tensor() if is_dtensor(tensor) else tensor  # type: ignore[attr-defined]
        return value.detach().to(device="cpu", dtype=torch.float64).numpy().copy()


def layer_index(name: str) -> int | None:
    """The first all-digit segment of a dotted name (``model.layers.3.mlp.down_proj.weight`` -> 3)."""
    for segment in name.split("."):
        if segment.isdigit():
            return int(segment)
    return None


def _closeness(a: str, b: str) -> tuple[int, int]:
    """(shared leading segments, shared trailing segments) of two dotted names."""
    x, y = ["", *a.split(".")], ["", *b.split(".")]  # the root is a shared segment: top-level names pair too
    lead = next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), min(len(x), len(y)))
    trail = next((i for i, (p, q) in enumerate(zip(reversed(x), reversed(y), strict=False)) if p != q),
                 min(len(x), len(y)))
    return lead, trail


def paired(scheme: str, firsts: Sequence[str], candidates: Sequence[str], what: str) -> dict[str, str]:
    """For each name in ``firsts``, the name in ``candidates`` sharing the longest dotted prefix with it.

    Ties on the prefix go to the longest shared suffix (PEFT's
    ``x.lora_A.default.weight`` pairs with ``x.lora_B.default.weight``, not
    ``x.lora_B.other.weight``). A remaining tie or no shared prefix at all is a
    :class:`PresetError` naming the parameter and the candidates, so the
    user can point the scheme at the right names.
    """
    out: dict[str, str] = {}
    for name in firsts:
        scored = sorted(((_closeness(name, c), c) for c in candidates if c != name), reverse=True)
        if not scored:
            raise PresetError(f"{scheme}: no {what} to pair with {name!r}")
        if len(scored) > 1 and scored[1][0] == scored[0][0]:
            tied = [c for score, c in scored if score == scored[0][0]]
            raise PresetError(f"{scheme}: {name!r} has several equally close {what}s: {shown(tied)}; pass roles= to choose")
        out[name] = scored[0][1]
    return out


def linear_fans(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight: torch's ``(out, in, *kernel)``, or Hugging Face ``Conv1D``'s ``(in, out)``."""
    if type(module).__name__ == "Conv1D" and len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) < 2:
        return 1, shape[0] if shape else 1
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    if isinstance(module, nn.modules.conv._ConvNd) and module.transposed:
        return shape[0] * receptive, shape[1] * receptive
    return shape[1] * receptive, shape[0] * receptive


def is_norm(module: nn.Module) -> bool:
    """A normalization layer, by type or by class name (Hugging Face's ``LlamaRMSNorm``, ``MambaRMSNormGated``)."""
    name = type(module).__name__
    norms = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._NormBase)
    return isinstance(module, norms) or "LayerNorm" in name or "RMSNorm" in name


def zero_centered(module: nn.Module) -> bool:
    """A norm whose gain is ``1 + weight`` (Hugging Face's Gemma, Qwen3-Next RMSNorms): its unit gain is ``weight = 0``.

    torch's own norms are not; any other is probed once: with its weight (and
    bias) zero, an ordinary norm outputs zero, a zero-centered one the
    normalized input. A norm with buffers (running statistics) or one that
    cannot run on a plain ``(2, dim)`` input is taken as ordinary.
    """
    weight = getattr(module, "weight", None)
    if isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._NormBase)) \
            or not isinstance(weight, torch.Tensor) or weight.dim() != 1 or next(module.buffers(), None) is not None:
        return False
    dim = weight.shape[0]
    zeros = {name: torch.zeros(p.shape) for name, p in module.named_parameters(recurse=False)}
    x = torch.tensor([1.0, -1.0]).repeat((dim + 1) // 2)[:dim].expand(2, dim)  # mean 0, RMS 1: x_hat = x
    try:
        with torch.no_grad():
            out = torch.func.functional_call(module, zeros, (x,))
    except Exception:  # a norm that needs more than one plain input: not probed
        return False
    return isinstance(out, torch.Tensor) and bool(out.abs().amax() > 0.5)


def norm_rules(parameters: ModelParameters, skip: set[str] | frozenset[str] = frozenset()) -> SchemeRules:
    """Unit gains and zero biases for norms (recognized by class name too, as Hugging Face does).

    The unit gain is ``weight = 1``, or ``weight = 0`` for a :func:`zero_centered` norm.
    """
    rules: SchemeRules = []
    for entry in parameters:
        if entry.name in skip or not is_norm(entry.module):
            continue
        if entry.local_name == "weight":
            rules.append((exact(entry.name), "zeros" if zero_centered(entry.module) else "ones"))
        elif entry.local_name == "bias":
            rules.append((exact(entry.name), "zeros"))
    return rules
