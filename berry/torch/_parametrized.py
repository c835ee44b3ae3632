"""Weights a module computes from other tensors: torch parametrizations and the legacy norm hooks.

``torch.nn.utils.parametrizations.weight_norm(layer)`` replaces
``layer.weight`` by ``g * v / ||v||`` computed from two parameters
(``parametrizations.weight.original0`` = g, ``original1`` = v); the legacy
``torch.nn.utils.weight_norm`` keeps ``weight_g``/``weight_v`` on the layer
and recomputes ``weight`` in a forward pre-hook. Initializing those
parameters as if they were weights is wrong (g would get random signed
values). berry initializes the *effective* weight instead:

* **invertible parametrizations** (weight norm of either kind, torch's
  ``orthogonal``, any parametrization with a ``right_inverse``): the rule's
  values ``W`` are made for the effective weight (its shape, the layer's fans,
  keyed by the layer's attribute name, e.g. ``"0.weight"``); the originals are
  set to ``right_inverse(W)`` (weight norm: ``g = ||W||`` per output row,
  ``v = W``) and the parametrization is run on them to check that it gives
  ``W`` back. If it does not (an orthogonal constraint given a Xavier rule, a
  parametrization without an inverse), nothing is written and a ``ValueError``
  says why: berry never initializes a weight it cannot give the rule's law.
* **spectral normalization** (either kind): the effective weight is
  ``W / sigma(W)`` whatever ``W`` is, so the rule applies to the weight before
  normalization (as torch's own layer initialization does), and the power
  iteration's vectors ``u``, ``v`` are redrawn from berry's stream (keyed by
  their buffer names) and iterated 15 times on the new weight (torch's count
  at registration), so that sigma is right from the first forward.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from berry.stream import key_for
from berry.torch._tensors import copy_values, fill_from_sampler

__all__ = ["Reparametrization", "reparametrizations"]

#: Power iterations run after a spectrally normalized weight is initialized (torch runs 15 at registration).
POWER_ITERATIONS = 15


@dataclasses.dataclass(eq=False)
class Reparametrization:
    """One weight ``module.<attribute>`` computed from ``originals`` (parameters)."""

    module: nn.Module
    attribute: str
    kind: str  #: "weight_norm", "spectral_norm", "orthogonal", "parametrization", "legacy weight_norm", ...
    originals: tuple[nn.Parameter, ...]
    original_names: tuple[str, ...]  #: relative to ``module``
    shape: tuple[int, ...]  #: the effective weight's shape
    _inverse: Callable[[torch.Tensor], tuple[torch.Tensor, ...]]
    _forward: Callable[[tuple[torch.Tensor, ...]], torch.Tensor]
    _state: Callable[[], Iterator[tuple[nn.Module, str]]] = lambda: iter(())  # buffers right_inverse may reassign
    _after: Callable[[], None] = lambda: None  # refresh what a legacy hook caches
    _power: tuple[Any, str] | None = None  # spectral norm: (its module or hook, "modern" / "legacy")

    @property
    def spectral(self) -> bool:
        return self._power is not None

    def effective(self) -> torch.Tensor:
        """The weight as the module computes it now (no autograd history)."""
        with torch.no_grad():
            return self._forward(tuple(self.originals))

    def realize(self, fill: Callable[[torch.Tensor], None], *, seed: int, name: str, what: str) -> None:
        """Make the effective weight hold what ``fill`` writes into a tensor of its shape (see the module notes).

        ``what`` describes the rule for error messages.
        """
        original = self.originals[0]
        if any(t.is_meta for t in self.originals):
            return
        if self._power is not None:
            fill(original)
            self._reset_power_iteration(seed, name)
            return
        target = torch.empty(self.shape, dtype=original.dtype, device=_local(original).device)
        fill(target)
        self.assign(target, seed=seed, name=name, what=what)

    def assign(self, target: torch.Tensor, *, seed: int, name: str, what: str) -> None:
        """Set the originals so that the effective weight is ``target`` (checked before anything is written)."""
        if self._power is not None:
            raise ValueError(
                f"{name} is spectrally normalized: its effective weight is W / sigma(W) whatever W is, so it "
                f"cannot be set to given values ({what})"
            )
        saved = [(owner, key, owner._buffers[key]) for owner, key in self._state()]
        try:
            with _forked_rng(target.device, seed, name), torch.no_grad():
                try:
                    values = self._inverse(target)
                    back = self._forward(values)
                except (RuntimeError, NotImplementedError, TypeError, ValueError) as failure:
                    raise ValueError(
                        f"{name} is computed by {self.kind} ({self.describe()}), whose inverse cannot set it to "
                        f"{what}: {type(failure).__name__}: {failure}"
                    ) from failure
            distance = _relative_error(back, target)
            if not distance <= _tolerance(target.dtype):
                raise ValueError(
                    f"{name} is computed by {self.kind} ({self.describe()}), which cannot give it {what}: "
                    f"the parametrization maps the rule's values to a tensor {distance:.3g} away (relative). "
                    f"Give {name} a rule its parametrization can hold"
                    + (" (e.g. 'orthogonal')" if self.kind == "orthogonal" else "")
                    + ", or 'keep' and initialize its originals yourself"
                )
        except Exception:
            for owner, key, buffer in saved:  # right_inverse may have replaced buffers (orthogonal's base)
                owner._buffers[key] = buffer
            raise
        for parameter, value in zip(self.originals, values, strict=True):
            copy_values(parameter, value.to(parameter.dtype))
        self._after()

    def describe(self) -> str:
        return f"{type(self.module).__name__}.{self.attribute} from {', '.join(self.original_names)}"

    def rewritten_buffers(self, name: str) -> list[str]:
        """Names of the buffers :meth:`realize` sets for the weight named ``name`` (power iteration, orthogonal base)."""
        module_prefix = name[: len(name) - len(self.attribute)]
        if self.kind == "legacy spectral_norm":
            return [f"{module_prefix}{self.attribute}_u", f"{module_prefix}{self.attribute}_v"]
        if self.kind in ("spectral_norm", "orthogonal"):
            return [f"{module_prefix}parametrizations.{self.attribute}.0.{key}" for _, key in self._state()]
        return []

    def _reset_power_iteration(self, seed: int, name: str) -> None:
        assert self._power is not None
        holder, style = self._power
        original = self.originals[0]
        if original.dim() <= 1:
            return  # a vector is normalized exactly, without power iteration
        module_prefix = name[: len(name) - len(self.attribute)]  # "layers.0." of "layers.0.weight"
        if style == "modern":
            u_buffer, v_buffer = holder._u, holder._v
            matrix = holder._reshape_weight_to_matrix(original.detach())
            buffers = f"{module_prefix}parametrizations.{self.attribute}.0."
            keys = (f"{buffers}_u", f"{buffers}_v")  # keyed by the buffers' own names
        else:
            u_buffer, v_buffer = getattr(self.module, holder.name + "_u"), getattr(self.module, holder.name + "_v")
            matrix = holder.reshape_weight_to_matrix(original.detach())
            keys = (f"{module_prefix}{holder.name}_u", f"{module_prefix}{holder.name}_v")
        with torch.no_grad():
            u = torch.empty_like(u_buffer)
            v = torch.empty_like(v_buffer)
            fill_from_sampler(u, _unit_normal(), seed=seed, name=keys[0])
            fill_from_sampler(v, _unit_normal(), seed=seed, name=keys[1])
            u, v = F.normalize(u, dim=0, eps=holder.eps), F.normalize(v, dim=0, eps=holder.eps)
            for _ in range(POWER_ITERATIONS):
                if style == "modern":  # torch's order in each: see _SpectralNorm._power_method and SpectralNorm
                    u = F.normalize(torch.mv(matrix, v), dim=0, eps=holder.eps)
                    v = F.normalize(torch.mv(matrix.H, u), dim=0, eps=holder.eps)
                else:
                    v = F.normalize(torch.mv(matrix.t(), u), dim=0, eps=holder.eps)
                    u = F.normalize(torch.mv(matrix, v), dim=0, eps=holder.eps)
        copy_values(u_buffer, u)
        copy_values(v_buffer, v)
        self._after()


# ----------------------------------------------------------------------------- finding them
def reparametrizations(module: nn.Module) -> list[Reparametrization]:
    """The weights of ``module`` computed by parametrizations or legacy norm hooks (not of its children)."""
    found: list[Reparametrization] = []
    if parametrize.is_parametrized(module):
        chains: Any = module.parametrizations
        for attribute, chain in chains.items():
            found.append(_modern(module, attribute, chain))
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm

    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, WeightNorm):
            found.append(_legacy_weight_norm(module, hook))
        elif isinstance(hook, SpectralNorm):
            found.append(_legacy_spectral_norm(module, hook))
    return [r for r in found if all(isinstance(p, nn.Parameter) for p in r.originals)]


def _modern(module: nn.Module, attribute: str, chain: Any) -> Reparametrization:
    from torch.nn.utils.parametrizations import _Orthogonal, _SpectralNorm, _WeightNorm

    steps = list(chain)
    names: tuple[str, ...]
    if chain.is_tensor:
        names = (f"parametrizations.{attribute}.original",)
        originals: tuple[Any, ...] = (chain.original,)
    else:
        names = tuple(f"parametrizations.{attribute}.original{i}" for i in range(chain.ntensors))
        originals = tuple(getattr(chain, f"original{i}") for i in range(chain.ntensors))

    def forward(values: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x = steps[0](values[0]) if chain.is_tensor else steps[0](*values)
        for step in steps[1:]:
            x = step(x)
        return x

    def inverse(target: torch.Tensor) -> tuple[torch.Tensor, ...]:
        value: Any = target
        for step in reversed(steps):  # a step without right_inverse is taken as the identity, as torch does
            if hasattr(step, "right_inverse"):
                value = step.right_inverse(value)
        return (value,) if chain.is_tensor else tuple(value)

    def state() -> Iterator[tuple[nn.Module, str]]:
        for step in steps:
            for key in list(step._buffers):
                yield step, key

    kinds = {_WeightNorm: "weight_norm", _SpectralNorm: "spectral_norm", _Orthogonal: "orthogonal"}
    kind = kinds.get(type(steps[0]), "parametrization") if len(steps) == 1 else "parametrization"
    shape = tuple(originals[-1].shape) if kind in ("weight_norm", "spectral_norm", "orthogonal") else None
    if shape is None:  # a parametrization of its own: its output tells the shape
        with torch.no_grad():
            shape = tuple(forward(originals).shape)
    # Spectral norm chained with other steps goes the generic way, whose round-trip check refuses it.
    power = (steps[0], "modern") if kind == "spectral_norm" else None
    return Reparametrization(module, attribute, kind, originals, names, shape, inverse, forward, state, _power=power)


def _legacy_weight_norm(module: nn.Module, hook: Any) -> Reparametrization:
    g, v = getattr(module, hook.name + "_g"), getattr(module, hook.name + "_v")

    def refresh() -> None:
        setattr(module, hook.name, hook.compute_weight(module))  # what the hook caches between forwards

    return Reparametrization(
        module, hook.name, "legacy weight_norm", (g, v), (hook.name + "_g", hook.name + "_v"), tuple(v.shape),
        lambda w: (torch.norm_except_dim(w, 2, hook.dim), w),
        lambda values: torch._weight_norm(values[1], values[0], hook.dim),
        _after=refresh,
    )


def _legacy_spectral_norm(module: nn.Module, hook: Any) -> Reparametrization:
    original = getattr(module, hook.name + "_orig")

    def refresh() -> None:
        setattr(module, hook.name, hook.compute_weight(module, do_power_iteration=False))

    return Reparametrization(
        module, hook.name, "legacy spectral_norm", (original,), (hook.name + "_orig",), tuple(original.shape),
        lambda w: (w,), lambda values: values[0], _after=refresh, _power=(hook, "legacy"),
    )


# ----------------------------------------------------------------------------- helpers
def _local(tensor: torch.Tensor) -> torch.Tensor:
    return getattr(tensor, "_local_tensor", tensor)


def _unit_normal() -> Any:
    from berry.sampling import InitSpec

    return InitSpec(distribution="normal", mean=0.0, std=1.0)


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    scale = float(want.detach().double().norm())
    if tuple(got.shape) != tuple(want.shape):
        return math.inf
    difference = float((got.detach().double() - want.detach().double()).norm())
    return difference / scale if scale > 0 else difference


def _tolerance(dtype: torch.dtype) -> float:
    """How far the round trip may land from the rule's values: rounding, never a different law."""
    return max(1e-4, 16 * torch.finfo(dtype).eps)


@contextlib.contextmanager
def _forked_rng(device: torch.device, seed: int, name: str) -> Iterator[None]:
    """torch's global generator, seeded from (seed, name) and restored after.

    torch's orthogonal ``right_inverse`` completes a non-square matrix with
    ``torch.randn``: this keeps berry from advancing the user's generator and
    the completion (which moves the result only by rounding) reproducible.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(key_for(seed, name) >> 1)
        yield
